//! Which sample items make which entity, and each entity's keys, indexes
//! and attributes, for [`import`](super::import).
//!
//! Entities come from the facets (one each), else — for models that keep
//! their items in the table's `TableData` only — from an entity-type
//! attribute, else from the labels the keys start with. A facet or table
//! whose items do not share one key form (several kinds of items under one
//! access pattern) is cut by those labels too, unless an entity-type
//! attribute says its items are of one kind.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;
use singletable::template::Template;
use singletable::{AttrType, AttributeValue, KeyKind};

use super::keys::{self, read_alias, read_samples, Alias, Candidate, Miss, Naming, Parts, Rows};
use super::{Facet, TableModel};
use crate::ddb_json::value_from_json;
use crate::error::MigrateError;
use crate::raw::RawItem;

/// A sample item and the attributes dropped from it for a malformed value
/// (which still count as present: the item had them).
#[derive(Debug, Clone)]
pub(super) struct Sample {
    pub item: RawItem,
    pub dropped: BTreeSet<String>,
}

/// Reads sample items attribute by attribute: a value that is not typed
/// DynamoDB JSON (hand-edited models hold `{"M": {"M": {...}}}` or plain
/// JSON inside maps) drops that attribute, with one warning per attribute.
pub(super) fn parse_samples(origin: &str, data: &[Value], warnings: &mut Vec<String>) -> Vec<Sample> {
    let mut bad: BTreeMap<String, (Vec<usize>, String)> = BTreeMap::new();
    let mut out = Vec::new();
    for (n, v) in data.iter().enumerate() {
        let Some(obj) = v.as_object() else {
            warnings.push(format!("{origin}: sample item {} is not an object of attributes: skipped", n + 1));
            continue;
        };
        let mut sample = Sample { item: RawItem::new(), dropped: BTreeSet::new() };
        for (name, value) in obj {
            match value_from_json(value) {
                Ok(v) => {
                    sample.item.insert(name.clone(), v);
                }
                Err(e) => {
                    sample.dropped.insert(name.clone());
                    bad.entry(name.clone()).or_insert_with(|| (Vec::new(), e)).0.push(n + 1);
                }
            }
        }
        out.push(sample);
    }
    for (name, (items, first)) in bad {
        let items: Vec<String> = items.iter().map(usize::to_string).collect();
        warnings.push(format!(
            "{origin}: `{name}` is not typed DynamoDB JSON in sample item(s) {} ({first}): dropped from them",
            items.join(", ")
        ));
    }
    out
}

/// What every entity of the table shares.
pub(super) struct Context<'a> {
    pub table: &'a TableModel,
    pub pk_attr: String,
    pub sk_attr: String,
    pub entity_attr: String,
    /// Declared attribute types.
    pub types: HashMap<String, AttrType>,
    /// Key attributes of the indexes.
    pub index_attrs: BTreeSet<String>,
}

impl Context<'_> {
    fn is_payload(&self, a: &str) -> bool {
        a != self.pk_attr && a != self.sk_attr && a != self.entity_attr && !self.index_attrs.contains(a)
    }

    fn is_key_attr(&self, a: &str) -> bool {
        a == self.pk_attr || a == self.sk_attr || self.index_attrs.contains(a)
    }
}

/// Sample items that may make one entity.
#[derive(Debug, Clone)]
pub(super) struct Group<'a> {
    pub name: String,
    pub samples: Vec<&'a Sample>,
    pub facet: Option<&'a Facet>,
    /// Whether the items may be cut into several entities: not when an
    /// entity-type attribute says they are one.
    pub splittable: bool,
}

/// An index as one entity uses it: name, pk attribute and template, sort
/// key attribute and template.
pub(super) type EntityIndex = (String, String, Template, Option<(String, Template)>);

/// One entity as read.
#[derive(Debug)]
pub(super) struct Entity<'a> {
    pub name: String,
    pub facet: Option<&'a Facet>,
    pub samples: Vec<&'a Sample>,
    pub rows: Rows,
    pub pk: Template,
    pub sk: Template,
    pub indexes: Vec<EntityIndex>,
    /// Payload attributes in order: listed by the facet, seen in items, key-only.
    pub attributes: Vec<String>,
    pub warnings: Vec<String>,
}

