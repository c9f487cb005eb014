//! What only the data can tell: per-entity counts, sample items before and
//! after, key collisions and items lacking an attribute the new templates
//! need, and the write units apply will spend.
//!
//! [`analyze`] scans the whole table once, in parallel segments, with
//! strongly consistent reads. It keeps every item's key in memory (to find
//! collisions), so memory grows with the table: this is planning, run once
//! per migration. What it decides for each item mirrors what apply does:
//! keys are re-rendered from the item's stored attributes with the new
//! entity design's [`render_keys`](singletable::EntityDesign::render_keys),
//! after filling absent attributes from the defaults.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use singletable::template::KeyKind;
use singletable::{item_size, EntityDesign, Error, TableDesign};

use crate::decide::Target;
use crate::error::MigrateError;
use crate::fingerprint::{hash_map, Fnv64};
use crate::plan::Change;
use crate::raw::RawItem;
use crate::reserved::is_reserved_in;

pub use crate::plan::{Defaults, EntityReport};

type Key = (String, String);

/// How to analyze.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// Parallel scan segments (at least 1).
    pub segments: u32,
    /// Values for attributes old items lack.
    pub defaults: Defaults,
    /// Write budget (WCU per second) to estimate durations at; `None` for
    /// unthrottled.
    pub max_wcu: Option<f64>,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions { segments: 4, defaults: Defaults::new(), max_wcu: None }
    }
}

/// Parses a default given as `Entity.attribute=value` against the new
/// design: the attribute must be a placeholder of one of the entity's key
/// templates (by stored attribute or Rust field name), and the value is
/// typed as that placeholder is (string, integer or `true`/`false`).
pub fn parse_default(spec: &str, design: &TableDesign) -> Result<((String, String), AttributeValue), MigrateError> {
    let bad = |why: String| MigrateError::Other(format!("--default {spec}: {why}"));
    let (target, value) = spec.split_once('=').ok_or_else(|| bad("expected Entity.attribute=value".into()))?;
    let (entity, attr) = target.split_once('.').ok_or_else(|| bad("expected Entity.attribute=value".into()))?;
    let e = design.entity(entity).ok_or_else(|| {
        let known: Vec<&str> = design.entities.iter().map(|e| e.entity.as_ref()).collect();
        bad(format!("the design has no entity `{entity}` (it has {})", known.join(", ")))
    })?;
    let field = e
        .key_designs()
        .flat_map(|k| k.template.fields())
        .find(|f| f.attr == attr || f.field == attr)
        .ok_or_else(|| bad(format!("`{attr}` is not in a key template of {entity}; defaults fill key fields only")))?;
    if value.is_empty() {
        return Err(bad("the value is empty; key parts may not be empty".into()));
    }
    let value = match field.kind {
        KeyKind::Str => AttributeValue::S(value.to_string()),
        KeyKind::Int => {
            let n: i128 = value.parse().map_err(|_| bad(format!("`{attr}` is an integer field; `{value}` is not an integer")))?;
            AttributeValue::N(n.to_string())
        }
        KeyKind::Bool => match value {
            "true" => AttributeValue::Bool(true),
            "false" => AttributeValue::Bool(false),
            _ => return Err(bad(format!("`{attr}` is a boolean field: give true or false"))),
        },
    };
    Ok(((entity.to_string(), field.attr.to_string()), value))
}

/// Scans `table` and reports, per entity, what the plan's `changes` will
/// do to its items; see the [module docs](self).
///
/// Reserved items (the toolkit's own) are skipped. Items whose entity type
/// neither design knows are reported with a warning (`unknown: true`).
/// A plan that creates the table scans nothing; one that copies to a new
/// table renders every item of the new design's entities for the copy.
pub async fn analyze(
    client: &Client,
    table: &str,
    old: Option<&TableDesign>,
    new: &TableDesign,
    changes: &[Change],
    opts: &AnalyzeOptions,
) -> Result<Vec<EntityReport>, MigrateError> {
    if changes.iter().any(|c| matches!(c, Change::CreateTable { .. })) {
        return Ok(Vec::new());
    }
    let rules = Arc::new(Rules::new(table, old, new, changes, &opts.defaults));
    let total = opts.segments.max(1);
    let mut tasks = Vec::with_capacity(total as usize);
    for segment in 0..total {
        let (client, rules) = (client.clone(), rules.clone());
        tasks.push(tokio::spawn(async move { scan_segment(client, rules, segment, total).await }));
    }
    let mut accs = Vec::with_capacity(tasks.len());
    for task in tasks {
        let acc = task.await.map_err(|e| MigrateError::Other(format!("scan of `{table}` failed: {e}")))??;
        accs.push(acc);
    }
    Ok(rules.finish(accs, opts.max_wcu))
}

