//! Typed handles on an entity's stored fields.
//!
//! `#[derive(Item)]` gives every entity `T::fields()` (a method of
//! [`Item`](crate::Item)): a value with one public member per stored field,
//! named as the Rust field, of type [`Field<T, FieldType, Kind>`](Field).
//! Conditions ([`Condition`](crate::Condition)) and updates
//! ([`Update`](crate::Update)) take these handles, so a value of the wrong
//! type, a field of another entity or a change the key design forbids does
//! not compile:
//!
//! | kind | fields | update | conditions |
//! | --- | --- | --- | --- |
//! | [`Attr`] | plain payload (and `#[item(ttl)]`) | every operation | yes |
//! | [`IndexKey`] | used by an index template | `set` / `remove` only: the index keys are re-rendered from the new value | yes |
//! | [`TableKey`] | used by the `pk` or `sk` template | none: a key cannot change in place ([`Table::move_item`](crate::Table::move_item)) | yes |
//! | [`Managed`] | `#[item(version)]`, `created_at`, `updated_at` | none: the toolkit writes them | yes |
//!
//! The handles' type is generated inside an anonymous block, so the derive
//! adds no name to your module; write `<User as Item>::Fields` to name it
//! (or call `<User as Item>::fields()` if `User` has its own `fields`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::attr::{AttrValue, ElementValue, SetElement};
use crate::error::AttrError;
use crate::expr::Path;

/// A plain payload field: every update operation applies.
#[derive(Debug, Clone, Copy)]
pub enum Attr {}
/// A field used by an index key template: `set` and `remove` apply, and
/// re-render the index keys.
#[derive(Debug, Clone, Copy)]
pub enum IndexKey {}
/// A field used by the table's `pk` or `sk` template: it cannot be
/// updated in place.
#[derive(Debug, Clone, Copy)]
pub enum TableKey {}
/// A field the toolkit maintains (`version`, `created_at`, `updated_at`).
#[derive(Debug, Clone, Copy)]
pub enum Managed {}

/// Field kinds whose value an update may replace with a known value
/// (`set`, `remove`).
#[diagnostic::on_unimplemented(
    message = "an update cannot set a `{Self}` field",
    label = "a `{Self}` field",
    note = "`TableKey` fields (used by the table's pk/sk templates) cannot change in place: use `Table::move_item` (puts the new item and deletes the old one in one transaction)",
    note = "`Managed` fields (`#[item(version)]`, `created_at`, `updated_at`) are written by the toolkit on every write"
)]
pub trait Settable: sealed::Sealed {}
impl Settable for Attr {}
impl Settable for IndexKey {}

/// Field kinds whose new value DynamoDB may compute (`add`, `append`,
/// `set_if_not_exists` ...): only plain payload fields, since a key
/// rendered from a value nobody knows before the write would go stale.
#[diagnostic::on_unimplemented(
    message = "DynamoDB cannot compute the new value of a `{Self}` field",
    label = "a `{Self}` field",
    note = "`IndexKey` fields: the index keys are rendered from the new value before the request is sent, so it must be known: use `.set(field, value)`",
    note = "`TableKey` and `Managed` fields cannot be changed by an update at all"
)]
pub trait Computable: sealed::Sealed {}
impl Computable for Attr {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Attr {}
    impl Sealed for super::IndexKey {}
    impl Sealed for super::TableKey {}
    impl Sealed for super::Managed {}
}

/// A typed handle on one stored field of entity `E`, holding values of
/// type `T`; `K` is its [kind](self). Get them from `E::fields()`.
pub struct Field<E, T, K = Attr> {
    attr: &'static str,
    name: &'static str,
    encode: fn(&T) -> Result<Option<AttributeValue>, AttrError>,
    _marker: PhantomData<fn() -> (E, K)>,
}

impl<E, T, K> Clone for Field<E, T, K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E, T, K> Copy for Field<E, T, K> {}