impl Entity<'_> {
    pub fn type_of(&self, ctx: &Context, a: &str) -> AttrType {
        if self.rows.key_only.iter().any(|k| k == a) && !ctx.types.contains_key(a) {
            return AttrType::S;
        }
        type_of(ctx, &self.samples, a)
    }

    pub fn optional(&self, a: &str) -> bool {
        !self.samples.is_empty()
            && self.rows.items.iter().zip(&self.samples).any(|(i, s)| !i.contains_key(a) && !s.dropped.contains(a))
    }
}

fn type_of(ctx: &Context, samples: &[&Sample], a: &str) -> AttrType {
    ctx.types.get(a).copied().or_else(|| samples.iter().find_map(|s| s.item.get(a)).map(value_type)).unwrap_or(AttrType::S)
}

pub(super) fn value_type(value: &AttributeValue) -> AttrType {
    match value {
        AttributeValue::N(_) => AttrType::N,
        AttributeValue::B(_) => AttrType::B,
        AttributeValue::Bool(_) => AttrType::Bool,
        AttributeValue::L(_) => AttrType::L,
        AttributeValue::M(_) => AttrType::M,
        AttributeValue::Ss(_) => AttrType::SS,
        AttributeValue::Ns(_) => AttrType::NS,
        AttributeValue::Bs(_) => AttrType::BS,
        _ => AttrType::S,
    }
}

pub(super) fn kind_of(ty: AttrType) -> KeyKind {
    match ty {
        AttrType::N => KeyKind::Int,
        AttrType::Bool => KeyKind::Bool,
        _ => KeyKind::Str,
    }
}

fn s_value<'a>(item: &'a RawItem, attr: &str) -> Option<&'a str> {
    keys::key_str(item, attr)
}

/// The facets' entity-type attribute: a string every sample item of every
/// facet has, one value per facet, a different one for each. Facets name
/// the entity (`Items`) while the items may say otherwise (`Item`); the
/// items are what is stored, so their value names the entity. With one
/// facet of items, only an attribute holding the facet's name counts.
pub(super) fn facet_entity_attr(facets: &[(&Facet, Vec<&Sample>)], key_attrs: &[&str]) -> Option<String> {
    let with_data: Vec<&(&Facet, Vec<&Sample>)> = facets.iter().filter(|(_, s)| !s.is_empty()).collect();
    let first = with_data.first()?;
    let mut names: Vec<&String> = first.1[0].item.keys().filter(|n| !key_attrs.contains(&n.as_str())).collect();
    names.sort();
    let per_facet = |name: &str| -> Option<Vec<String>> {
        let mut values = Vec::new();
        for (_, samples) in &with_data {
            let v = s_value(&samples[0].item, name)?;
            if !samples.iter().all(|s| s_value(&s.item, name) == Some(v)) {
                return None;
            }
            values.push(v.to_string());
        }
        let distinct: BTreeSet<&String> = values.iter().collect();
        (distinct.len() == values.len()).then_some(values)
    };
    let is_name = |values: &[String]| with_data.iter().zip(values).all(|((f, _), v)| *v == f.facet_name);
    let fitting: Vec<(&String, Vec<String>)> = names.into_iter().filter_map(|n| per_facet(n).map(|v| (n, v))).collect();
    if let Some((n, _)) = fitting.iter().find(|(_, v)| is_name(v)) {
        return Some(n.to_string());
    }
    if with_data.len() < 2 {
        return None;
    }
    fitting.iter().find(|(n, _)| looks_like_type_attr(n)).or(fitting.first()).map(|(n, _)| n.to_string())
}

/// Names people give the attribute that holds an item's kind.
fn looks_like_type_attr(name: &str) -> bool {
    let n: String = name.chars().filter(|c| c.is_alphanumeric()).collect::<String>().to_lowercase();
    matches!(n.as_str(), "et" | "type" | "entity" | "kind" | "typename" | "entitytype" | "entityname" | "recordtype" | "itemtype")
        || n.ends_with("entitytype")
}

/// For a model without facets: the attribute named like an entity type
/// that every sample item holds as a string.
pub(super) fn table_entity_attr(samples: &[Sample], ctx_keys: &[&str]) -> Option<String> {
    let first = samples.first()?;
    let mut names: Vec<&String> = first.item.keys().filter(|n| looks_like_type_attr(n) && !ctx_keys.contains(&n.as_str())).collect();
    names.sort();
    names
        .into_iter()
        .find(|n| samples.iter().all(|s| s_value(&s.item, n).is_some_and(|v| !v.is_empty())))
        .cloned()
}

