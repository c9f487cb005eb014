//! What generated code reaches. Not public API: names here may change in
//! any release.

use std::collections::HashMap;

pub use crate::attr::{serde_from_attr, serde_to_attr, AttrType, AttrValue};
pub use crate::design::{AttributeDesign, EntityDesign, IndexDesign, KeyDesign, ManagedAttrs};
pub use crate::key::PrimaryKey;
pub use crate::error::{AttrError, AttrProblem, Error};
pub use crate::field::{Attr, Field, IndexKey, Managed, TableKey};
pub use crate::managed::{Stamp, Timestamp, TtlValue, VersionNumber};
pub use crate::template::{
    check_len, check_part, format_error, FieldRef, KeyKind, KeyPart, Segment, Template, MAX_PARTITION_KEY_BYTES,
    MAX_SORT_KEY_BYTES,
};
pub use crate::collection::{distinct_entities, member_of, unknown_entity};
pub use aws_sdk_dynamodb::types::AttributeValue;

/// An entity's name, borrowed for as long as its design.
#[inline]
pub fn entity_name(design: &'static EntityDesign) -> &'static str {
    &design.entity
}
pub use std::borrow::Cow;
pub use std::collections::HashMap as Map;
pub use std::option::Option;
pub use std::result::Result;
pub use std::string::String;

/// Removes and decodes a top-level attribute.
#[inline]
pub fn take<T: AttrValue>(item: &mut HashMap<String, AttributeValue>, name: &str) -> Result<T, AttrError> {
    match item.remove(name) {
        Some(value) => T::from_attr(value).map_err(|e| e.in_field(name)),
        None => T::from_missing().ok_or_else(|| AttrError::new(AttrProblem::Missing).in_field(name)),
    }
}

/// Like [`take`], with `Default::default()` for a missing attribute.
#[inline]
pub fn take_or_default<T: AttrValue + Default>(
    item: &mut HashMap<String, AttributeValue>,
    name: &str,
) -> Result<T, AttrError> {
    match item.remove(name) {
        Some(value) => T::from_attr(value).map_err(|e| e.in_field(name)),
        None => Ok(T::default()),
    }
}

/// Removes and decodes a serde-encoded attribute.
#[inline]
pub fn take_serde<T: for<'de> serde::Deserialize<'de>>(
    item: &mut HashMap<String, AttributeValue>,
    name: &str,
    default: Option<fn() -> T>,
) -> Result<T, AttrError> {
    match item.remove(name) {
        Some(value) => serde_from_attr(value).map_err(|e| e.in_field(name)),
        None => match default {
            Some(make) => Ok(make()),
            // serde's own rule: a missing value may still decode (Option).
            None => serde_from_attr(AttributeValue::Null(true))
                .map_err(|_| AttrError::new(AttrProblem::Missing).in_field(name)),
        },
    }
}

/// Checks the entity-type attribute before anything is decoded.
#[inline]
pub fn check_entity(item: &HashMap<String, AttributeValue>, attr: &str, entity: &str) -> Result<(), Error> {
    match item.get(attr) {
        Some(AttributeValue::S(found)) if found == entity => Ok(()),
        Some(AttributeValue::S(found)) => Err(Error::WrongEntity { expected: entity.into(), found: Some(found.clone()) }),
        _ => Err(Error::WrongEntity { expected: entity.into(), found: None }),
    }
}

/// Decodes the fields of a nested document out of its map.
#[inline]
pub fn expect_map(value: AttributeValue) -> Result<HashMap<String, AttributeValue>, AttrError> {
    match value {
        AttributeValue::M(map) => Ok(map),
        other => Err(AttrError::new(AttrProblem::WrongType { expected: "M", found: crate::attr::type_name(&other) })),
    }
}

/// The design behind the placeholder impl emitted beside a derive error.
pub const FALLBACK_DESIGN: &EntityDesign = &EntityDesign {
    entity: Cow::Borrowed("<invalid>"),
    entity_attr: Cow::Borrowed("_et"),
    pk: KeyDesign { attr: Cow::Borrowed("pk"), template: Template { source: Cow::Borrowed("-"), segments: Cow::Borrowed(&[]) } },
    sk: KeyDesign { attr: Cow::Borrowed("sk"), template: Template { source: Cow::Borrowed("-"), segments: Cow::Borrowed(&[]) } },
    indexes: Cow::Borrowed(&[]),
    attributes: Cow::Borrowed(&[]),
    managed: ManagedAttrs::NONE,
};

/// Adds a field name to an error, out of the encode path's way.
#[cold]
#[inline(never)]
pub fn in_field_cold(e: AttrError, name: &str) -> AttrError {
    e.in_field(name)
}

/// An encoding error as the entity reports it, out of the fast path.
#[cold]
#[inline(never)]
pub fn encoding_cold(e: AttrError, entity: &str) -> Error {
    e.encoding(entity)
}