impl<E, T, K> fmt::Debug for Field<E, T, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Field").field("name", &self.name).field("attr", &self.attr).finish()
    }
}

impl<E, T, K> Field<E, T, K> {
    /// Built by `#[derive(Item)]`.
    #[doc(hidden)]
    pub const fn __new(
        attr: &'static str,
        name: &'static str,
        encode: fn(&T) -> Result<Option<AttributeValue>, AttrError>,
    ) -> Self {
        Field { attr, name, encode, _marker: PhantomData }
    }

    /// The stored attribute name.
    pub fn attr(&self) -> &'static str {
        self.attr
    }

    /// The Rust field name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn path(&self) -> Path {
        Path::attr(self.attr)
    }

    /// Encodes a value as the derive stores it: `None` when the attribute
    /// is left out (an `Option` field holding `None`).
    pub(crate) fn encode(&self, value: &T) -> Result<Option<AttributeValue>, AttrError> {
        (self.encode)(value).map_err(|e| e.in_field(self.attr))
    }
}

/// A value usable where a field's type `T` is expected: `T` itself, `&str`
/// for strings, a bare value for an `Option` field.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a value of the field's type `{T}`",
    label = "expected a `{T}`",
    note = "a field takes its own type, `&str` for `String`, or a bare value for an `Option` field"
)]
pub trait IntoValue<T> {
    /// Converts.
    fn into_value(self) -> T;
}

impl<T> IntoValue<T> for T {
    fn into_value(self) -> T {
        self
    }
}

impl IntoValue<String> for &str {
    fn into_value(self) -> String {
        self.to_string()
    }
}

impl IntoValue<String> for &String {
    fn into_value(self) -> String {
        self.clone()
    }
}

impl<T> IntoValue<Option<T>> for T {
    fn into_value(self) -> Option<T> {
        Some(self)
    }
}

impl IntoValue<Option<String>> for &str {
    fn into_value(self) -> Option<String> {
        Some(self.to_string())
    }
}

/// Number fields (`add`, `subtract`): integers and floats, or an `Option`
/// of one.
#[diagnostic::on_unimplemented(message = "`{Self}` is not a number field", note = "`add` and `subtract` apply to integer and float fields (or an `Option` of one)")]
pub trait Numeric {
    /// The number type itself.
    type Num: AttrValue;
}

macro_rules! numeric {
    ($($t:ty),*) => {$( impl Numeric for $t { type Num = $t; } )*};
}
numeric!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64);
impl<T: Numeric> Numeric for Option<T> {
    type Num = T::Num;
}

/// List fields (`append`, `prepend`): `Vec<T>`, or an `Option` of one.
#[diagnostic::on_unimplemented(message = "`{Self}` is not a list field", note = "`append` and `prepend` apply to `Vec` fields (or an `Option` of one)")]
pub trait ListField {
    /// The element type.
    type Elem: AttrValue;
}
impl<T: AttrValue> ListField for Vec<T> {
    type Elem = T;
}
impl<T: ListField> ListField for Option<T> {
    type Elem = T::Elem;
}

/// Set fields (`add_to_set`, `delete_from_set`): `HashSet` and `BTreeSet`
/// of strings, numbers or binaries, or an `Option` of one.
#[diagnostic::on_unimplemented(message = "`{Self}` is not a set field", note = "`add_to_set` and `delete_from_set` apply to `HashSet` and `BTreeSet` fields (or an `Option` of one)")]
pub trait SetField {
    /// The element type.
    type Elem: SetElement;
}
impl<T: SetElement, S> SetField for HashSet<T, S> {
    type Elem = T;
}
impl<T: SetElement> SetField for BTreeSet<T> {
    type Elem = T;
}
impl<T: SetField> SetField for Option<T> {
    type Elem = T::Elem;
}

