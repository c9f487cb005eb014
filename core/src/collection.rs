//! Item collections: one partition holding several entity types, read into
//! a user-declared enum of entities (`#[derive(Collection)]`), dispatched on
//! the entity-type attribute. Items of other entity types are reported,
//! never dropped silently.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::design::EntityDesign;
use crate::error::Error;

/// An enum of entities stored together, one variant per entity, each
/// wrapping one [`Item`](crate::Item) type. Implement it with
/// `#[derive(singletable::Collection)]`:
///
/// ```
/// use singletable::{Collection, Item};
///
/// #[derive(Item, Debug, PartialEq)]
/// #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
/// struct User { org: String, id: String }
///
/// #[derive(Item, Debug, PartialEq)]
/// #[item(entity = "Project", pk = "ORG#{org}", sk = "PROJECT#{id}")]
/// struct Project { org: String, id: String, title: String }
///
/// #[derive(Collection, Debug, PartialEq)]
/// enum Org { User(User), Project(Project) }
///
/// let item = Project { org: "acme".into(), id: "p1".into(), title: "Roof".into() }.to_item().unwrap();
/// assert!(matches!(Org::from_item(item).unwrap(), Org::Project(p) if p.title == "Roof"));
///
/// // An item of an entity that is not a variant is an error, not a drop.
/// let mut other = User { org: "acme".into(), id: "ann".into() }.to_item().unwrap();
/// other.insert("_et".into(), singletable::AttributeValue::S("Invoice".into()));
/// assert!(matches!(Org::from_item(other), Err(singletable::Error::UnknownEntity { .. })));
/// ```
pub trait Collection: Sized {
    /// The collection's name (the enum's), for messages.
    const NAME: &'static str;
    /// The member entities' designs, in variant order.
    const ENTITIES: &'static [&'static EntityDesign];

    /// Decodes a stored item of any member entity; an item of another
    /// entity is [`Error::UnknownEntity`].
    fn from_item(item: HashMap<String, AttributeValue>) -> Result<Self, Error>;

    /// Encodes the wrapped item (see [`Item::to_item`](crate::Item::to_item)).
    fn to_item(&self) -> Result<HashMap<String, AttributeValue>, Error>;

    /// The wrapped item's entity name.
    fn entity(&self) -> &'static str;
}

/// What generated `from_item` dispatches on: the position of the member
/// entity that owns the item.
#[doc(hidden)]
pub fn member_of(item: &HashMap<String, AttributeValue>, entities: &[&EntityDesign]) -> Option<usize> {
    entities.iter().position(|e| e.owns(item))
}

/// The error for an item of no member entity.
#[doc(hidden)]
pub fn unknown_entity(collection: &'static str, entities: &[&EntityDesign], item: &HashMap<String, AttributeValue>) -> Error {
    let text = |attr: Option<&str>| attr.and_then(|a| item.get(a)).and_then(|v| v.as_s().ok()).cloned();
    let first = entities.first();
    Error::UnknownEntity {
        collection,
        found: text(first.map(|e| e.entity_attr.as_ref())),
        expected: entities.iter().map(|e| e.entity.as_ref()).collect::<Vec<_>>().join(", "),
        pk: text(first.map(|e| e.pk.attr.as_ref())),
        sk: text(first.map(|e| e.sk.attr.as_ref())),
    }
}

/// Whether no two member entities share a name (checked when the derived
/// impl is compiled).
#[doc(hidden)]
pub const fn distinct_entities(entities: &[&EntityDesign]) -> bool {
    let mut i = 0;
    while i < entities.len() {
        let mut j = i + 1;
        while j < entities.len() {
            if let (std::borrow::Cow::Borrowed(a), std::borrow::Cow::Borrowed(b)) = (&entities[i].entity, &entities[j].entity) {
                if const_eq(a.as_bytes(), b.as_bytes()) {
                    return false;
                }
            }
            j += 1;
        }
        i += 1;
    }
    true
}

const fn const_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
