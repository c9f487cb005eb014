//! Planning: a pure function of (old design, new design, live table).
//!
//! [`diff`] reads no network and no clock: everything it needs arrives as
//! arguments, so each case is unit-tested below. What only the data can
//! tell (item counts, samples, key collisions, items lacking an attribute)
//! is added afterwards by [`crate::analyze`] (and recorded here as
//! [`EntityReport`]s); [`crate::planner`] does both against a live table.
//!
//! This module also holds the plan's data: [`Plan`], [`Change`] and the
//! [`Defaults`] for attributes old items lack.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use singletable::{EntityDesign, StreamView, TableDesign, TableIndex, Template};

use crate::ddb_json::{value_from_json, value_to_json};
use crate::error::MigrateError;
use crate::live::LiveTable;

/// One change the plan makes, in the order apply performs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Change {
    /// The table does not exist yet.
    CreateTable { table: String },
    /// The base key schema changed: copy every item into a new table.
    CopyToNewTable { from: String, to: String, reason: String },
    /// Time-to-live attribute drift.
    UpdateTtl { from: Option<String>, to: Option<String> },
    /// Stream drift.
    UpdateStream { from: Option<StreamView>, to: Option<StreamView> },
    /// Point-in-time recovery drift (`from: None`: the endpoint cannot say).
    UpdatePointInTimeRecovery { from: Option<bool>, to: bool },
    /// A new GSI.
    CreateIndex {
        index: TableIndex,
        /// When the index could be keyed directly on existing attributes
        /// (a multi-attribute GSI key) instead, needing no backfill.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        multi_attribute_hint: Option<String>,
    },
    /// A GSI removed (destructive: its queries stop working).
    DeleteIndex { index: TableIndex },
    /// A new entity type: nothing to write.
    AddEntity { entity: String },
    /// An entity type dropped from the design: its items are deleted
    /// (destructive, exported first).
    RemoveEntity { entity: String },
    /// Items of an entity get new keys.
    Rewrite(Rewrite),
}

/// How one entity's items change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewrite {
    /// The entity.
    pub entity: String,
    /// `Some` when the table key (pk/sk) template changes: items move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_key: Option<TableKeyChange>,
    /// Index keys added, changed or removed (updated in place).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<IndexKeyChange>,
    /// Attributes the new templates need that old items may lack.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs_attributes: Vec<String>,
}

/// A pk/sk template change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableKeyChange {
    pub old_pk: String,
    pub new_pk: String,
    pub old_sk: String,
    pub new_sk: String,
}

/// An index key change of one entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexKeyChange {
    pub index: String,
    /// Old templates (`pk`, `sk`), `None` when the entity did not use the index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<(String, Option<String>)>,
    /// New templates, `None` when the entity stops using the index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<(String, Option<String>)>,
}

/// The Terraform symbol of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `+`
    Create,
    /// `~`
    Update,
    /// `-/+`
    Replace,
    /// `-`
    Destroy,
}

impl Action {
    /// `+`, `~`, `-/+` or `-`.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Destroy => "-",
        }
    }
}

impl Change {
    /// How the change reads in the plan.
    pub fn action(&self) -> Action {
        match self {
            Change::CreateTable { .. } | Change::CreateIndex { .. } | Change::AddEntity { .. } => Action::Create,
            Change::CopyToNewTable { .. } => Action::Replace,
            Change::DeleteIndex { .. } | Change::RemoveEntity { .. } => Action::Destroy,
            Change::Rewrite(r) if r.table_key.is_some() => Action::Replace,
            Change::Rewrite(_)
            | Change::UpdateTtl { .. }
            | Change::UpdateStream { .. }
            | Change::UpdatePointInTimeRecovery { .. } => Action::Update,
        }
    }

    /// Whether applying it loses data or capability unless the user says so.
    pub fn is_destructive(&self) -> bool {
        matches!(self, Change::DeleteIndex { .. } | Change::RemoveEntity { .. })
    }
}

