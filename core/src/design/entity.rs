//! An entity's design: its key templates, indexes, attributes and managed
//! fields, built as static data by `#[derive(Item)]`.

use std::borrow::Cow;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use crate::attr::AttrType;
use crate::error::Error;
use crate::template::{Template, MAX_PARTITION_KEY_BYTES, MAX_SORT_KEY_BYTES};

/// One key attribute and the template that fills it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyDesign {
    /// The physical attribute name (`pk`, `gsi1sk` ...).
    pub attr: Cow<'static, str>,
    /// Its template.
    pub template: Template,
}

/// A global secondary index as one entity uses it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IndexDesign {
    /// The index name.
    pub name: Cow<'static, str>,
    /// The index partition key.
    pub pk: KeyDesign,
    /// The index sort key, if the index has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sk: Option<KeyDesign>,
}

impl IndexDesign {
    /// Whether an item may be left out of this index (a placeholder of an
    /// optional field).
    pub fn is_sparse(&self) -> bool {
        self.keys().any(|k| k.template.fields().any(|f| f.optional))
    }

    /// The index's key attributes, partition key first.
    pub fn keys(&self) -> impl Iterator<Item = &KeyDesign> {
        std::iter::once(&self.pk).chain(self.sk.as_ref())
    }
}

/// A stored attribute of an entity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AttributeDesign {
    /// The attribute name in stored items.
    pub name: Cow<'static, str>,
    /// The DynamoDB type it is stored as.
    #[serde(rename = "type")]
    pub ty: AttrType,
    /// Whether items may lack it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

/// Everything the toolkit knows about one entity's storage, available as
/// `<T as Item>::DESIGN`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EntityDesign {
    /// The entity name, stored in every item's entity-type attribute.
    pub entity: Cow<'static, str>,
    /// The entity-type attribute name (`_et` unless configured).
    pub entity_attr: Cow<'static, str>,
    /// The table partition key.
    pub pk: KeyDesign,
    /// The table sort key.
    pub sk: KeyDesign,
    /// The global secondary indexes this entity writes keys for.
    #[serde(default)]
    pub indexes: Cow<'static, [IndexDesign]>,
    /// The stored payload attributes.
    #[serde(default)]
    pub attributes: Cow<'static, [AttributeDesign]>,
    /// The attributes of its managed fields (`#[item(version)]`, `ttl`,
    /// `created_at`, `updated_at`).
    #[serde(default, skip_serializing_if = "ManagedAttrs::is_empty")]
    pub managed: ManagedAttrs,
}


impl EntityDesign {
    /// Finds an index by name.
    pub fn index(&self, name: &str) -> Option<&IndexDesign> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// Every key attribute this entity writes: pk, sk, then index keys.
    pub fn key_designs(&self) -> impl Iterator<Item = &KeyDesign> {
        [&self.pk, &self.sk].into_iter().chain(self.indexes.iter().flat_map(|i| i.keys()))
    }

    /// The runtime evaluator: renders every key attribute of a raw item
    /// (its payload attributes), as derived `to_item` does. Index keys of
    /// a sparse index whose optional fields are absent are left out.
    pub fn render_keys(&self, item: &HashMap<String, AttributeValue>) -> Result<Vec<(String, String)>, Error> {
        let mut out = Vec::with_capacity(2 + 2 * self.indexes.len());
        for (key, max) in [(&self.pk, MAX_PARTITION_KEY_BYTES), (&self.sk, MAX_SORT_KEY_BYTES)] {
            out.push((key.attr.to_string(), self.render_key(key, item, max)?));
        }
        for index in self.indexes.iter() {
            let absent = |k: &KeyDesign| k.template.fields().any(|f| f.optional && is_absent(item.get(f.attr.as_ref())));
            if index.keys().any(absent) {
                continue;
            }
            out.push((index.pk.attr.to_string(), self.render_key(&index.pk, item, MAX_PARTITION_KEY_BYTES)?));
            if let Some(sk) = &index.sk {
                out.push((sk.attr.to_string(), self.render_key(sk, item, MAX_SORT_KEY_BYTES)?));
            }
        }
        Ok(out)
    }

    fn render_key(&self, key: &KeyDesign, item: &HashMap<String, AttributeValue>, max: usize) -> Result<String, Error> {
        let rendered = key.template.render_item(item, &self.entity, &key.attr)?;
        crate::template::check_len(&rendered, max, &self.entity, &key.attr)?;
        Ok(rendered)
    }

    /// Whether a raw item belongs to this entity (by its entity-type
    /// attribute).
    pub fn owns(&self, item: &HashMap<String, AttributeValue>) -> bool {
        matches!(item.get(self.entity_attr.as_ref()), Some(AttributeValue::S(s)) if *s == self.entity)
    }
}

fn is_absent(value: Option<&AttributeValue>) -> bool {
    matches!(value, None | Some(AttributeValue::Null(_)))
}

/// The attributes an entity's managed fields are stored in (part of its
/// [`EntityDesign`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ManagedAttrs {
    /// `#[item(version)]`: an unsigned integer, bumped on every write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Cow<'static, str>>,
    /// `#[item(ttl)]`: epoch seconds, read by DynamoDB's time to live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Cow<'static, str>>,
    /// `#[item(created_at)]`: set on the first write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Cow<'static, str>>,
    /// `#[item(updated_at)]`: set on every write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Cow<'static, str>>,
}

impl ManagedAttrs {
    /// No managed field.
    pub const NONE: ManagedAttrs = ManagedAttrs { version: None, ttl: None, created_at: None, updated_at: None };

    /// Whether the entity has no managed field.
    pub fn is_empty(&self) -> bool {
        *self == ManagedAttrs::NONE
    }
}