/// Reads every group, cutting the ones whose items do not share one key
/// form; `learned` names key-only fields after what other entities showed.
/// Also says which groups were cut.
pub(super) fn read_all<'a>(
    groups: &[Group<'a>],
    ctx: &Context,
    learned: &BTreeMap<String, String>,
) -> Result<(Vec<Entity<'a>>, Vec<String>), MigrateError> {
    let reserved: BTreeSet<String> = [ctx.pk_attr.clone(), ctx.sk_attr.clone(), ctx.entity_attr.clone()].into();
    let naming = Naming { learned, reserved: &reserved, index_attrs: &ctx.index_attrs };
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    for g in groups {
        let parts = partition(g, ctx, &naming)?;
        let whole = parts.len() == 1;
        let names = if whole { vec![g.name.clone()] } else { part_names(g, ctx, &parts) };
        if !whole {
            let what = match g.facet {
                Some(f) => format!("facet `{}` holds", f.facet_name),
                None => "the table holds".to_string(),
            };
            let listed: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            notes.push(format!(
                "{what} {} kinds of items, told apart by their key labels: read as entities {}",
                parts.len(),
                listed.join(", ")
            ));
        }
        for (samples, name) in parts.into_iter().zip(names) {
            // A facet lists the attributes of all its kinds of items: a
            // part has those its items show.
            let facet = g.facet.filter(|_| whole);
            let entity = read_entity(&name, samples, facet, ctx, &naming)
                .map_err(|(_, attr, why)| fail(ctx, format!("entity `{name}`: {why} (`{attr}`)")))?;
            out.push(entity);
        }
    }
    Ok((out, notes))
}

fn fail(ctx: &Context, message: String) -> MigrateError {
    MigrateError::Other(format!("table `{}`: {message}", ctx.table.table_name))
}

/// A few sample values of `attr`, for messages.
fn examples(samples: &[&Sample], attr: &str) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for s in samples {
        if let Some(v) = s_value(&s.item, attr) {
            if !seen.contains(&v) {
                seen.push(v);
            }
        }
    }
    let shown: Vec<String> = seen.iter().take(4).map(|v| format!("`{v}`")).collect();
    shown.join(", ")
}

/// The group's items as entities: all together when their keys have one
/// template each; else cut by the labels their keys start with, and those
/// parts again by all their labels.
fn partition<'a>(g: &Group<'a>, ctx: &Context, naming: &Naming) -> Result<Vec<Vec<&'a Sample>>, MigrateError> {
    let why = match read_entity(&g.name, g.samples.clone(), g.facet, ctx, naming) {
        Ok(_) => return Ok(vec![g.samples.clone()]),
        Err((_, attr, why)) => match examples(&g.samples, &attr) {
            shown if shown.is_empty() => format!("{why} (`{attr}`)"),
            shown => format!("{why} (`{attr}`: {shown})"),
        },
    };
    if !g.splittable || g.samples.is_empty() {
        return Err(fail(ctx, format!("entity `{}`: {why}", g.name)));
    }
    let by = |samples: &[&'a Sample], f: &dyn Fn(&Parts) -> String| -> Vec<Vec<&'a Sample>> {
        let mut parts: Vec<(String, Vec<&'a Sample>)> = Vec::new();
        for s in samples {
            let key = |attr: &str| s_value(&s.item, attr).map(|k| f(&Parts::of(k))).unwrap_or_default();
            let sig = format!("{}\u{0}{}", key(&ctx.pk_attr), key(&ctx.sk_attr));
            match parts.iter_mut().find(|(k, _)| *k == sig) {
                Some((_, v)) => v.push(*s),
                None => parts.push((sig, vec![*s])),
            }
        }
        parts.into_iter().map(|(_, v)| v).collect()
    };
    // Parts are read as `read_all` reads them: without the facet's aliases and list.
    let fits = |samples: &[&'a Sample]| read_entity(&g.name, samples.to_vec(), None, ctx, naming).is_ok();
    let coarse = by(&g.samples, &|p| p.head());
    let mut out = Vec::new();
    for part in &coarse {
        if coarse.len() > 1 && fits(part) {
            out.push(part.clone());
            continue;
        }
        let fine = by(part, &|p| p.signature().0);
        if fine.len() == 1 && coarse.len() == 1 {
            return Err(fail(ctx, format!("entity `{}`: {why}, and the items' key labels do not tell kinds of items apart", g.name)));
        }
        for f in fine {
            if let Err((_, attr, w)) = read_entity(&g.name, f.clone(), None, ctx, naming) {
                return Err(fail(
                    ctx,
                    format!("items of `{}` with keys like {}: {w} (`{attr}`)", g.name, examples(&f, &ctx.sk_attr)),
                ));
            }
            out.push(f);
        }
    }
    Ok(out)
}

/// `User`, `META` -> `User`, `Meta`: a label as part of an entity name.
fn pascal(label: &str) -> String {
    keys::ident(label)
        .split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let rest: String = if w.chars().all(|c| !c.is_lowercase()) { w[1..].to_lowercase() } else { w[1..].to_string() };
            format!("{}{rest}", w[..1].to_uppercase())
        })
        .collect()
}