/// String fields (`begins_with`).
#[diagnostic::on_unimplemented(message = "`{Self}` is not a string field", note = "`begins_with` applies to `String` fields (or an `Option<String>`)")]
pub trait TextField {}
impl TextField for String {}
impl TextField for Option<String> {}

/// Fields with a size (`size()`): strings, binaries, lists, maps, sets.
#[diagnostic::on_unimplemented(message = "`{Self}` has no size", note = "`size()` applies to strings, binaries, lists, maps and sets")]
pub trait HasSize {}
impl HasSize for String {}
impl HasSize for Blob {}
impl<T> HasSize for Vec<T> {}
impl<T, S> HasSize for HashSet<T, S> {}
impl<T> HasSize for BTreeSet<T> {}
impl<V, S> HasSize for HashMap<String, V, S> {}
impl<V> HasSize for BTreeMap<String, V> {}
impl<T: HasSize> HasSize for Option<T> {}

/// Fields `contains` applies to: a substring of a string, an element of a
/// set or of a list.
#[diagnostic::on_unimplemented(message = "`contains` does not apply to `{Self}`", note = "`contains` applies to strings (a substring), sets and lists (an element)")]
pub trait Contains {
    /// What may be contained.
    type Elem;
    #[doc(hidden)]
    fn encode_elem(elem: &Self::Elem) -> Result<AttributeValue, AttrError>;
}

impl Contains for String {
    type Elem = String;
    fn encode_elem(elem: &String) -> Result<AttributeValue, AttrError> {
        Ok(AttributeValue::S(elem.clone()))
    }
}

impl<T: SetElement, S> Contains for HashSet<T, S> {
    type Elem = T;
    fn encode_elem(elem: &T) -> Result<AttributeValue, AttrError> {
        element_value::<T>(elem)
    }
}
impl<T: SetElement> Contains for BTreeSet<T> {
    type Elem = T;
    fn encode_elem(elem: &T) -> Result<AttributeValue, AttrError> {
        element_value::<T>(elem)
    }
}
impl<T: AttrValue> Contains for Vec<T> {
    type Elem = T;
    fn encode_elem(elem: &T) -> Result<AttributeValue, AttrError> {
        elem.to_attr()
    }
}
impl<T: Contains> Contains for Option<T> {
    type Elem = T::Elem;
    fn encode_elem(elem: &T::Elem) -> Result<AttributeValue, AttrError> {
        T::encode_elem(elem)
    }
}

/// One set element as a scalar attribute value (`S`, `N` or `B`).
pub(crate) fn element_value<T: SetElement>(elem: &T) -> Result<AttributeValue, AttrError> {
    Ok(match (T::SET_TYPE, elem.encode()?) {
        (crate::AttrType::NS, ElementValue::Text(t)) => AttributeValue::N(t),
        (_, ElementValue::Text(t)) => AttributeValue::S(t),
        (_, ElementValue::Binary(b)) => AttributeValue::B(b),
    })
}

/// Several set elements as one set value (`SS`, `NS` or `BS`); `None`
/// when there are none (DynamoDB has no empty set).
pub(crate) fn set_value<T: SetElement>(elems: impl IntoIterator<Item = T>) -> Result<Option<AttributeValue>, AttrError> {
    let mut texts = Vec::new();
    let mut blobs = Vec::new();
    for e in elems {
        match e.encode()? {
            ElementValue::Text(t) => texts.push(t),
            ElementValue::Binary(b) => blobs.push(b),
        }
    }
    if texts.is_empty() && blobs.is_empty() {
        return Ok(None);
    }
    // DynamoDB refuses a set value holding one element twice.
    texts.sort();
    texts.dedup();
    blobs.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
    blobs.dedup_by(|a, b| a.as_ref() == b.as_ref());
    Ok(Some(match T::SET_TYPE {
        crate::AttrType::SS => AttributeValue::Ss(texts),
        crate::AttrType::NS => AttributeValue::Ns(texts),
        _ => AttributeValue::Bs(blobs),
    }))
}
