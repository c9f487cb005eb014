//! The key design as data: one [`EntityDesign`] per entity (static, built by
//! `#[derive(Item)]`), gathered with the physical table layout into a
//! [`TableDesign`]. Designs serialize to JSON, which is what migrations diff.

use serde::{Deserialize, Serialize};

use crate::error::Error;

mod entity;

pub use entity::{AttributeDesign, EntityDesign, IndexDesign, KeyDesign, ManagedAttrs};

/// A global secondary index of the table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableIndex {
    /// Index name.
    pub name: String,
    /// Partition key attribute.
    pub pk_attr: String,
    /// Sort key attribute, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sk_attr: Option<String>,
}

/// A table's whole design: its physical key attributes, indexes and the
/// entities stored in it.
///
/// ```
/// # use singletable::{Item, TableDesign};
/// #[derive(Item)]
/// #[item(entity = "User", pk = "ORG#{org_id}", sk = "USER#{user_id}")]
/// struct User { org_id: String, user_id: String }
///
/// let design = TableDesign::new("app").entity::<User>().build().unwrap();
/// assert_eq!(design.pk_attr, "pk");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDesign {
    /// The table name.
    pub table: String,
    /// Partition key attribute (type S).
    pub pk_attr: String,
    /// Sort key attribute (type S).
    pub sk_attr: String,
    /// The global secondary indexes, in the order entities declare them.
    #[serde(default)]
    pub indexes: Vec<TableIndex>,
    /// The entities stored in the table.
    pub entities: Vec<EntityDesign>,
    /// Table settings beyond keys: TTL, streams, point-in-time recovery.
    #[serde(default)]
    pub settings: TableSettings,
}

/// What a table's stream records carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamView {
    /// Only the key attributes.
    KeysOnly,
    /// The item after the change.
    NewImage,
    /// The item before the change.
    OldImage,
    /// Both images.
    NewAndOldImages,
}

impl StreamView {
    /// DynamoDB's name for the view type.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamView::KeysOnly => "KEYS_ONLY",
            StreamView::NewImage => "NEW_IMAGE",
            StreamView::OldImage => "OLD_IMAGE",
            StreamView::NewAndOldImages => "NEW_AND_OLD_IMAGES",
        }
    }
}

/// Table settings that are part of the design.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableSettings {
    /// The attribute DynamoDB's time to live reads (epoch seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_attribute: Option<String>,
    /// The stream, if enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamView>,
    /// Whether point-in-time recovery should be on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub point_in_time_recovery: bool,
}

/// Collects entities into a [`TableDesign`]; see [`TableDesign::new`].
#[derive(Debug, Clone)]
pub struct TableDesignBuilder {
    table: String,
    pub(crate) entities: Vec<EntityDesign>,
    settings: TableSettings,
}