/// Names for the parts of a cut group: a facet's name and its sort keys'
/// labels (`VehicleFeature`), or a table's parts by their partition and
/// then sort key labels (`UFollower`, `UInfo`), as few labels as keep
/// them apart.
fn part_names(g: &Group, ctx: &Context, parts: &[Vec<&Sample>]) -> Vec<String> {
    let labels: Vec<Vec<String>> = parts
        .iter()
        .map(|p| {
            let of = |attr: &str| s_value(&p[0].item, attr).map(|k| Parts::of(k).signature().1).unwrap_or_default();
            let (pk, sk) = (of(&ctx.pk_attr), of(&ctx.sk_attr));
            if g.facet.is_some() { sk.into_iter().chain(pk).collect() } else { pk.into_iter().chain(sk).collect() }
        })
        .collect();
    let prefix = if g.facet.is_some() { g.name.clone() } else { String::new() };
    let mut used = vec![1; parts.len()];
    loop {
        let names: Vec<String> =
            labels.iter().zip(&used).map(|(l, k)| format!("{prefix}{}", l.iter().take(*k).map(|x| pascal(x)).collect::<String>())).collect();
        // Only names that collide take another label.
        let mut grew = false;
        for i in 0..names.len() {
            let clash = names.iter().enumerate().any(|(j, n)| j != i && *n == names[i]) || names[i].is_empty();
            if clash && used[i] < labels[i].len() {
                used[i] += 1;
                grew = true;
            }
        }
        if !grew {
            let distinct: BTreeSet<&String> = names.iter().collect();
            if distinct.len() == names.len() && names.iter().all(|n| !n.is_empty()) {
                return names;
            }
            let base = if prefix.is_empty() { "Entity".to_string() } else { prefix };
            return (1..=parts.len()).map(|n| format!("{base}{n}")).collect();
        }
    }
}

/// Why an entity could not be read: the miss, the key attribute, a sentence.
type Unread = (Miss, String, String);