async fn scan_segment(client: Client, rules: Arc<Rules>, segment: u32, total: u32) -> Result<Acc, MigrateError> {
    let mut acc = Acc::new(rules.slots.len());
    let mut start: Option<RawItem> = None;
    loop {
        let out = crate::retry::retrying(|| {
            client
                .scan()
                .table_name(&rules.table)
                .segment(segment as i32)
                .total_segments(total as i32)
                .consistent_read(true)
                .set_exclusive_start_key(start.clone())
                .send()
        })
        .await
        .map_err(|e| MigrateError::dynamo("Scan", &rules.table, e))?;
        for item in out.items.unwrap_or_default() {
            acc.add(&rules, item);
        }
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    Ok(acc)
}

/// What the plan does to one entity's items.
#[derive(Debug, Clone)]
enum Treat {
    /// Nothing: counted only.
    Keep,
    /// Keys re-rendered with this (new) design; moved or updated in place.
    Rewrite(EntityDesign),
    /// Deleted.
    Remove,
    /// Copied into a new table with this (new) design.
    Copy(EntityDesign),
    /// Left behind by a copy to a new table.
    NotCopied,
}

#[derive(Debug)]
struct Slot {
    name: String,
    /// The design that recognises the entity's items.
    owner: EntityDesign,
    treat: Treat,
}

/// Everything the per-item decision needs, prepared once.
#[derive(Debug)]
struct Rules {
    table: String,
    /// The scanned table's key attributes.
    pk_attr: String,
    sk_attr: String,
    /// The new design's table key attributes (differ only for a copy).
    new_pk_attr: String,
    new_sk_attr: String,
    /// Entity-type attributes to look at (the new design's first).
    entity_attrs: Vec<String>,
    slots: Vec<Slot>,
    by_name: HashMap<String, usize>,
    defaults: Defaults,
    /// Table and index key attributes of both designs, in display order:
    /// the attributes compared, shown in samples and left out of the
    /// payload digest.
    key_attrs: Vec<String>,
    /// Index key attributes of both designs (stale ones are removed).
    index_attrs: Vec<String>,
    copy: bool,
}

fn push_unique(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}

impl Rules {
    fn new(table: &str, old: Option<&TableDesign>, new: &TableDesign, changes: &[Change], defaults: &Defaults) -> Self {
        let copy = changes.iter().any(|c| matches!(c, Change::CopyToNewTable { .. }));
        let scanned = old.unwrap_or(new);
        let mut entity_attrs = Vec::new();
        for d in std::iter::once(new).chain(old) {
            for e in &d.entities {
                push_unique(&mut entity_attrs, &e.entity_attr);
            }
        }
        let mut key_attrs = Vec::new();
        for a in [&scanned.pk_attr, &scanned.sk_attr, &new.pk_attr, &new.sk_attr] {
            push_unique(&mut key_attrs, a);
        }
        let mut index_attrs = Vec::new();
        for d in std::iter::once(scanned).chain(std::iter::once(new)) {
            for i in &d.indexes {
                for a in std::iter::once(&i.pk_attr).chain(i.sk_attr.as_ref()) {
                    push_unique(&mut key_attrs, a);
                    push_unique(&mut index_attrs, a);
                }
            }
        }
        let rewritten = |name: &str| changes.iter().any(|c| matches!(c, Change::Rewrite(r) if r.entity == name));
        let removed = |name: &str| changes.iter().any(|c| matches!(c, Change::RemoveEntity { entity } if entity == name));
        let mut slots = Vec::new();
        for e in &new.entities {
            let treat = if copy {
                Treat::Copy(e.clone())
            } else if rewritten(&e.entity) {
                Treat::Rewrite(e.clone())
            } else {
                Treat::Keep
            };
            slots.push(Slot { name: e.entity.to_string(), owner: e.clone(), treat });
        }
        for e in old.into_iter().flat_map(|d| d.entities.iter()) {
            if new.entity(&e.entity).is_some() {
                continue;
            }
            let treat = if copy {
                Treat::NotCopied
            } else if removed(&e.entity) {
                Treat::Remove
            } else {
                Treat::Keep
            };
            slots.push(Slot { name: e.entity.to_string(), owner: e.clone(), treat });
        }
        let by_name = slots.iter().enumerate().map(|(i, s)| (s.name.clone(), i)).collect();
        Rules {
            table: table.to_string(),
            pk_attr: scanned.pk_attr.clone(),
            sk_attr: scanned.sk_attr.clone(),
            new_pk_attr: new.pk_attr.clone(),
            new_sk_attr: new.sk_attr.clone(),
            entity_attrs,
            slots,
            by_name,
            defaults: defaults.clone(),
            key_attrs,
            index_attrs,
            copy,
        }
    }

    fn key_of(&self, item: &RawItem) -> Key {
        (show_value(item.get(&self.pk_attr)), show_value(item.get(&self.sk_attr)))
    }

    fn show_key(&self, key: &Key) -> String {
        format!("{}={} {}={}", self.pk_attr, key.0, self.sk_attr, key.1)
    }

    fn show_new_key(&self, key: &Key) -> String {
        format!("{}={} {}={}", self.new_pk_attr, key.0, self.new_sk_attr, key.1)
    }

    /// The entity slot an item belongs to, or the type name it carries.
    fn classify(&self, item: &RawItem) -> Result<usize, Option<String>> {
        let mut carried = None;
        for attr in &self.entity_attrs {
            if let Some(AttributeValue::S(name)) = item.get(attr) {
                if let Some(&slot) = self.by_name.get(name) {
                    if self.slots[slot].owner.owns(item) {
                        return Ok(slot);
                    }
                }
                carried.get_or_insert_with(|| name.clone());
            }
        }
        Err(carried)
    }

    fn payload_hash(&self, item: &RawItem) -> u64 {
        let mut h = Fnv64::new();
        hash_map(&mut h, item, |name| !self.key_attrs.iter().any(|k| k == name));
        h.finish()
    }

    /// `attr=value` for the key attributes an item has, in display order.
    fn show_keys(&self, item: &RawItem) -> String {
        let parts: Vec<String> =
            self.key_attrs.iter().filter_map(|a| item.get(a).map(|v| format!("{a}={}", show_value(Some(v))))).collect();
        parts.join(" ")
    }

    fn show_rendered(&self, rendered: &[(String, String)]) -> String {
        let mut parts: Vec<&(String, String)> = rendered.iter().collect();
        parts.sort_by_key(|(a, _)| self.key_attrs.iter().position(|k| k == a).unwrap_or(usize::MAX));
        parts.iter().map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join(" ")
    }

    fn examine(&self, item: RawItem) -> Finding {
        if is_reserved_in(&item, &self.pk_attr) {
            return Finding::Reserved;
        }
        let slot = match self.classify(&item) {
            Ok(slot) => slot,
            Err(name) => {
                let occupies = (!self.copy).then(|| (self.key_of(&item), self.payload_hash(&item)));
                return Finding::Unknown { name, occupies };
            }
        };
        let key = self.key_of(&item);
        let design = match &self.slots[slot].treat {
            Treat::Keep => return Finding::Keep { slot, key, payload: self.payload_hash(&item) },
            Treat::NotCopied => return Finding::NotCopied { slot },
            Treat::Remove => {
                let before = self.show_keys(&item);
                return Finding::Delete { slot, key, wcu: wcu(item_size(&item)), before };
            }
            Treat::Rewrite(d) | Treat::Copy(d) => d,
        };
        let old_size = item_size(&item);
        let before = self.show_keys(&item);
        let target = match Target::of(design, &item, &self.defaults, &self.index_attrs) {
            Ok(t) => t,
            Err(error) => return Finding::Failed { slot, key, error, payload: self.payload_hash(&item) },
        };
        let rendered: Vec<(String, String)> = target.keys.iter().map(|(a, v)| (a.clone(), show_value(Some(v)))).collect();
        let after = self.show_rendered(&rendered);
        let get = |attr: &str| rendered.iter().find(|(a, _)| a == attr).map(|(_, v)| v.clone()).unwrap_or_default();
        let new_key: Key = (get(&self.new_pk_attr), get(&self.new_sk_attr));
        let mut new_item = target.new_item(&item);
        if self.copy {
            // The old table's key attributes do not exist in the copy.
            for a in [&self.pk_attr, &self.sk_attr] {
                if !target.keys.iter().any(|(k, _)| k == a) {
                    new_item.remove(a);
                }
            }
        }
        // Key attributes are left out of the digest, so this is the payload
        // with any defaults filled in.
        let payload = self.payload_hash(&new_item);
        let new_size = item_size(&new_item);
        if self.copy {
            return Finding::Change { slot, key, payload, moves: Some(new_key), wcu: wcu(new_size), before, after };
        }
        let moves = target.moves(&item, &self.new_pk_attr, &self.new_sk_attr);
        if !moves && target.is_current(&item) {
            return Finding::Keep { slot, key, payload };
        }
        let (moves, units) = if moves {
            (Some(new_key), wcu(new_size) + wcu(old_size))
        } else {
            (None, wcu(old_size.max(new_size)))
        };
        Finding::Change { slot, key, payload, moves, wcu: units, before, after }
    }

    fn finish(&self, accs: Vec<Acc>, max_wcu: Option<f64>) -> Vec<EntityReport> {
        let mut total = Acc::new(self.slots.len());
        for acc in accs {
            total.merge(acc);
        }
        let Acc { mut entities, unknown, occupants, mut movers } = total;

        // Collisions. Every new key must be distinct from every other new
        // key and from every key that exists now (but the item's own):
        // apply writes the new form before deleting the old, in an order
        // no one controls, so landing on any existing item overwrites it.
        let mut collisions: Vec<Vec<String>> = vec![Vec::new(); self.slots.len()];
        movers.sort_by(|a, b| (&a.new, &a.old).cmp(&(&b.new, &b.old)));
        let occupied: HashMap<Key, Occupant> = occupants.into_iter().collect();
        let mut i = 0;
        while i < movers.len() {
            let mut j = i + 1;
            while j < movers.len() && movers[j].new == movers[i].new {
                j += 1;
            }
            let group = &movers[i..j];
            if group.len() > 1 {
                let olds: Vec<String> = group.iter().map(|m| self.show_key(&m.old)).collect();
                let text = format!("{} would all become {}", olds.join(", "), self.show_new_key(&group[0].new));
                let mut slots: Vec<usize> = group.iter().map(|m| m.slot).collect();
                slots.dedup();
                for s in slots {
                    collisions[s].push(text.clone());
                }
            }
            if !self.copy {
                for m in group {
                    let Some(occ) = occupied.get(&m.new) else { continue };
                    if occ.slot == Some(m.slot) && !occ.moving && occ.payload == m.payload {
                        // The new form is already there with the same
                        // payload: an interrupted apply's copy. Old and
                        // new form are one item, counted once (apply's
                        // verification holds the table to this count).
                        entities[m.slot].already_copied += 1;
                        entities[m.slot].items -= 1;
                        continue;
                    }
                    let whose = match occ.slot {
                        Some(s) => format!("a `{}` item", self.slots[s].name),
                        None => "an item of unknown type".to_string(),
                    };
                    let fate = if occ.moving { "that moves too" } else { "that stays" };
                    collisions[m.slot].push(format!(
                        "{} would become {}, the key of {whose} {fate}",
                        self.show_key(&m.old),
                        self.show_new_key(&m.new)
                    ));
                }
            }
            i = j;
        }

        let mut reports = Vec::new();
        for (slot, acc) in entities.iter_mut().enumerate() {
            let name = &self.slots[slot].name;
            let mut errors = Vec::new();
            let mut warnings = Vec::new();
            for (attr, p) in &acc.missing {
                errors.push(format!(
                    "{name}: {} of {} items lack `{attr}`, which the new key `{}` needs (e.g. {}); give a value with --default {name}.{attr}=VALUE, or write the attribute first",
                    p.count,
                    acc.items,
                    p.detail,
                    self.show_key(&p.sample)
                ));
            }
            for p in acc.failures.values() {
                errors.push(format!("{}; {} item{}, e.g. {}", p.detail, p.count, plural(p.count), self.show_key(&p.sample)));
            }
            let found = &collisions[slot];
            if !found.is_empty() {
                let shown: Vec<&str> = found.iter().take(3).map(String::as_str).collect();
                let more = if found.len() > 3 { format!("; and {} more", found.len() - 3) } else { String::new() };
                errors.push(format!(
                    "{name}: {} key collision{} (apply would overwrite items): {}{more}",
                    found.len(),
                    plural(found.len() as u64),
                    shown.join("; ")
                ));
            }
            if acc.already_copied > 0 {
                warnings.push(format!(
                    "{name}: {} item{} already exist{} in the new form beside the old (an interrupted apply?); apply deletes the old copies",
                    acc.already_copied,
                    plural(acc.already_copied),
                    if acc.already_copied == 1 { "s" } else { "" }
                ));
            }
            if acc.not_copied > 0 {
                warnings.push(format!(
                    "{name}: {} item{} of this entity, which the new design lacks, will not be copied",
                    acc.not_copied,
                    plural(acc.not_copied)
                ));
            }
            let samples = std::mem::take(&mut acc.samples).into_iter().map(|(_, b, a)| (b, a)).collect();
            reports.push(EntityReport {
                entity: name.clone(),
                items: acc.items,
                changing: acc.changing,
                samples,
                errors,
                warnings,
                write_units: acc.write_units,
                max_wcu,
                duration_secs: max_wcu.filter(|r| *r > 0.0).map(|r| acc.write_units as f64 / r),
                unknown: false,
            });
        }
        for (name, count) in unknown {
            let what = match &name {
                Some(n) => format!("of entity type `{n}`, which neither design knows"),
                None => format!("without an entity-type attribute ({})", self.entity_attrs.join(", ")),
            };
            let fate = if self.copy { "they will not be copied" } else { "apply leaves them as they are" };
            reports.push(EntityReport {
                entity: name.unwrap_or_else(|| "(none)".to_string()),
                items: count,
                warnings: vec![format!("{count} item{} {what}; {fate}", plural(count))],
                unknown: true,
                ..Default::default()
            });
        }
        reports
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Write capacity units of one write of an item of `size` bytes.
fn wcu(size: usize) -> u64 {
    (size.div_ceil(1024)).max(1) as u64
}

fn show_value(value: Option<&AttributeValue>) -> String {
    match value {
        Some(AttributeValue::S(s)) => s.clone(),
        Some(AttributeValue::N(n)) => n.clone(),
        Some(AttributeValue::B(b)) => format!("<{} bytes>", b.as_ref().len()),
        Some(other) => format!("<{}>", singletable::type_name(other)),
        None => "(none)".to_string(),
    }
}

enum Finding {
    Reserved,
    Unknown { name: Option<String>, occupies: Option<(Key, u64)> },
    Keep { slot: usize, key: Key, payload: u64 },
    Change { slot: usize, key: Key, payload: u64, moves: Option<Key>, wcu: u64, before: String, after: String },
    Delete { slot: usize, key: Key, wcu: u64, before: String },
    NotCopied { slot: usize },
    Failed { slot: usize, key: Key, error: Error, payload: u64 },
}

#[derive(Debug, Clone)]
struct Problem {
    count: u64,
    /// The smallest key of an item with the problem.
    sample: Key,
    /// What the problem is (the error of the sample item).
    detail: String,
}

impl Problem {
    fn add(map: &mut BTreeMap<String, Problem>, group: String, sample: Key, detail: String) {
        Problem::merge(map, group, Problem { count: 1, sample, detail });
    }

    fn merge(map: &mut BTreeMap<String, Problem>, group: String, p: Problem) {
        match map.get_mut(&group) {
            Some(existing) => {
                existing.count += p.count;
                if p.sample < existing.sample {
                    existing.sample = p.sample;
                    existing.detail = p.detail;
                }
            }
            None => {
                map.insert(group, p);
            }
        }
    }
}

#[derive(Debug, Default)]
struct EntityAcc {
    items: u64,
    changing: u64,
    write_units: u64,
    already_copied: u64,
    not_copied: u64,
    samples: Vec<(Key, String, String)>,
    /// Missing attributes, by attribute name; detail: the key attribute.
    missing: BTreeMap<String, Problem>,
    /// Other render failures, by kind.
    failures: BTreeMap<String, Problem>,
}

impl EntityAcc {
    fn sample(&mut self, key: Key, before: String, after: String) {
        if self.samples.len() == 3 && self.samples.last().is_some_and(|(k, _, _)| *k <= key) {
            return;
        }
        self.samples.push((key, before, after));
        self.samples.sort_by(|a, b| a.0.cmp(&b.0));
        self.samples.truncate(3);
    }

    fn merge(&mut self, other: EntityAcc) {
        self.items += other.items;
        self.changing += other.changing;
        self.write_units += other.write_units;
        self.already_copied += other.already_copied;
        self.not_copied += other.not_copied;
        for (k, b, a) in other.samples {
            self.sample(k, b, a);
        }
        for (g, p) in other.missing {
            Problem::merge(&mut self.missing, g, p);
        }
        for (g, p) in other.failures {
            Problem::merge(&mut self.failures, g, p);
        }
    }
}

#[derive(Debug, Clone)]
struct Occupant {
    /// Entity slot (`None`: unknown type).
    slot: Option<usize>,
    payload: u64,
    moving: bool,
}

#[derive(Debug)]
struct Mover {
    old: Key,
    new: Key,
    slot: usize,
    payload: u64,
}

/// One segment's findings.
#[derive(Debug)]
struct Acc {
    entities: Vec<EntityAcc>,
    unknown: BTreeMap<Option<String>, u64>,
    occupants: Vec<(Key, Occupant)>,
    movers: Vec<Mover>,
}

impl Acc {
    fn new(slots: usize) -> Self {
        Acc { entities: (0..slots).map(|_| EntityAcc::default()).collect(), unknown: BTreeMap::new(), occupants: Vec::new(), movers: Vec::new() }
    }

    fn merge(&mut self, other: Acc) {
        for (mine, theirs) in self.entities.iter_mut().zip(other.entities) {
            mine.merge(theirs);
        }
        for (name, n) in other.unknown {
            *self.unknown.entry(name).or_default() += n;
        }
        self.occupants.extend(other.occupants);
        self.movers.extend(other.movers);
    }

    fn add(&mut self, rules: &Rules, item: RawItem) {
        match rules.examine(item) {
            Finding::Reserved => {}
            Finding::Unknown { name, occupies } => {
                *self.unknown.entry(name).or_default() += 1;
                if let Some((key, payload)) = occupies {
                    self.occupants.push((key, Occupant { slot: None, payload, moving: false }));
                }
            }
            Finding::Keep { slot, key, payload } => {
                self.entities[slot].items += 1;
                if !rules.copy {
                    self.occupants.push((key, Occupant { slot: Some(slot), payload, moving: false }));
                }
            }
            Finding::NotCopied { slot } => {
                self.entities[slot].items += 1;
                self.entities[slot].not_copied += 1;
            }
            Finding::Delete { slot, key, wcu, before } => {
                let e = &mut self.entities[slot];
                e.items += 1;
                e.changing += 1;
                e.write_units += wcu;
                e.sample(key.clone(), before, "(deleted)".to_string());
                self.occupants.push((key, Occupant { slot: Some(slot), payload: 0, moving: false }));
            }
            Finding::Change { slot, key, payload, moves, wcu, before, after } => {
                let e = &mut self.entities[slot];
                e.items += 1;
                e.changing += 1;
                e.write_units += wcu;
                e.sample(key.clone(), before, after);
                if !rules.copy {
                    self.occupants.push((key.clone(), Occupant { slot: Some(slot), payload, moving: moves.is_some() }));
                }
                if let Some(new) = moves {
                    self.movers.push(Mover { old: key, new, slot, payload });
                }
            }
            Finding::Failed { slot, key, error, payload } => {
                let e = &mut self.entities[slot];
                e.items += 1;
                if !rules.copy {
                    self.occupants.push((key.clone(), Occupant { slot: Some(slot), payload, moving: false }));
                }
                match &error {
                    Error::MissingKeyField { attribute, field, .. } => {
                        Problem::add(&mut e.missing, field.clone(), key, attribute.clone());
                    }
                    _ => {
                        let group = match &error {
                            Error::EmptyKey { attribute, field, .. } => format!("empty {attribute} {field}"),
                            Error::KeyDelimiter { attribute, field, .. } => format!("delimiter {attribute} {field}"),
                            Error::KeyFormat { attribute, field, .. } => format!("format {attribute} {field}"),
                            Error::KeyTooLong { attribute, .. } => format!("too long {attribute}"),
                            Error::Decode { path, .. } => format!("type {path}"),
                            other => format!("other {other}"),
                        };
                        Problem::add(&mut e.failures, group, key, error.to_string());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::LiveTable;
    use crate::plan::diff;
    use singletable::Item as _;

    mod v1 {
        #[derive(singletable::Item)]
        #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
        #[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
        pub struct User {
            pub org: String,
            pub id: String,
            pub email: String,
        }
        #[derive(singletable::Item)]
        #[item(entity = "Note", pk = "ORG#{org}", sk = "NOTE#{id}")]
        pub struct Note {
            pub org: String,
            pub id: String,
        }
    }
    mod moved {
        #[derive(singletable::Item)]
        #[item(entity = "User", pk = "TENANT#{org}", sk = "USER#{id}")]
        #[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
        pub struct User {
            pub org: String,
            pub id: String,
            pub email: String,
        }
    }
    mod by_email {
        // Keyed by email: two users sharing one collide.
        #[derive(singletable::Item)]
        #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{email}")]
        #[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
        pub struct User {
            pub org: String,
            pub id: String,
            pub email: String,
        }
    }
    mod regional {
        #[derive(singletable::Item)]
        #[item(entity = "User", pk = "ORG#{org}", sk = "R#{region}#USER#{id}")]
        #[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
        pub struct User {
            pub org: String,
            pub id: String,
            pub email: String,
            pub region: String,
        }
        #[derive(singletable::Item)]
        #[item(entity = "Counter", pk = "C#{n}", sk = "C")]
        pub struct Counter {
            pub n: u32,
            pub on: bool,
        }
    }

    fn design(entities: &[&EntityDesign]) -> TableDesign {
        entities.iter().fold(TableDesign::new("t"), |b, e| b.entity_design((*e).clone())).build().unwrap()
    }

    fn user(org: &str, id: &str, email: &str) -> RawItem {
        v1::User { org: org.into(), id: id.into(), email: email.into() }.to_item().unwrap()
    }

    /// Runs the per-item decisions over `items` as the scan would.
    fn run(old: &TableDesign, new: &TableDesign, items: Vec<RawItem>, defaults: Defaults) -> Vec<EntityReport> {
        let changes = diff(Some(old), new, &LiveTable::as_created(old)).unwrap();
        let rules = Rules::new("t", Some(old), new, &changes, &defaults);
        // Two "segments", to exercise merging.
        let mut a = Acc::new(rules.slots.len());
        let mut b = Acc::new(rules.slots.len());
        for (i, item) in items.into_iter().enumerate() {
            if i % 2 == 0 { a.add(&rules, item) } else { b.add(&rules, item) }
        }
        rules.finish(vec![a, b], Some(100.0))
    }

    fn report<'a>(reports: &'a [EntityReport], entity: &str) -> &'a EntityReport {
        reports.iter().find(|r| r.entity == entity).unwrap()
    }

    #[test]
    fn a_move_counts_samples_and_write_units() {
        let old = design(&[v1::User::DESIGN, v1::Note::DESIGN]);
        let new = design(&[moved::User::DESIGN, v1::Note::DESIGN]);
        let mut items: Vec<RawItem> = (0..5).map(|i| user("acme", &format!("u{i}"), &format!("u{i}@x"))).collect();
        items.push(v1::Note { org: "acme".into(), id: "n1".into() }.to_item().unwrap());
        items.push(crate::reserved::design_item(&old, 1));
        let reports = run(&old, &new, items, Defaults::new());
        let u = report(&reports, "User");
        assert_eq!((u.items, u.changing), (5, 5));
        assert_eq!(u.write_units, 10, "one put and one delete of a small item each");
        assert_eq!(u.duration_secs, Some(0.1));
        assert_eq!(
            u.samples[0],
            (
                "pk=ORG#acme sk=USER#u0 gsi1pk=EMAIL#u0@x gsi1sk=USER".to_string(),
                "pk=TENANT#acme sk=USER#u0 gsi1pk=EMAIL#u0@x gsi1sk=USER".to_string()
            )
        );
        assert_eq!(u.samples.len(), 3);
        assert!(u.errors.is_empty() && u.warnings.is_empty(), "{u:?}");
        let n = report(&reports, "Note");
        assert_eq!((n.items, n.changing), (1, 0));
        assert_eq!(reports.len(), 2, "the reserved item is skipped: {reports:?}");
    }

    #[test]
    fn a_move_already_done_changes_nothing_and_a_half_done_one_is_no_collision() {
        let old = design(&[v1::User::DESIGN]);
        let new = design(&[moved::User::DESIGN]);
        let done = moved::User { org: "acme".into(), id: "a".into(), email: "a@x".into() }.to_item().unwrap();
        let reports = run(&old, &new, vec![done.clone()], Defaults::new());
        assert_eq!(report(&reports, "User").changing, 0);
        // Both forms of one item (a crash between put and delete).
        let reports = run(&old, &new, vec![done, user("acme", "a", "a@x")], Defaults::new());
        let u = report(&reports, "User");
        assert_eq!(u.changing, 1);
        assert_eq!(u.items, 1, "both forms of one item are one item");
        assert!(u.errors.is_empty(), "{:?}", u.errors);
        assert!(u.warnings[0].contains("already exists in the new form"), "{:?}", u.warnings);
    }

    #[test]
    fn collisions_between_movers_and_with_items_that_stay() {
        let old = design(&[v1::User::DESIGN]);
        let new = design(&[by_email::User::DESIGN]);
        let items = vec![
            user("acme", "a", "same@x"),
            user("acme", "b", "same@x"),
            // Moves onto the key of `c@x`, which stays where it is.
            user("acme", "c", "d@x"),
            user("acme", "d@x", "d@x"),
        ];
        let reports = run(&old, &new, items, Defaults::new());
        let u = report(&reports, "User");
        assert_eq!(u.errors.len(), 1, "{:?}", u.errors);
        let e = &u.errors[0];
        assert!(e.starts_with("User: 2 key collisions"), "{e}");
        assert!(e.contains("pk=ORG#acme sk=USER#a, pk=ORG#acme sk=USER#b would all become pk=ORG#acme sk=USER#same@x"), "{e}");
        assert!(e.contains("pk=ORG#acme sk=USER#c would become pk=ORG#acme sk=USER#d@x, the key of a `User` item that stays"), "{e}");
    }

    #[test]
    fn missing_attributes_defaults_and_render_failures() {
        let old = design(&[v1::User::DESIGN]);
        let new = design(&[regional::User::DESIGN]);
        let mut odd = user("acme", "c", "c@x");
        odd.insert("region".into(), AttributeValue::S("e#u".into()));
        let items = vec![user("acme", "a", "a@x"), user("acme", "b", "b@x"), odd];
        let reports = run(&old, &new, items.clone(), Defaults::new());
        let u = report(&reports, "User");
        assert_eq!(u.errors.len(), 2, "{:?}", u.errors);
        assert!(u.errors[0].starts_with("User: 2 of 3 items lack `region`, which the new key `sk` needs (e.g. pk=ORG#acme sk=USER#a)"), "{}", u.errors[0]);
        assert!(u.errors[0].contains("--default User.region=VALUE"));
        assert_eq!(u.changing, 0);

        let defaults: Defaults = [parse_default("User.region=eu", &new).unwrap()].into();
        let reports = run(&old, &new, items, defaults);
        let u = report(&reports, "User");
        assert_eq!(u.changing, 2);
        assert_eq!(u.samples[0].1, "pk=ORG#acme sk=R#eu#USER#a gsi1pk=EMAIL#a@x gsi1sk=USER");
        assert_eq!(u.errors.len(), 1, "{:?}", u.errors);
        // `#` delimits the region in the new sort key.
        assert!(u.errors[0].contains("contains '#'") && u.errors[0].ends_with("1 item, e.g. pk=ORG#acme sk=USER#c"), "{}", u.errors[0]);
    }

    #[test]
    fn removed_and_unknown_entities() {
        let old = design(&[v1::User::DESIGN, v1::Note::DESIGN]);
        let new = design(&[v1::User::DESIGN]);
        let mut stray = user("acme", "z", "z@x");
        stray.insert("_et".into(), AttributeValue::S("Legacy".into()));
        let mut bare = user("acme", "y", "y@x");
        bare.remove("_et");
        let items = vec![v1::Note { org: "acme".into(), id: "n1".into() }.to_item().unwrap(), stray, bare, user("acme", "a", "a@x")];
        let reports = run(&old, &new, items, Defaults::new());
        let n = report(&reports, "Note");
        assert_eq!((n.items, n.changing, n.write_units), (1, 1, 1));
        assert_eq!(n.samples, vec![("pk=ORG#acme sk=NOTE#n1".to_string(), "(deleted)".to_string())]);
        let legacy = report(&reports, "Legacy");
        assert!(legacy.unknown);
        assert_eq!(legacy.warnings, vec!["1 item of entity type `Legacy`, which neither design knows; apply leaves them as they are".to_string()]);
        assert!(report(&reports, "(none)").warnings[0].contains("without an entity-type attribute (_et)"));
        assert_eq!(report(&reports, "User").changing, 0);
    }

    #[test]
    fn an_index_change_is_one_write_in_place() {
        let old = design(&[moved::User::DESIGN]);
        let new = TableDesign::new("t").entity_design(unindexed()).build().unwrap();
        let items = vec![moved::User { org: "o".into(), id: "a".into(), email: "a@x".into() }.to_item().unwrap()];
        let reports = run(&old, &new, items, Defaults::new());
        let u = report(&reports, "User");
        assert_eq!((u.changing, u.write_units), (1, 1));
        assert_eq!(u.samples[0], ("pk=TENANT#o sk=USER#a gsi1pk=EMAIL#a@x gsi1sk=USER".into(), "pk=TENANT#o sk=USER#a".into()));
    }

    fn unindexed() -> EntityDesign {
        let mut e = moved::User::DESIGN.clone();
        e.indexes = std::borrow::Cow::Owned(vec![]);
        e
    }

    #[test]
    fn defaults_are_typed_by_their_placeholder() {
        let d = design(&[regional::User::DESIGN, regional::Counter::DESIGN]);
        assert_eq!(parse_default("Counter.n=7", &d).unwrap().1, AttributeValue::N("7".into()));
        assert!(parse_default("Counter.n=x", &d).unwrap_err().to_string().contains("not an integer"));
        assert!(parse_default("Counter.on=true", &d).unwrap_err().to_string().contains("key fields only"));
        assert!(parse_default("Nope.n=1", &d).unwrap_err().to_string().contains("no entity `Nope`"));
        assert!(parse_default("User.region", &d).is_err());
        assert!(parse_default("User.region=", &d).is_err());
    }
}
