//! Deterministic sample items of an entity, for models and docs.
//!
//! Values are synthesized per attribute — by the kind of the placeholder
//! it fills when it is a key field, else by its stored type — and the keys
//! are then rendered by the real template evaluator
//! ([`EntityDesign::render_keys`]), so every sample key is one the
//! application itself would write.
//!
//! The values are chosen to be readable and distinct: strings are
//! `"<attribute>-<n>"` (without the characters that delimit the attribute
//! in a template), integers differ between attributes, the table's TTL
//! attribute holds epoch seconds, and attributes that may be absent are
//! left out of every second sample, so sparse indexes show as sparse.
//! Distinct values also let [`workbench::import`](super::workbench::import)
//! recognise placeholders in the keys again.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::primitives::Blob;
use singletable::{AttrType, AttributeValue, EntityDesign, KeyKind, TableDesign};

use crate::error::MigrateError;
pub use crate::raw::RawItem;

/// 2026-01-01T00:00:00Z: the first sample's TTL value.
const TTL_BASE: i64 = 1_767_225_600;

/// How a key field is written, gathered over every template of an entity.
#[derive(Debug, Default)]
struct KeyUse {
    kind: Option<KeyKind>,
    pad: Option<u8>,
    /// Characters that end the field somewhere: its values may not
    /// contain them.
    delimiters: BTreeSet<char>,
}

fn key_uses(entity: &EntityDesign) -> Vec<(String, KeyUse)> {
    let mut uses: Vec<(String, KeyUse)> = Vec::new();
    for key in entity.key_designs() {
        let segments = &key.template.segments;
        for (i, seg) in segments.iter().enumerate() {
            let singletable::template::Segment::Field(f) = seg else { continue };
            let at = match uses.iter().position(|(a, _)| *a == f.attr) {
                Some(at) => at,
                None => {
                    uses.push((f.attr.to_string(), KeyUse::default()));
                    uses.len() - 1
                }
            };
            let u = &mut uses[at].1;
            u.kind.get_or_insert(f.kind);
            if f.pad.is_some() {
                u.pad = u.pad.max(f.pad);
            }
            if let Some(singletable::template::Segment::Literal(next)) = segments.get(i + 1) {
                u.delimiters.extend(next.chars().next());
            }
        }
    }
    uses
}

/// `text` without the characters in `banned`; never empty.
fn clean(text: &str, banned: &BTreeSet<char>) -> String {
    let kept: String = text.chars().filter(|c| !banned.contains(c)).collect();
    if !kept.is_empty() {
        return kept;
    }
    "abcdefghijklmnopqrstuvwxyz0123456789"
        .chars()
        .find(|c| !banned.contains(c))
        .map(String::from)
        .unwrap_or_else(|| "~".into())
}

/// An integer for sample `n` (1-based) of the `ordinal`-th numeric
/// attribute, fitting `pad` digits when given.
fn integer(n: usize, ordinal: usize, pad: Option<u8>) -> u128 {
    let value = (n + 10 * ordinal) as u128;
    match pad.and_then(|w| 10u128.checked_pow(w as u32)) {
        Some(limit) => value % limit,
        None => value,
    }
}