/// Reads one entity from its sample items (and its facet's aliases).
fn read_entity<'a>(
    name: &str,
    samples: Vec<&'a Sample>,
    facet: Option<&'a Facet>,
    ctx: &Context,
    naming: &Naming,
) -> Result<Entity<'a>, Unread> {
    let mut warnings = Vec::new();
    let mut attributes: Vec<String> =
        facet.map(|f| f.non_key_attributes.iter().filter(|a| ctx.is_payload(a)).cloned().collect()).unwrap_or_default();
    let mut seen: Vec<&String> = samples.iter().flat_map(|s| s.item.keys().chain(&s.dropped)).filter(|a| ctx.is_payload(a)).collect();
    seen.sort();
    for a in seen {
        if !attributes.contains(a) {
            attributes.push(a.clone());
        }
    }
    let mut candidates: Vec<Candidate> = attributes
        .iter()
        .filter(|a| matches!(type_of(ctx, &samples, a), AttrType::S | AttrType::N | AttrType::Bool) && keys::placeholder_ok(a))
        .map(|a| Candidate::attribute(a, kind_of(type_of(ctx, &samples, a))))
        .collect();
    // An index keyed on a plain attribute (`NextReminderDate`) holds a
    // value the table keys may be built from too.
    let plain_index_attrs: Vec<&String> = ctx
        .index_attrs
        .iter()
        .filter(|a| !ctx.is_key_attr_of_table(a) && keys::placeholder_ok(a))
        .filter(|a| {
            let held: Vec<&AttributeValue> = samples.iter().filter_map(|s| s.item.get(a.as_str())).collect();
            !held.is_empty()
                && held.iter().all(|v| match v {
                    AttributeValue::S(s) => !s.is_empty() && Parts::of(s).parts.len() == 1,
                    AttributeValue::N(_) => true,
                    _ => false,
                })
        })
        .collect();
    for a in &plain_index_attrs {
        candidates.push(Candidate::attribute(a, kind_of(type_of(ctx, &samples, a))));
    }
    let mut st = Rows { items: samples.iter().map(|s| s.item.clone()).collect(), candidates, key_only: Vec::new(), learned: Vec::new() };
    let all: Vec<usize> = (0..samples.len()).filter(|r| s_value(&samples[*r].item, &ctx.pk_attr).is_some()).collect();
    if all.len() < samples.len() {
        warnings.push(format!("{} sample item(s) without a string `{}` left out", samples.len() - all.len(), ctx.pk_attr));
    }
    let alias = facet.map(|f| &f.key_attribute_alias);
    let mut odd = Vec::new();
    let pk = read_key(&ctx.pk_attr, alias.map(|a| a.partition_key_alias.as_str()), &all, &mut st, naming, &mut warnings, &mut odd)
        .map_err(|m| unread(m, &ctx.pk_attr, &all))?;
    let sk = read_key(&ctx.sk_attr, alias.and_then(|a| a.sort_key_alias.as_deref()), &all, &mut st, naming, &mut warnings, &mut odd)
        .map_err(|m| unread(m, &ctx.sk_attr, &all))?;
    if !odd.is_empty() {
        // Read again without the items whose keys do not have the alias's form.
        let mut left_out = Vec::new();
        let kept: Vec<&Sample> = samples
            .iter()
            .enumerate()
            .filter_map(|(r, s)| {
                if odd.contains(&r) {
                    let key = |a: &str| s_value(&s.item, a).unwrap_or_default().to_string();
                    left_out.push(format!("`{}` / `{}`", key(&ctx.pk_attr), key(&ctx.sk_attr)));
                    None
                } else {
                    Some(*s)
                }
            })
            .collect();
        let mut entity = read_entity(name, kept, facet, ctx, naming)?;
        entity.warnings.insert(
            0,
            format!("sample item(s) with keys {} do not have the form of the key aliases: left out", left_out.join(", ")),
        );
        return Ok(entity);
    }

    // Index keys are built from the payload and the table keys' fields,
    // not from another index's key.
    let table_fields: BTreeSet<String> = pk.fields().chain(sk.fields()).map(|f| f.attr.to_string()).collect();
    st.candidates.retain(|c| !plain_index_attrs.contains(&&c.attr) || table_fields.contains(&c.attr));
    let mut indexes = Vec::new();
    for gsi in &ctx.table.global_secondary_indexes {
        let ipk_attr = &gsi.key_attributes.partition_key.attribute_name;
        let in_index: Vec<usize> = all.iter().copied().filter(|r| st.items[*r].contains_key(ipk_attr)).collect();
        if in_index.is_empty() {
            if facet.is_some_and(|f| f.non_key_attributes.contains(ipk_attr)) {
                warnings.push(format!(
                    "lists `{ipk_attr}` of index `{}` but no sample item has it: its index template is unknown, left out",
                    gsi.index_name
                ));
            }
            continue;
        }
        let read = |attr: &str, st: &mut Rows| -> Result<Template, Miss> {
            if attr == ctx.pk_attr {
                Ok(pk.clone())
            } else if attr == ctx.sk_attr {
                Ok(sk.clone())
            } else {
                read_samples(attr, &in_index, st, naming)
            }
        };
        let left_out = |what: &str, warnings: &mut Vec<String>| {
            warnings.push(format!("no template fits the sample items' `{what}` of index `{}`: index left out", gsi.index_name));
        };
        let Ok(ipk) = read(ipk_attr, &mut st) else {
            left_out(ipk_attr, &mut warnings);
            continue;
        };
        let isk = match &gsi.key_attributes.sort_key {
            None => None,
            Some(k) => match read(&k.attribute_name, &mut st) {
                Ok(t) => Some((k.attribute_name.clone(), t)),
                Err(_) => {
                    left_out(&k.attribute_name, &mut warnings);
                    continue;
                }
            },
        };
        let (ipk, isk) = (sparse_fields(ipk, &st, &all), isk.map(|(a, t)| (a, sparse_fields(t, &st, &all))));
        let sparse = ipk.fields().chain(isk.iter().flat_map(|(_, t)| t.fields())).any(|f| f.optional);
        if in_index.len() < all.len() && !sparse {
            warnings.push(format!(
                "some sample items lack `{ipk_attr}`, but no field of its template may be absent: every {name} item will be in index `{}`",
                gsi.index_name
            ));
        }
        indexes.push((gsi.index_name.clone(), ipk_attr.clone(), ipk, isk));
    }

    // Fields the keys hold that the items do not list become attributes.
    let all_fields: Vec<String> = [&pk, &sk]
        .into_iter()
        .chain(indexes.iter().flat_map(|(_, _, ipk, isk)| std::iter::once(ipk).chain(isk.iter().map(|(_, t)| t))))
        .flat_map(|t| t.fields())
        .map(|f| f.attr.to_string())
        .collect();
    let mut key_only_added: Vec<String> = Vec::new();
    for f in all_fields {
        let shown = format!("`{f}`");
        if st.key_only.contains(&f) && !key_only_added.contains(&shown) {
            key_only_added.push(shown);
        }
        if attributes.contains(&f) || ctx.is_key_attr(&f) || f == ctx.entity_attr {
            continue;
        }
        if !st.key_only.contains(&f) {
            warnings.push(format!("key field `{f}` is not among its attributes: added as {}", type_of(ctx, &samples, &f).name()));
        }
        attributes.push(f);
    }
    match key_only_added.as_slice() {
        [] => {}
        [one] => warnings.push(format!(
            "{one} is only inside the sample items' keys: the design stores it as an attribute of its own, which existing items lack"
        )),
        many => warnings.push(format!(
            "{} are only inside the sample items' keys: the design stores them as attributes of their own, which existing items lack",
            many.join(", ")
        )),
    }
    Ok(Entity { name: name.to_string(), facet, samples, rows: st, pk, sk, indexes, attributes, warnings })
}

