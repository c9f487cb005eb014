//! What to do with one stored item: a pure function of the item, the two
//! designs and the plan, so that analysis, apply, resume and verification
//! agree.

use std::collections::HashSet;

use aws_sdk_dynamodb::types::AttributeValue;
use singletable::{EntityDesign, TableDesign};

use crate::plan::{Change, Defaults, Plan};
use crate::raw::RawItem;

/// The action for one item.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ItemAction {
    /// Already in the new form (or not ours to touch).
    Keep,
    /// New table key: write `new_item`, then delete `old_key`.
    Move { new_item: RawItem, old_key: RawItem },
    /// Same table key, other index keys: update in place, on the condition
    /// that the attributes the keys were rendered from are unchanged.
    Update { key: RawItem, set: Vec<(String, AttributeValue)>, remove: Vec<String>, expect: Vec<(String, Option<AttributeValue>)> },
    /// The entity was removed from the design.
    Delete { key: RawItem },
    /// The item belongs to no entity of either design.
    Unknown,
}

/// Everything `decide` needs, prepared once per apply.
pub(crate) struct Rules<'a> {
    pub new: &'a TableDesign,
    pub defaults: &'a Defaults,
    /// Entities whose items are rewritten.
    rewritten: HashSet<&'a str>,
    /// Entities whose items are deleted.
    removed: HashSet<&'a str>,
    /// Entities of the old design (known, even when not rewritten).
    known: HashSet<&'a str>,
    /// Every index key attribute either design uses.
    index_attrs: Vec<String>,
    entity_attr: String,
}

impl<'a> Rules<'a> {
    pub fn new(plan: &'a Plan, defaults: &'a Defaults) -> Self {
        let mut rewritten = HashSet::new();
        let mut removed = HashSet::new();
        for c in &plan.changes {
            match c {
                Change::Rewrite(r) => {
                    rewritten.insert(r.entity.as_str());
                }
                Change::RemoveEntity { entity } => {
                    removed.insert(entity.as_str());
                }
                _ => {}
            }
        }
        let mut index_attrs: Vec<String> = Vec::new();
        for design in plan.from.iter().chain(std::iter::once(&plan.to)) {
            for i in &design.indexes {
                for a in std::iter::once(&i.pk_attr).chain(i.sk_attr.as_ref()) {
                    if !index_attrs.contains(a) {
                        index_attrs.push(a.clone());
                    }
                }
            }
        }
        let known = plan.from.iter().chain(std::iter::once(&plan.to)).flat_map(|d| d.entities.iter().map(|e| e.entity.as_ref())).collect();
        let entity_attr = plan.to.entities.first().map(|e| e.entity_attr.to_string()).unwrap_or_else(|| "_et".into());
        Rules { new: &plan.to, defaults, rewritten, removed, known, index_attrs, entity_attr }
    }