/// A migration plan: what [`diff`] found, plus what the data shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The live table the plan was made against.
    pub table: String,
    /// The design the table holds now (`None`: a new table).
    pub from: Option<TableDesign>,
    /// The design to reach.
    pub to: TableDesign,
    /// Changes, in apply order.
    pub changes: Vec<Change>,
    /// Per-entity findings from scanning the table (empty until analyzed).
    #[serde(default)]
    pub entities: Vec<EntityReport>,
    /// A digest of the table's state when planned; apply refuses a plan
    /// whose fingerprint no longer matches.
    #[serde(default)]
    pub fingerprint: String,
    /// Values for attributes old items lack (`--default`), kept with the
    /// plan so that applying a saved plan writes what was planned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub defaults: Vec<DefaultValue>,
}

/// One entity's findings, from scanning the table
/// ([`analyze`](crate::analyze::analyze)).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EntityReport {
    /// The entity name (for items of an unknown type: the name they carry,
    /// or `(none)` when they carry none).
    pub entity: String,
    /// Items of this entity in the table.
    pub items: u64,
    /// Items apply writes: moved, updated in place, deleted or copied.
    pub changing: u64,
    /// Up to three (before, after) key samples, as `attr=value` lists; the
    /// items with the smallest current keys, so plans are reproducible.
    pub samples: Vec<(String, String)>,
    /// Problems that block apply.
    pub errors: Vec<String>,
    /// Things worth knowing that do not block apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Estimated write capacity units to apply (table writes; each index an
    /// item is projected into costs its own writes on top).
    pub write_units: u64,
    /// The write budget the duration is estimated at (`None`: unthrottled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wcu: Option<f64>,
    /// Estimated seconds of writing at `max_wcu` (`None`: unthrottled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
    /// True for items whose entity type neither design knows: apply leaves
    /// them alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unknown: bool,
}

/// Values for attributes old items lack, by (entity, attribute): what the
/// CLI's `--default User.region=eu` gives. Applied to an item only when it
/// lacks the attribute.
pub type Defaults = HashMap<(String, String), AttributeValue>;

/// A value for an attribute that old items lack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefaultValue {
    pub entity: String,
    pub attribute: String,
    /// The value as typed DynamoDB JSON (`{"S": "eu"}`).
    pub value: serde_json::Value,
}

impl DefaultValue {
    /// Turns `--default` values into the form a plan stores.
    pub fn from_defaults(defaults: &Defaults) -> Result<Vec<DefaultValue>, MigrateError> {
        let mut out: Vec<DefaultValue> = defaults
            .iter()
            .map(|((entity, attribute), v)| {
                let value = value_to_json(v).map_err(|e| MigrateError::Other(format!("default for {entity}.{attribute}: {e}")))?;
                Ok(DefaultValue { entity: entity.clone(), attribute: attribute.clone(), value })
            })
            .collect::<Result<_, MigrateError>>()?;
        out.sort_by(|a, b| (&a.entity, &a.attribute).cmp(&(&b.entity, &b.attribute)));
        Ok(out)
    }
}