impl TableDesign {
    /// Starts a design for the table `name`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(name: impl Into<String>) -> TableDesignBuilder {
        TableDesignBuilder { table: name.into(), entities: Vec::new(), settings: TableSettings::default() }
    }

    /// Finds an entity by name.
    pub fn entity(&self, name: &str) -> Option<&EntityDesign> {
        self.entities.iter().find(|e| e.entity == name)
    }

    /// The design as a design file: pretty JSON whose field order is
    /// fixed, so regenerating an unchanged design gives the same bytes.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("designs always serialize") + "\n"
    }

    /// Reads a design file and checks it as [`TableDesignBuilder::build`]
    /// checks derived designs.
    pub fn from_json(json: &str) -> Result<TableDesign, Error> {
        let read: TableDesign = serde_json::from_str(json).map_err(|source| Error::DesignFile { source })?;
        read.validate()?;
        Ok(read)
    }

    /// Checks that the entities agree with each other and with the table's
    /// key attributes and indexes, and that every template's source parses
    /// to its segments.
    pub fn validate(&self) -> Result<(), Error> {
        let rebuilt = TableDesign::from_entities(self.table.clone(), self.entities.clone())?;
        if rebuilt.pk_attr != self.pk_attr || rebuilt.sk_attr != self.sk_attr {
            return Err(Error::Design(format!(
                "table keys ({}, {}) differ from the entities' ({}, {})",
                self.pk_attr, self.sk_attr, rebuilt.pk_attr, rebuilt.sk_attr
            )));
        }
        for index in &rebuilt.indexes {
            if !self.indexes.contains(index) {
                return Err(Error::Design(format!("index `{}` used by entities is not declared by the table", index.name)));
            }
        }
        for e in &self.entities {
            for key in e.key_designs() {
                let fields: Vec<_> = key.template.fields().cloned().collect();
                let reparsed = crate::template::Template::parse(&key.template.source, |name| {
                    fields.iter().find(|f| f.attr == name).map(|f| (f.kind, f.optional))
                })?;
                let same_shape = reparsed.segments.len() == key.template.segments.len()
                    && reparsed.segments.iter().zip(key.template.segments.iter()).all(|(a, b)| match (a, b) {
                        (crate::template::Segment::Literal(x), crate::template::Segment::Literal(y)) => x == y,
                        (crate::template::Segment::Field(x), crate::template::Segment::Field(y)) => x.attr == y.attr && x.pad == y.pad,
                        _ => false,
                    });
                if !same_shape {
                    return Err(Error::Design(format!(
                        "entity `{}`: `{}` template `{}` does not match its segments",
                        e.entity, key.attr, key.template.source
                    )));
                }
            }
        }
        Ok(())
    }

    /// Finds an index by name.
    pub fn index(&self, name: &str) -> Option<&TableIndex> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// Checks that the entities agree on the physical layout and fills in
    /// the table's key attributes and indexes from them.
    pub fn from_entities(table: impl Into<String>, entities: Vec<EntityDesign>) -> Result<TableDesign, Error> {
        let table = table.into();
        let first = entities.first().ok_or_else(|| Error::Design(format!("table `{table}` has no entity")))?;
        let (pk_attr, sk_attr) = (first.pk.attr.to_string(), first.sk.attr.to_string());
        let mut indexes: Vec<TableIndex> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for e in &entities {
            if !seen.insert(e.entity.as_ref()) {
                return Err(Error::Design(format!("entity `{}` is declared twice in table `{table}`", e.entity)));
            }
            if e.pk.attr != pk_attr || e.sk.attr != sk_attr {
                return Err(Error::Design(format!(
                    "entity `{}` keys the table by ({}, {}) but `{}` by ({pk_attr}, {sk_attr})",
                    e.entity, e.pk.attr, e.sk.attr, first.entity
                )));
            }
            if e.entity_attr != first.entity_attr {
                return Err(Error::Design(format!(
                    "entity `{}` stores its type in `{}` but `{}` in `{}`",
                    e.entity, e.entity_attr, first.entity, first.entity_attr
                )));
            }
            for i in e.indexes.iter() {
                let wanted = TableIndex {
                    name: i.name.to_string(),
                    pk_attr: i.pk.attr.to_string(),
                    sk_attr: i.sk.as_ref().map(|k| k.attr.to_string()),
                };
                match indexes.iter().find(|x| x.name == wanted.name) {
                    Some(existing) if *existing != wanted => {
                        return Err(Error::Design(format!(
                            "index `{}`: entity `{}` keys it by ({}, {}) but another entity by ({}, {})",
                            wanted.name,
                            e.entity,
                            wanted.pk_attr,
                            wanted.sk_attr.as_deref().unwrap_or("-"),
                            existing.pk_attr,
                            existing.sk_attr.as_deref().unwrap_or("-"),
                        )))
                    }
                    Some(_) => {}
                    None => indexes.push(wanted),
                }
            }
        }
        let key_attrs: Vec<&str> = [pk_attr.as_str(), sk_attr.as_str()]
            .into_iter()
            .chain(indexes.iter().flat_map(|i| std::iter::once(i.pk_attr.as_str()).chain(i.sk_attr.as_deref())))
            .collect();
        for e in &entities {
            if let Some(a) = e.attributes.iter().find(|a| key_attrs.contains(&a.name.as_ref()) || a.name == e.entity_attr) {
                return Err(Error::Design(format!(
                    "entity `{}` stores a field in `{}`, which is a key or entity-type attribute of the table",
                    e.entity, a.name
                )));
            }
        }
        Ok(TableDesign { table, pk_attr, sk_attr, indexes, entities, settings: TableSettings::default() })
    }
}

impl TableDesignBuilder {
    /// Adds an entity given as data (e.g. read from a design file).
    pub fn entity_design(mut self, design: EntityDesign) -> Self {
        self.entities.push(design);
        self
    }

    /// Turns on DynamoDB's time to live on `attribute` (epoch seconds).
    pub fn ttl(mut self, attribute: impl Into<String>) -> Self {
        self.settings.ttl_attribute = Some(attribute.into());
        self
    }

    /// Turns on the table's stream.
    pub fn stream(mut self, view: StreamView) -> Self {
        self.settings.stream = Some(view);
        self
    }

    /// Asks for point-in-time recovery.
    pub fn point_in_time_recovery(mut self, on: bool) -> Self {
        self.settings.point_in_time_recovery = on;
        self
    }

    /// Validates and builds the design. The table's TTL attribute is the
    /// one given with [`ttl`](Self::ttl), else the one of the entities'
    /// `#[item(ttl)]` fields; entities that disagree (with each other or
    /// with the one given) are refused, since a table has one TTL
    /// attribute.
    pub fn build(self) -> Result<TableDesign, Error> {
        let mut settings = self.settings;
        for e in &self.entities {
            let Some(attr) = &e.managed.ttl else { continue };
            match &settings.ttl_attribute {
                None => settings.ttl_attribute = Some(attr.to_string()),
                Some(table_ttl) if table_ttl == attr => {}
                Some(table_ttl) => {
                    return Err(Error::Design(format!(
                        "entity `{}` keeps its expiry (#[item(ttl)]) in `{attr}`, but the table's TTL attribute is `{table_ttl}`; a table has one TTL attribute",
                        e.entity
                    )))
                }
            }
        }
        let mut design = TableDesign::from_entities(self.table, self.entities)?;
        design.settings = settings;
        Ok(design)
    }
}