    fn entity_of<'i>(&self, item: &'i RawItem) -> Option<&'i str> {
        match item.get(&self.entity_attr) {
            Some(AttributeValue::S(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    /// The table key of `item`, in the new design's key attributes (the
    /// same attributes as the old design's: the table's key schema).
    pub fn key_of(&self, item: &RawItem) -> RawItem {
        [&self.new.pk_attr, &self.new.sk_attr]
            .into_iter()
            .filter_map(|a| item.get(a).map(|v| (a.clone(), v.clone())))
            .collect()
    }

    /// `item`'s table key as text, `(pk, sk)`, to name it in reports and
    /// to tell items apart (`?` for a part that is missing or no string).
    pub fn key_text(&self, item: &RawItem) -> String {
        let part = |a: &str| item.get(a).and_then(|v| v.as_s().ok()).cloned().unwrap_or_else(|| "?".into());
        format!("({}, {})", part(&self.new.pk_attr), part(&self.new.sk_attr))
    }

    /// Decides what to do with `item`. `Err` carries a reason the item
    /// cannot be rewritten (a missing attribute without default, an empty
    /// key part ...): apply stops on it, as plan reported it.
    pub fn decide(&self, item: &RawItem) -> Result<ItemAction, String> {
        let Some(entity) = self.entity_of(item) else { return Ok(ItemAction::Unknown) };
        if self.removed.contains(entity) {
            return Ok(ItemAction::Delete { key: self.key_of(item) });
        }
        if !self.rewritten.contains(entity) {
            return Ok(if self.known.contains(entity) { ItemAction::Keep } else { ItemAction::Unknown });
        }
        let design = self.new.entity(entity).expect("rewritten entities are in the new design");
        self.rewrite(design, item)
    }

    fn rewrite(&self, design: &EntityDesign, item: &RawItem) -> Result<ItemAction, String> {
        let target = Target::of(design, item, self.defaults, &self.index_attrs).map_err(|e| e.to_string())?;
        if target.moves(item, &self.new.pk_attr, &self.new.sk_attr) {
            return Ok(ItemAction::Move { new_item: target.new_item(item), old_key: self.key_of(item) });
        }
        let mut set = target.changed_keys(item);
        if set.is_empty() && target.stale.is_empty() && target.added.is_empty() {
            return Ok(ItemAction::Keep);
        }
        // The condition pins every attribute a template reads, so a
        // concurrent write to one of them is never overwritten with keys
        // rendered from the old value.
        let mut expect: Vec<(String, Option<AttributeValue>)> = Vec::new();
        for f in design.key_designs().flat_map(|k| k.template.fields()) {
            if !expect.iter().any(|(a, _)| *a == f.attr) {
                expect.push((f.attr.to_string(), item.get(f.attr.as_ref()).cloned()));
            }
        }
        set.extend(target.added);
        Ok(ItemAction::Update { key: self.key_of(item), set, remove: target.stale, expect })
    }
}

/// The new form of one item: what plan analysis, apply and the copy to a
/// new table all compute, in one place.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Target {
    /// Every key attribute the new design renders (table and indexes).
    pub keys: Vec<(String, AttributeValue)>,
    /// Attributes filled from defaults because the item lacks them.
    pub added: Vec<(String, AttributeValue)>,
    /// Index key attributes the item holds that its new form does not.
    pub stale: Vec<String>,
}

impl Target {
    /// Fills `defaults` the item lacks and renders its keys with `design`;
    /// `index_attrs` are the index key attributes of both designs.
    pub fn of(design: &EntityDesign, item: &RawItem, defaults: &Defaults, index_attrs: &[String]) -> Result<Target, singletable::Error> {
        let mut added: Vec<(String, AttributeValue)> = Vec::new();
        for ((entity, attr), value) in defaults {
            if entity == design.entity.as_ref() && !item.contains_key(attr) {
                added.push((attr.clone(), value.clone()));
            }
        }
        added.sort_by(|a, b| a.0.cmp(&b.0));
        let rendered = if added.is_empty() {
            design.render_keys(item)
        } else {
            let mut filled = item.clone();
            filled.extend(added.iter().cloned());
            design.render_keys(&filled)
        }?;
        let keys: Vec<(String, AttributeValue)> = rendered.into_iter().map(|(a, v)| (a, AttributeValue::S(v))).collect();
        let stale = index_attrs.iter().filter(|a| item.contains_key(*a) && !keys.iter().any(|(k, _)| k == *a)).cloned().collect();
        Ok(Target { keys, added, stale })
    }

    /// Whether the table key changes (the item moves).
    pub fn moves(&self, item: &RawItem, pk_attr: &str, sk_attr: &str) -> bool {
        self.keys.iter().any(|(a, v)| (a == pk_attr || a == sk_attr) && item.get(a) != Some(v))
    }

    /// The key attributes whose value changes.
    pub fn changed_keys(&self, item: &RawItem) -> Vec<(String, AttributeValue)> {
        self.keys.iter().filter(|(a, v)| item.get(a) != Some(v)).cloned().collect()
    }

    /// Whether the item already is in its new form.
    pub fn is_current(&self, item: &RawItem) -> bool {
        self.added.is_empty() && self.stale.is_empty() && self.changed_keys(item).is_empty()
    }

    /// The whole new item: stale index keys dropped, defaults and new keys
    /// written.
    pub fn new_item(&self, item: &RawItem) -> RawItem {
        let mut out = item.clone();
        for a in &self.stale {
            out.remove(a);
        }
        out.extend(self.added.iter().cloned());
        out.extend(self.keys.iter().cloned());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::LiveTable;
    use singletable::Item as _;

    mod v1 {
        #[derive(singletable::Item)]
        #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
        #[item(index(name = "gsi1", pk = "EMAIL#{email}"))]
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
    mod v2 {
        #[derive(singletable::Item)]
        #[item(entity = "User", pk = "TENANT#{org}", sk = "USER#{id}")]
        #[item(index(name = "gsi2", pk = "R#{region}"))]
        pub struct User {
            pub org: String,
            pub id: String,
            pub email: String,
            pub region: String,
        }
    }
    mod v3 {
        #[derive(singletable::Item)]
        #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
        #[item(index(name = "gsi1", pk = "MAIL#{email}"))]
        pub struct User {
            pub org: String,
            pub id: String,
            pub email: String,
        }
    }

    fn plan(old: TableDesign, new: TableDesign) -> Plan {
        let changes = crate::plan::diff(Some(&old), &new, &LiveTable::as_created(&old)).unwrap();
        Plan { table: old.table.clone(), from: Some(old), to: new, changes, entities: vec![], fingerprint: String::new(), defaults: vec![] }
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn user_v1() -> RawItem {
        v1::User { org: "acme".into(), id: "ann".into(), email: "a@x".into() }.to_item().unwrap()
    }

    #[test]
    fn a_move_carries_payload_and_new_keys_and_drops_stale_index_keys() {
        let old = TableDesign::new("t").entity::<v1::User>().entity::<v1::Note>().build().unwrap();
        let new = TableDesign::new("t").entity::<v2::User>().build().unwrap();
        let p = plan(old, new);
        let defaults: Defaults = [(("User".to_string(), "region".to_string()), s("eu"))].into();
        let rules = Rules::new(&p, &defaults);
        let ItemAction::Move { new_item, old_key } = rules.decide(&user_v1()).unwrap() else { panic!() };
        assert_eq!(old_key, [("pk".to_string(), s("ORG#acme")), ("sk".to_string(), s("USER#ann"))].into());
        assert_eq!(new_item["pk"], s("TENANT#acme"));
        assert_eq!(new_item["gsi2pk"], s("R#eu"));
        assert_eq!(new_item["region"], s("eu"));
        assert_eq!(new_item["email"], s("a@x"));
        assert!(!new_item.contains_key("gsi1pk"));
        // The moved item is already in the new form: nothing more to do.
        assert_eq!(rules.decide(&new_item).unwrap(), ItemAction::Keep);
        // Notes were removed from the design.
        let note = v1::Note { org: "acme".into(), id: "n".into() }.to_item().unwrap();
        assert!(matches!(rules.decide(&note).unwrap(), ItemAction::Delete { .. }));
    }

    #[test]
    fn a_missing_attribute_without_default_is_refused() {
        let old = TableDesign::new("t").entity::<v1::User>().build().unwrap();
        let new = TableDesign::new("t").entity::<v2::User>().build().unwrap();
        let p = plan(old, new);
        let defaults = Defaults::new();
        let err = Rules::new(&p, &defaults).decide(&user_v1()).unwrap_err();
        assert!(err.contains("region"), "{err}");
    }

    #[test]
    fn an_index_change_updates_in_place_under_a_condition() {
        let old = TableDesign::new("t").entity::<v1::User>().build().unwrap();
        let new = TableDesign::new("t").entity::<v3::User>().build().unwrap();
        let p = plan(old, new);
        let defaults = Defaults::new();
        let rules = Rules::new(&p, &defaults);
        let ItemAction::Update { key, set, remove, expect } = rules.decide(&user_v1()).unwrap() else { panic!() };
        assert_eq!(key.len(), 2);
        assert_eq!(set, vec![("gsi1pk".to_string(), s("MAIL#a@x"))]);
        assert!(remove.is_empty());
        assert!(expect.contains(&("email".to_string(), Some(s("a@x")))));
        let mut done = user_v1();
        done.insert("gsi1pk".into(), s("MAIL#a@x"));
        assert_eq!(rules.decide(&done).unwrap(), ItemAction::Keep);
        let mut stranger = user_v1();
        stranger.insert("_et".into(), s("Alien"));
        assert_eq!(rules.decide(&stranger).unwrap(), ItemAction::Unknown);
    }
}