impl Plan {
    /// The stored defaults as apply takes them.
    pub fn defaults(&self) -> Result<Defaults, MigrateError> {
        self.defaults
            .iter()
            .map(|d| {
                let value = value_from_json(&d.value)
                    .map_err(|e| MigrateError::Other(format!("plan default {}.{}: {e}", d.entity, d.attribute)))?;
                Ok(((d.entity.clone(), d.attribute.clone()), value))
            })
            .collect()
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Errors that make the plan impossible to apply as is (collisions,
    /// missing attributes without a default, unparseable items).
    pub fn blocking_errors(&self) -> Vec<String> {
        self.entities.iter().flat_map(|e| e.errors.iter().cloned()).collect()
    }

    /// Counts for the summary line: (add, change, replace, destroy). A key
    /// move is a replacement (the new form is written, then the old one
    /// deleted: no item is lost), counted apart from destruction.
    pub fn summary(&self) -> (usize, usize, usize, usize) {
        let mut counts = (0, 0, 0, 0);
        for c in &self.changes {
            match c.action() {
                Action::Create => counts.0 += 1,
                Action::Update => counts.1 += 1,
                Action::Replace => counts.2 += 1,
                Action::Destroy => counts.3 += 1,
            }
        }
        counts
    }
}

fn key_sources(e: &EntityDesign) -> (String, String) {
    (e.pk.template.source.to_string(), e.sk.template.source.to_string())
}

fn index_sources(e: &EntityDesign, name: &str) -> Option<(String, Option<String>)> {
    e.index(name).map(|i| (i.pk.template.source.to_string(), i.sk.as_ref().map(|k| k.template.source.to_string())))
}

/// Attribute names the templates of `new` read.
fn template_attrs(e: &EntityDesign) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in e.key_designs() {
        for f in key.template.fields() {
            if !out.iter().any(|a| *a == f.attr) {
                out.push(f.attr.to_string());
            }
        }
    }
    out
}

fn templates_equal(a: &Template, b: &Template) -> bool {
    a.segments == b.segments
}

/// A hint when a new index's templates are placeholders around constant
/// text that DynamoDB's multi-attribute GSI keys could replace.
fn multi_attribute_hint(index: &TableIndex, new: &TableDesign) -> Option<String> {
    let users: Vec<&EntityDesign> = new.entities.iter().filter(|e| e.index(&index.name).is_some()).collect();
    let mut parts = Vec::new();
    for e in &users {
        let i = e.index(&index.name)?;
        let pk: Vec<&str> = i.pk.template.fields().map(|f| f.attr.as_ref()).collect();
        let sk: Vec<&str> = i.sk.iter().flat_map(|k| k.template.fields().map(|f| f.attr.as_ref())).collect();
        if pk.is_empty() || pk.len() > 4 || sk.len() > 4 {
            return None;
        }
        parts.push(format!(
            "{}: partition ({}){}",
            e.entity,
            pk.join(", "),
            if sk.is_empty() { String::new() } else { format!(", sort ({})", sk.join(", ")) }
        ));
    }
    if users.len() != 1 {
        // Entities sharing an index would each need the same attribute
        // names for a multi-attribute key; templates are the general tool.
        return None;
    }
    Some(format!(
        "could be keyed directly on existing attributes with a multi-attribute GSI key ({}), which needs no backfill",
        parts.join("; ")
    ))
}

/// Diffs the old design (recorded in the table or given by file) and the
/// live table against the new design.
pub fn diff(old: Option<&TableDesign>, new: &TableDesign, live: &LiveTable) -> Result<Vec<Change>, MigrateError> {
    new.validate()?;
    let mut changes = Vec::new();

    if !live.exists {
        changes.push(Change::CreateTable { table: new.table.clone() });
        for e in &new.entities {
            changes.push(Change::AddEntity { entity: e.entity.to_string() });
        }
        return Ok(changes);
    }

    let old = old.ok_or_else(|| MigrateError::NoRecordedDesign { table: live.name.clone() })?;

    // A different base key schema cannot be changed in place.
    let live_keys = (live.pk_attr.as_deref(), live.sk_attr.as_deref());
    if live_keys != (Some(new.pk_attr.as_str()), Some(new.sk_attr.as_str())) {
        let reason = format!(
            "base key schema ({}, {}) -> ({}, {})",
            live_keys.0.unwrap_or("-"),
            live_keys.1.unwrap_or("-"),
            new.pk_attr,
            new.sk_attr
        );
        if new.table == live.name {
            return Err(MigrateError::KeySchemaInPlace { table: live.name.clone(), reason });
        }
        changes.push(Change::CopyToNewTable { from: live.name.clone(), to: new.table.clone(), reason });
        return Ok(changes);
    }

    let mut settings = Vec::new();
    if live.ttl_attribute != new.settings.ttl_attribute {
        settings.push(Change::UpdateTtl { from: live.ttl_attribute.clone(), to: new.settings.ttl_attribute.clone() });
    }
    if live.stream != new.settings.stream {
        settings.push(Change::UpdateStream { from: live.stream, to: new.settings.stream });
    }
    // An endpoint that cannot report point-in-time recovery (DynamoDB
    // Local) is only a change when the design asks for it.
    if live.point_in_time_recovery.unwrap_or(false) != new.settings.point_in_time_recovery {
        settings.push(Change::UpdatePointInTimeRecovery {
            from: live.point_in_time_recovery,
            to: new.settings.point_in_time_recovery,
        });
    }
    changes.extend(settings);

    // Indexes: the live table is the truth about what exists. An index
    // whose key attributes change is deleted and created again; removed
    // indexes go last, so they serve until the new design is in place.
    let (mut recreated, mut creates, mut removals) = (Vec::new(), Vec::new(), Vec::new());
    for l in &live.indexes {
        match new.index(&l.name) {
            Some(n) if l.matches(n) => {}
            Some(n) => {
                recreated.push(l.name.clone());
                changes.push(Change::DeleteIndex { index: l.as_table_index() });
                creates.push(Change::CreateIndex { index: n.clone(), multi_attribute_hint: None });
            }
            None => removals.push(Change::DeleteIndex { index: l.as_table_index() }),
        }
    }
    for n in &new.indexes {
        if !live.indexes.iter().any(|l| l.name == n.name) {
            creates.push(Change::CreateIndex { index: n.clone(), multi_attribute_hint: multi_attribute_hint(n, new) });
        }
    }
    changes.extend(creates);

    // Entities.
    for e in &new.entities {
        let Some(before) = old.entity(&e.entity) else {
            changes.push(Change::AddEntity { entity: e.entity.to_string() });
            continue;
        };
        let table_key = (!templates_equal(&before.pk.template, &e.pk.template)
            || !templates_equal(&before.sk.template, &e.sk.template))
        .then(|| {
            let (old_pk, old_sk) = key_sources(before);
            let (new_pk, new_sk) = key_sources(e);
            TableKeyChange { old_pk, new_pk, old_sk, new_sk }
        });
        let mut names: Vec<&str> = before.indexes.iter().map(|i| i.name.as_ref()).collect();
        for i in e.indexes.iter() {
            if !names.contains(&i.name.as_ref()) {
                names.push(&i.name);
            }
        }
        let mut indexes = Vec::new();
        for name in names {
            let (old_i, new_i) = (before.index(name), e.index(name));
            // An index recreated with other attributes needs its keys
            // written again even when this entity's templates are unchanged.
            let same = match (old_i, new_i) {
                (Some(a), Some(b)) => a.pk == b.pk && a.sk == b.sk && !recreated.iter().any(|r| r == name),
                _ => false,
            };
            if !same {
                indexes.push(IndexKeyChange { index: name.to_string(), old: index_sources(before, name), new: index_sources(e, name) });
            }
        }
        if table_key.is_none() && indexes.is_empty() {
            continue;
        }
        let known: Vec<&str> = before.attributes.iter().filter(|a| !a.optional).map(|a| a.name.as_ref()).collect();
        let needs_attributes = template_attrs(e)
            .into_iter()
            .filter(|attr| {
                let optional_in_new = e.key_designs().flat_map(|k| k.template.fields()).any(|f| f.attr == *attr && f.optional);
                !optional_in_new && !known.contains(&attr.as_str())
            })
            .collect();
        changes.push(Change::Rewrite(Rewrite { entity: e.entity.to_string(), table_key, indexes, needs_attributes }));
    }
    for e in &old.entities {
        if new.entity(&e.entity).is_none() {
            changes.push(Change::RemoveEntity { entity: e.entity.to_string() });
        }
    }
    changes.extend(removals);
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use singletable::{Item, StreamView, TableDesign};

    mod v1 {
        #[derive(singletable::Item)]
        #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
        #[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
        pub struct User {
            pub org: String,
            pub id: String,
            pub email: String,
            pub name: String,
        }

        #[derive(singletable::Item)]
        #[item(entity = "Project", pk = "ORG#{org}", sk = "PROJECT#{id}")]
        pub struct Project {
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
            pub name: String,
        }
    }

    mod reindexed {
        // gsi1 keyed differently for the same attributes; a new gsi2.
        #[derive(singletable::Item)]
        #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
        #[item(index(name = "gsi1", pk = "MAIL#{email}", sk = "USER#{id}"))]
        #[item(index(name = "gsi2", pk = "NAME#{name}"))]
        pub struct User {
            pub org: String,
            pub id: String,
            pub email: String,
            pub name: String,
        }
    }

    mod unindexed {
        #[derive(singletable::Item)]
        #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
        pub struct User {
            pub org: String,
            pub id: String,
            pub email: String,
            pub name: String,
        }
    }

    mod regional {
        // The new sort key needs `region`, which v1 items never stored.
        #[derive(singletable::Item)]
        #[item(entity = "User", pk = "ORG#{org}", sk = "REGION#{region}#USER#{id}")]
        #[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
        pub struct User {
            pub org: String,
            pub id: String,
            pub email: String,
            pub name: String,
            pub region: String,
        }
    }

    mod rekeyed_schema {
        #[derive(singletable::Item)]
        #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}", pk_attr = "PK", sk_attr = "SK")]
        pub struct User {
            pub org: String,
            pub id: String,
            pub email: String,
            pub name: String,
        }
    }

    fn design<const N: usize>(name: &str, entities: [&singletable::EntityDesign; N]) -> TableDesign {
        entities.into_iter().fold(TableDesign::new(name), |b, e| b.entity_design(e.clone())).build().unwrap()
    }

    fn v1_design() -> TableDesign {
        design("app", [v1::User::DESIGN, v1::Project::DESIGN])
    }

    fn rewrites(changes: &[Change]) -> Vec<&Rewrite> {
        changes.iter().filter_map(|c| if let Change::Rewrite(r) = c { Some(r) } else { None }).collect()
    }

    #[test]
    fn a_new_table_is_created_with_its_entities() {
        let new = v1_design();
        let changes = diff(None, &new, &LiveTable::missing("app")).unwrap();
        assert_eq!(
            changes,
            vec![
                Change::CreateTable { table: "app".into() },
                Change::AddEntity { entity: "User".into() },
                Change::AddEntity { entity: "Project".into() },
            ]
        );
    }

    #[test]
    fn the_same_design_plans_no_changes() {
        let d = v1_design();
        assert_eq!(diff(Some(&d), &d, &LiveTable::as_created(&d)).unwrap(), vec![]);
    }

    #[test]
    fn a_managed_table_without_recorded_design_needs_one() {
        let d = v1_design();
        let err = diff(None, &d, &LiveTable::as_created(&d)).unwrap_err();
        assert!(matches!(err, MigrateError::NoRecordedDesign { .. }), "{err}");
    }

    #[test]
    fn a_pk_template_change_moves_the_items() {
        let old = v1_design();
        let new = design("app", [moved::User::DESIGN, v1::Project::DESIGN]);
        let changes = diff(Some(&old), &new, &LiveTable::as_created(&old)).unwrap();
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].action(), Action::Replace);
        let r = rewrites(&changes)[0];
        assert_eq!(r.entity, "User");
        assert_eq!(
            r.table_key,
            Some(TableKeyChange {
                old_pk: "ORG#{org}".into(),
                new_pk: "TENANT#{org}".into(),
                old_sk: "USER#{id}".into(),
                new_sk: "USER#{id}".into()
            })
        );
        assert!(r.indexes.is_empty() && r.needs_attributes.is_empty());
    }

    #[test]
    fn a_new_index_is_created_then_backfilled_with_a_multi_attribute_hint() {
        let old = design("app", [unindexed::User::DESIGN]);
        let new = design("app", [v1::User::DESIGN]);
        let changes = diff(Some(&old), &new, &LiveTable::as_created(&old)).unwrap();
        assert_eq!(changes.len(), 2, "{changes:?}");
        match &changes[0] {
            Change::CreateIndex { index, multi_attribute_hint } => {
                assert_eq!(index.name, "gsi1");
                assert!(multi_attribute_hint.as_deref().unwrap().contains("partition (email)"), "{multi_attribute_hint:?}");
            }
            other => panic!("{other:?}"),
        }
        let r = rewrites(&changes)[0];
        assert_eq!(r.indexes, vec![IndexKeyChange { index: "gsi1".into(), old: None, new: Some(("EMAIL#{email}".into(), Some("USER".into()))) }]);
        assert_eq!(changes[1].action(), Action::Update);
    }

    #[test]
    fn a_removed_index_is_destroyed_last_and_its_keys_stripped() {
        let old = design("app", [v1::User::DESIGN]);
        let new = design("app", [unindexed::User::DESIGN]);
        let changes = diff(Some(&old), &new, &LiveTable::as_created(&old)).unwrap();
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(rewrites(&changes)[0].indexes[0].new, None);
        assert!(matches!(&changes[1], Change::DeleteIndex { index } if index.name == "gsi1"));
        assert!(changes[1].is_destructive());
        assert_eq!(Plan { table: "app".into(), from: Some(old), to: new, changes, entities: vec![], fingerprint: String::new(), defaults: vec![] }.summary(), (0, 1, 0, 1));
    }

    #[test]
    fn an_index_template_change_recomputes_in_place() {
        let old = design("app", [v1::User::DESIGN]);
        let new = design("app", [reindexed::User::DESIGN]);
        let changes = diff(Some(&old), &new, &LiveTable::as_created(&old)).unwrap();
        let r = rewrites(&changes)[0];
        assert!(r.table_key.is_none());
        let names: Vec<&str> = r.indexes.iter().map(|i| i.index.as_str()).collect();
        assert_eq!(names, ["gsi1", "gsi2"]);
        assert_eq!(r.indexes[0].old, Some(("EMAIL#{email}".into(), Some("USER".into()))));
        assert_eq!(r.indexes[0].new, Some(("MAIL#{email}".into(), Some("USER#{id}".into()))));
        // gsi1 keeps its attributes: no index is created or deleted for it.
        assert!(changes.iter().all(|c| !matches!(c, Change::DeleteIndex { .. })));
        assert!(changes.iter().any(|c| matches!(c, Change::CreateIndex { index, .. } if index.name == "gsi2")));
    }

    #[test]
    fn entities_added_and_removed() {
        let old = design("app", [v1::User::DESIGN]);
        let new = design("app", [v1::Project::DESIGN, v1::User::DESIGN]);
        assert_eq!(diff(Some(&old), &new, &LiveTable::as_created(&old)).unwrap(), vec![Change::AddEntity { entity: "Project".into() }]);
        let changes = diff(Some(&new), &old, &LiveTable::as_created(&new)).unwrap();
        assert_eq!(changes, vec![Change::RemoveEntity { entity: "Project".into() }]);
        assert!(changes[0].is_destructive());
    }

    #[test]
    fn a_template_needing_an_attribute_old_items_lack_says_so() {
        let old = design("app", [v1::User::DESIGN]);
        let new = design("app", [regional::User::DESIGN]);
        let changes = diff(Some(&old), &new, &LiveTable::as_created(&old)).unwrap();
        let r = rewrites(&changes)[0];
        assert_eq!(r.needs_attributes, vec!["region".to_string()]);
        assert!(r.table_key.is_some());
    }

    #[test]
    fn a_base_key_schema_change_copies_to_a_new_table() {
        let old = design("app", [unindexed::User::DESIGN]);
        let same_name = design("app", [rekeyed_schema::User::DESIGN]);
        let err = diff(Some(&old), &same_name, &LiveTable::as_created(&old)).unwrap_err();
        assert!(matches!(err, MigrateError::KeySchemaInPlace { .. }), "{err}");
        let new = design("app-v2", [rekeyed_schema::User::DESIGN]);
        let mut live = LiveTable::as_created(&old);
        live.name = "app".into();
        let changes = diff(Some(&old), &new, &live).unwrap();
        assert!(matches!(&changes[..], [Change::CopyToNewTable { from, to, .. }] if from == "app" && to == "app-v2"), "{changes:?}");
    }

    #[test]
    fn settings_drift_is_updated() {
        let old = v1_design();
        let mut new = old.clone();
        new.settings.ttl_attribute = Some("expires_at".into());
        new.settings.stream = Some(StreamView::NewAndOldImages);
        new.settings.point_in_time_recovery = true;
        let mut live = LiveTable::as_created(&old);
        live.point_in_time_recovery = None; // DynamoDB Local cannot say
        let changes = diff(Some(&old), &new, &live).unwrap();
        assert_eq!(
            changes,
            vec![
                Change::UpdateTtl { from: None, to: Some("expires_at".into()) },
                Change::UpdateStream { from: None, to: Some(StreamView::NewAndOldImages) },
                Change::UpdatePointInTimeRecovery { from: None, to: true },
            ]
        );
        // Unknown PITR and a design that does not ask for it: no change.
        assert_eq!(diff(Some(&old), &old, &live).unwrap(), vec![]);
    }

    #[test]
    fn an_index_with_other_key_attributes_is_recreated_and_rewritten() {
        let d = design("app", [v1::User::DESIGN]);
        let mut live = LiveTable::as_created(&d);
        live.indexes[0].pk_attrs = vec!["email".into()];
        let changes = diff(Some(&d), &d, &live).unwrap();
        assert!(matches!(&changes[0], Change::DeleteIndex { index } if index.name == "gsi1"), "{changes:?}");
        assert!(matches!(&changes[1], Change::CreateIndex { index, .. } if index.pk_attr == "gsi1pk"));
        assert_eq!(rewrites(&changes)[0].indexes[0].index, "gsi1");
    }
}