/// `count` sample items of `entity` as the application would store them:
/// payload, entity-type attribute and every key attribute.
pub fn sample_items(design: &TableDesign, entity: &EntityDesign, count: usize) -> Result<Vec<RawItem>, MigrateError> {
    let uses = key_uses(entity);
    let key_use = |attr: &str| uses.iter().find(|(a, _)| a == attr).map(|(_, u)| u);
    // Attributes to fill: the declared ones, then key fields a hand-written
    // design forgot to declare.
    let mut attrs: Vec<(String, Option<AttrType>, bool)> =
        entity.attributes.iter().map(|a| (a.name.to_string(), Some(a.ty), a.optional)).collect();
    for key in entity.key_designs() {
        for f in key.template.fields() {
            if !attrs.iter().any(|(a, _, _)| *a == f.attr) {
                attrs.push((f.attr.to_string(), None, f.optional));
            }
        }
    }
    let mut items = Vec::with_capacity(count);
    for i in 0..count {
        let n = i + 1;
        let mut item = RawItem::new();
        item.insert(entity.entity_attr.to_string(), AttributeValue::S(entity.entity.to_string()));
        let (mut numbers, mut bools) = (0, 0);
        for (name, ty, optional) in &attrs {
            if *optional && i % 2 == 1 {
                continue;
            }
            let text = || clean(&format!("{name}-{n}"), &key_use(name).map(|u| u.delimiters.clone()).unwrap_or_default());
            let value = match (key_use(name).and_then(|u| u.kind), ty) {
                (Some(KeyKind::Str), _) => AttributeValue::S(text()),
                (Some(KeyKind::Int), _) | (None, Some(AttrType::N)) => {
                    numbers += 1;
                    if design.settings.ttl_attribute.as_deref() == Some(name.as_str()) && key_use(name).is_none() {
                        AttributeValue::N((TTL_BASE + 86_400 * i as i64).to_string())
                    } else {
                        AttributeValue::N(integer(n, numbers - 1, key_use(name).and_then(|u| u.pad)).to_string())
                    }
                }
                (Some(KeyKind::Bool), _) | (None, Some(AttrType::Bool)) => {
                    bools += 1;
                    AttributeValue::Bool((i + bools - 1) % 2 == 0)
                }
                (None, Some(AttrType::B)) => AttributeValue::B(Blob::new(text().into_bytes())),
                (None, Some(AttrType::L)) => AttributeValue::L(vec![AttributeValue::S(text())]),
                (None, Some(AttrType::M)) => {
                    AttributeValue::M(HashMap::from([("value".to_string(), AttributeValue::S(text()))]))
                }
                (None, Some(AttrType::SS)) => AttributeValue::Ss(vec![format!("{}a", text()), format!("{}b", text())]),
                (None, Some(AttrType::NS)) => AttributeValue::Ns(vec![n.to_string(), (n + 1).to_string()]),
                (None, Some(AttrType::BS)) => AttributeValue::Bs(vec![Blob::new(text().into_bytes())]),
                // S, serde-encoded (`any`) and undeclared key fields: strings.
                (None, _) => AttributeValue::S(text()),
            };
            item.insert(name.clone(), value);
        }
        let keys = entity.render_keys(&item).map_err(|e| {
            MigrateError::Other(format!("entity `{}`: cannot render the keys of a sample item: {e}", entity.entity))
        })?;
        for (attr, key) in keys {
            item.insert(attr, AttributeValue::S(key));
        }
        items.push(item);
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::design::fixtures;

    fn s(item: &RawItem, attr: &str) -> String {
        match &item[attr] {
            AttributeValue::S(s) => s.clone(),
            AttributeValue::N(n) => n.clone(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn samples_carry_keys_rendered_by_the_evaluator() {
        let design = fixtures::design();
        let task = design.entity("Task").unwrap();
        let items = sample_items(&design, task, 3).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(s(&items[0], "pk"), "ORG#org_id-1");
        assert_eq!(s(&items[0], "sk"), "TASK#project_id-1#000001");
        assert_eq!(s(&items[0], "gsi2pk"), "ASSIGNEE#assignee-1");
        assert_eq!(s(&items[0], "gsi2sk"), "TASK#org_id-1|project_id-1#000001");
        assert_eq!(s(&items[0], "_et"), "Task");
        assert_eq!(s(&items[0], "expires_at"), "1767225600");
        // The second sample lacks the optional fields: out of the sparse index.
        assert!(!items[1].contains_key("assignee") && !items[1].contains_key("gsi2pk"));
        assert!(!items[1].contains_key("expires_at"));
        assert_eq!(s(&items[2], "expires_at"), (1_767_225_600 + 2 * 86_400).to_string());
        // Deterministic.
        assert_eq!(items, sample_items(&design, task, 3).unwrap());
        // Every item's keys parse back with the templates.
        for item in &items {
            let sk = s(item, "sk");
            let fields = task.sk.template.parse_key(&sk, "Task", "sk").unwrap();
            assert_eq!(fields.len(), 2);
        }
    }

    #[test]
    fn values_avoid_their_delimiters() {
        let mut banned = BTreeSet::new();
        banned.insert('-');
        assert_eq!(clean("org_id-1", &banned), "org_id1");
        let all: BTreeSet<char> = "org_id-1".chars().collect();
        assert_eq!(clean("org_id-1", &all), "a");
        assert_eq!(integer(12, 0, Some(1)), 2);
        assert_eq!(integer(3, 2, None), 23);
        assert_eq!(integer(3, 0, Some(39)), 3);
    }
}