impl Context<'_> {
    fn is_key_attr_of_table(&self, a: &str) -> bool {
        a == self.pk_attr || a == self.sk_attr
    }
}

/// An index template's fields that some item lacks may be absent: the
/// index is sparse for them.
fn sparse_fields(mut t: Template, st: &Rows, rows: &[usize]) -> Template {
    for seg in t.segments.to_mut() {
        if let singletable::template::Segment::Field(f) = seg {
            f.optional = rows.iter().any(|r| !st.items[*r].contains_key(f.attr.as_ref()));
        }
    }
    t
}

fn unread(miss: Miss, attr: &str, rows: &[usize]) -> Unread {
    let why = match miss {
        _ if rows.is_empty() => "no sample item shows its keys and its alias names no template".to_string(),
        Miss::Shape => "the sample keys follow no single template".to_string(),
        Miss::Kinds => "the sample keys start with different labels: items of several kinds".to_string(),
    };
    (miss, attr.to_string(), why)
}

/// One table key of an entity: from the facet's alias where it says
/// something, else from the sample keys.
fn read_key(
    attr: &str,
    alias: Option<&str>,
    rows: &[usize],
    st: &mut Rows,
    naming: &Naming,
    warnings: &mut Vec<String>,
    odd: &mut Vec<usize>,
) -> Result<Template, Miss> {
    let Some(alias) = alias else {
        return read_samples(attr, rows, st, naming);
    };
    let mut said = Vec::new();
    let read = read_alias(attr, alias, rows, st, &mut said);
    match read {
        Alias::Template(t, off) => {
            warnings.extend(said);
            odd.extend(off);
            Ok(t)
        }
        Alias::Silent if rows.is_empty() => Err(Miss::Shape),
        Alias::Silent => read_samples(attr, rows, st, naming),
        Alias::Unfit(reason) if rows.is_empty() => {
            let literal = singletable::template::grammar::unparse(&[singletable::template::grammar::Piece::Literal(alias.to_string())]);
            warnings.push(format!("{reason} and the sample items do not give one; kept as literal text"));
            Template::parse(&literal, |_| None).map_err(|_| Miss::Shape)
        }
        Alias::Unfit(reason) => {
            let t = read_samples(attr, rows, st, naming)?;
            warnings.push(format!("{reason}; recovered `{}` from the sample items", t.source));
            Ok(t)
        }
    }
}
