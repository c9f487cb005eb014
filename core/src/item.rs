use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::design::{EntityDesign};
use crate::key::PrimaryKey;
use crate::error::Error;

/// An entity stored in a single table. Implement it with
/// `#[derive(singletable::Item)]`; see the [crate docs](crate) for the
/// attributes.
pub trait Item: Sized {
    /// The entity's storage design, as static data.
    const DESIGN: &'static EntityDesign;

    /// The typed primary key: a tuple of the fields used in the pk and sk
    /// templates, in order of first appearance.
    type Key;

    /// Encodes the item: its payload attributes, every key attribute
    /// (table and indexes) and the entity-type attribute. Fails, before any
    /// request, on an empty key part, a delimiter clash, NaN, an empty set.
    fn to_item(&self) -> Result<HashMap<String, AttributeValue>, Error>;

    /// Decodes a stored item. Fails on an item of another entity type, a
    /// missing attribute or a wrong type, naming the attribute path.
    fn from_item(item: HashMap<String, AttributeValue>) -> Result<Self, Error>;

    /// The rendered table key of this value.
    fn primary_key(&self) -> Result<PrimaryKey, Error>;

    /// Renders the table key from a typed key.
    fn key_of(key: &Self::Key) -> Result<PrimaryKey, Error>;

    /// The typed field handles: one public member per stored field, named
    /// as the Rust field, of type [`Field<Self, FieldType, Kind>`](crate::Field).
    /// The type is generated inside an anonymous block (it adds no name to
    /// your module); name it as `<T as Item>::Fields`.
    type Fields: Copy;

    /// The typed field handles, for conditions and updates; see
    /// [`Field`](crate::Field).
    fn fields() -> Self::Fields;

    /// The current time, encoded as the `created_at` / `updated_at` field
    /// stores it; `None` when the entity has no such field.
    #[doc(hidden)]
    fn __now(_stamp: crate::managed::Stamp) -> Result<Option<AttributeValue>, Error> {
        Ok(None)
    }

    /// Copies the managed fields (version, timestamps) of a written item
    /// into `self`.
    #[doc(hidden)]
    fn __written(&mut self, _item: &HashMap<String, AttributeValue>) -> Result<(), Error> {
        Ok(())
    }
}

impl crate::design::TableDesignBuilder {
    /// Adds an entity.
    pub fn entity<T: Item>(mut self) -> Self {
        self.entities.push(T::DESIGN.clone());
        self
    }
}
