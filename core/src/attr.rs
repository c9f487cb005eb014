//! Conversion of Rust values to and from DynamoDB `AttributeValue`s.
//!
//! Generated code calls [`AttrValue`] for every stored field, so the
//! conversion is chosen by the field's type at compile time and builds the
//! `AttributeValue` directly — no serde round trip.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, Hash};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use crate::error::{AttrError, AttrProblem};

/// The DynamoDB type a Rust type is stored as (recorded in designs so that
/// migrations know what old items hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AttrType {
    /// String.
    S,
    /// Number.
    N,
    /// Binary.
    B,
    /// Boolean.
    #[serde(rename = "BOOL")]
    Bool,
    /// List.
    L,
    /// Map.
    M,
    /// String set.
    SS,
    /// Number set.
    NS,
    /// Binary set.
    BS,
    /// Decided at run time (serde-encoded fields).
    Any,
}

impl AttrType {
    /// The name DynamoDB uses for the type.
    pub const fn name(self) -> &'static str {
        match self {
            AttrType::S => "S",
            AttrType::N => "N",
            AttrType::B => "B",
            AttrType::Bool => "BOOL",
            AttrType::L => "L",
            AttrType::M => "M",
            AttrType::SS => "SS",
            AttrType::NS => "NS",
            AttrType::BS => "BS",
            AttrType::Any => "any",
        }
    }
}

/// The DynamoDB type name of a stored value, for error messages.
pub fn type_name(value: &AttributeValue) -> &'static str {
    match value {
        AttributeValue::S(_) => "S",
        AttributeValue::N(_) => "N",
        AttributeValue::B(_) => "B",
        AttributeValue::Bool(_) => "BOOL",
        AttributeValue::Null(_) => "NULL",
        AttributeValue::L(_) => "L",
        AttributeValue::M(_) => "M",
        AttributeValue::Ss(_) => "SS",
        AttributeValue::Ns(_) => "NS",
        AttributeValue::Bs(_) => "BS",
        _ => "unknown",
    }
}

fn wrong_type(expected: &'static str, found: &AttributeValue) -> AttrError {
    AttrError::new(AttrProblem::WrongType { expected, found: type_name(found) })
}

/// A Rust type that is stored as one DynamoDB attribute value.
///
/// Implemented for strings, every integer width, finite floats, `bool`,
/// `Option`, `Vec`, `Box`, string-keyed maps, sets of strings, numbers and
/// binaries, [`Blob`], and structs with `#[derive(singletable::Document)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored as a DynamoDB attribute",
    label = "no `AttrValue` implementation",
    note = "derive `singletable::Document` for a struct stored as a map, or mark the field `#[item(serde)]` to encode it through serde_dynamo"
)]
pub trait AttrValue: Sized {
    /// The DynamoDB type it is stored as.
    const TYPE: AttrType;
    /// Whether an item may lack the attribute (true for `Option`).
    const OPTIONAL: bool = false;

    /// Encodes the value. Fails for values DynamoDB cannot store.
    fn to_attr(&self) -> Result<AttributeValue, AttrError>;

    /// Decodes an owned value, moving strings and lists out of it.
    fn from_attr(value: AttributeValue) -> Result<Self, AttrError>;

    /// Encodes a top-level attribute; `None` leaves it out of the item.
    #[doc(hidden)]
    #[inline]
    fn to_attr_opt(&self) -> Result<Option<AttributeValue>, AttrError> {
        self.to_attr().map(Some)
    }

    /// The value of an attribute the item lacks, if that is allowed.
    #[doc(hidden)]
    #[inline]
    fn from_missing() -> Option<Self> {
        None
    }

    /// Encodes a top-level attribute straight into `item` (nothing for
    /// `None`). Derived code calls this: building the value inside the
    /// insert spares the scalar types a detour through `Result<Option<_>>`.
    #[doc(hidden)]
    #[inline]
    fn encode_into(&self, item: &mut HashMap<String, AttributeValue>, name: &str) -> Result<(), AttrError> {
        if let Some(v) = self.to_attr_opt()? {
            item.insert(name.to_owned(), v);
        }
        Ok(())
    }
}

impl AttrValue for String {
    const TYPE: AttrType = AttrType::S;
    #[inline]
    fn to_attr(&self) -> Result<AttributeValue, AttrError> {
        Ok(AttributeValue::S(self.clone()))
    }
    #[inline]
    fn encode_into(&self, item: &mut HashMap<String, AttributeValue>, name: &str) -> Result<(), AttrError> {
        item.insert(name.to_owned(), AttributeValue::S(self.clone()));
        Ok(())
    }
    #[inline]
    fn from_attr(value: AttributeValue) -> Result<Self, AttrError> {
        match value {
            AttributeValue::S(s) => Ok(s),
            other => Err(wrong_type("S", &other)),
        }
    }
}

impl AttrValue for bool {
    const TYPE: AttrType = AttrType::Bool;
    #[inline]
    fn to_attr(&self) -> Result<AttributeValue, AttrError> {
        Ok(AttributeValue::Bool(*self))
    }
    #[inline]
    fn encode_into(&self, item: &mut HashMap<String, AttributeValue>, name: &str) -> Result<(), AttrError> {
        item.insert(name.to_owned(), AttributeValue::Bool(*self));
        Ok(())
    }
    #[inline]
    fn from_attr(value: AttributeValue) -> Result<Self, AttrError> {
        match value {
            AttributeValue::Bool(b) => Ok(b),
            other => Err(wrong_type("BOOL", &other)),
        }
    }
}

impl AttrValue for Blob {
    const TYPE: AttrType = AttrType::B;
    fn to_attr(&self) -> Result<AttributeValue, AttrError> {
        Ok(AttributeValue::B(self.clone()))
    }
    fn from_attr(value: AttributeValue) -> Result<Self, AttrError> {
        match value {
            AttributeValue::B(b) => Ok(b),
            other => Err(wrong_type("B", &other)),
        }
    }
}

/// Checks that an integer's decimal text fits DynamoDB's 38 significant
/// digits (only 128-bit integers can exceed it).
fn check_significant_digits(text: &str) -> Result<(), AttrError> {
    let digits = text.trim_start_matches('-').trim_end_matches('0');
    if digits.len() > 38 {
        return Err(AttrError::new(AttrProblem::OutOfRange { text: text.to_string() }));
    }
    Ok(())
}

macro_rules! integer_attr {
    ($($t:ty),*) => {$(
        impl AttrValue for $t {
            const TYPE: AttrType = AttrType::N;
            #[inline]
            fn to_attr(&self) -> Result<AttributeValue, AttrError> {
                let mut buf = itoa::Buffer::new();
                let text = buf.format(*self);
                if <$t>::BITS > 64 {
                    check_significant_digits(text)?;
                }
                Ok(AttributeValue::N(text.to_owned()))
            }
            #[inline]
            fn encode_into(&self, item: &mut HashMap<String, AttributeValue>, name: &str) -> Result<(), AttrError> {
                let mut buf = itoa::Buffer::new();
                let text = buf.format(*self);
                if <$t>::BITS > 64 {
                    check_significant_digits(text)?;
                }
                item.insert(name.to_owned(), AttributeValue::N(text.to_owned()));
                Ok(())
            }
            #[inline]
            fn from_attr(value: AttributeValue) -> Result<Self, AttrError> {
                match value {
                    AttributeValue::N(n) => parse_integer::<$t>(&n, stringify!($t)),
                    other => Err(wrong_type("N", &other)),
                }
            }
        }
        impl SetElement for $t {
            const SET_TYPE: AttrType = AttrType::NS;
            fn encode(&self) -> Result<ElementValue, AttrError> {
                match self.to_attr()? {
                    AttributeValue::N(n) => Ok(ElementValue::Text(n)),
                    _ => unreachable!("integers encode as N"),
                }
            }
            fn decode(element: ElementValue) -> Result<Self, AttrError> {
                match element {
                    ElementValue::Text(n) => parse_integer::<$t>(&n, stringify!($t)),
                    ElementValue::Binary(_) => Err(AttrError::new(AttrProblem::WrongType { expected: "N", found: "B" })),
                }
            }
        }
    )*};
}

/// Parses DynamoDB's number text into an integer type. DynamoDB keeps
/// numbers normalised, but items written by other tools may carry an
/// exponent or a zero fraction (`1E+3`, `5.0`), which are still integers.
fn parse_integer<T: std::str::FromStr>(text: &str, target: &'static str) -> Result<T, AttrError> {
    if let Ok(v) = text.parse::<T>() {
        return Ok(v);
    }
    normalize_integer_text(text)
        .and_then(|canonical| canonical.parse::<T>().ok())
        .ok_or_else(|| AttrError::new(AttrProblem::BadNumber { text: text.to_string(), target }))
}

/// Rewrites an integral DynamoDB number (`1E+3`, `5.00`, `+7`) as plain
/// decimal digits; `None` for fractions and malformed text.
pub(crate) fn normalize_integer_text(text: &str) -> Option<String> {
    let text = text.trim();
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(p) => (&body[..p], body[p + 1..].parse::<i32>().ok()?),
        None => (body, 0),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(p) => (&mantissa[..p], &mantissa[p + 1..]),
        None => (mantissa, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.bytes().chain(frac_part.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits = format!("{int_part}{frac_part}");
    let point = int_part.len() as i64 + exponent as i64;
    if point < 0 {
        return digits.bytes().all(|b| b == b'0').then(|| "0".to_string());
    }
    let point = point as usize;
    if point > 200 {
        return None;
    }
    if digits.len() < point {
        digits.extend(std::iter::repeat('0').take(point - digits.len()));
    }
    if !digits[point..].bytes().all(|b| b == b'0') {
        return None;
    }
    digits.truncate(point);
    let trimmed = digits.trim_start_matches('0');
    let trimmed = if trimmed.is_empty() { "0" } else { trimmed };
    Some(if negative && trimmed != "0" { format!("-{trimmed}") } else { trimmed.to_string() })
}

integer_attr!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);

macro_rules! float_attr {
    ($($t:ty),*) => {$(
        impl AttrValue for $t {
            const TYPE: AttrType = AttrType::N;
            #[inline]
            fn to_attr(&self) -> Result<AttributeValue, AttrError> {
                let v = *self;
                if !v.is_finite() {
                    return Err(AttrError::new(AttrProblem::NonFinite));
                }
                let magnitude = (v as f64).abs();
                if magnitude != 0.0 && !(1e-130..1e126).contains(&magnitude) {
                    return Err(AttrError::new(AttrProblem::OutOfRange { text: v.to_string() }));
                }
                let mut buf = ryu::Buffer::new();
                Ok(AttributeValue::N(buf.format_finite(v).to_owned()))
            }
            #[inline]
            fn from_attr(value: AttributeValue) -> Result<Self, AttrError> {
                match value {
                    AttributeValue::N(n) => n.parse::<$t>().map_err(|_| {
                        AttrError::new(AttrProblem::BadNumber { text: n.clone(), target: stringify!($t) })
                    }),
                    other => Err(wrong_type("N", &other)),
                }
            }
        }
    )*};
}

float_attr!(f32, f64);

impl<T: AttrValue> AttrValue for Option<T> {
    const TYPE: AttrType = T::TYPE;
    const OPTIONAL: bool = true;
    #[inline]
    fn to_attr(&self) -> Result<AttributeValue, AttrError> {
        match self {
            Some(v) => v.to_attr(),
            None => Ok(AttributeValue::Null(true)),
        }
    }
    #[inline]
    fn from_attr(value: AttributeValue) -> Result<Self, AttrError> {
        match value {
            AttributeValue::Null(_) => Ok(None),
            other => T::from_attr(other).map(Some),
        }
    }
    #[inline]
    fn to_attr_opt(&self) -> Result<Option<AttributeValue>, AttrError> {
        match self {
            Some(v) => v.to_attr().map(Some),
            None => Ok(None),
        }
    }
    #[inline]
    fn from_missing() -> Option<Self> {
        Some(None)
    }
    #[inline]
    fn encode_into(&self, item: &mut HashMap<String, AttributeValue>, name: &str) -> Result<(), AttrError> {
        match self {
            Some(v) => v.encode_into(item, name),
            None => Ok(()),
        }
    }
}

impl<T: AttrValue> AttrValue for Box<T> {
    const TYPE: AttrType = T::TYPE;
    const OPTIONAL: bool = T::OPTIONAL;
    fn to_attr(&self) -> Result<AttributeValue, AttrError> {
        (**self).to_attr()
    }
    fn from_attr(value: AttributeValue) -> Result<Self, AttrError> {
        T::from_attr(value).map(Box::new)
    }
    fn to_attr_opt(&self) -> Result<Option<AttributeValue>, AttrError> {
        (**self).to_attr_opt()
    }
    fn from_missing() -> Option<Self> {
        T::from_missing().map(Box::new)
    }
}

impl<T: AttrValue> AttrValue for Vec<T> {
    const TYPE: AttrType = AttrType::L;
    fn to_attr(&self) -> Result<AttributeValue, AttrError> {
        let mut list = Vec::with_capacity(self.len());
        for (i, v) in self.iter().enumerate() {
            list.push(v.to_attr().map_err(|e| e.at_index(i))?);
        }
        Ok(AttributeValue::L(list))
    }
    fn from_attr(value: AttributeValue) -> Result<Self, AttrError> {
        match value {
            AttributeValue::L(list) => {
                let mut out = Vec::with_capacity(list.len());
                for (i, v) in list.into_iter().enumerate() {
                    out.push(T::from_attr(v).map_err(|e| e.at_index(i))?);
                }
                Ok(out)
            }
            other => Err(wrong_type("L", &other)),
        }
    }
}

impl<V: AttrValue, S: BuildHasher + Default> AttrValue for HashMap<String, V, S> {
    const TYPE: AttrType = AttrType::M;
    fn to_attr(&self) -> Result<AttributeValue, AttrError> {
        encode_map(self.len(), self.iter())
    }
    fn from_attr(value: AttributeValue) -> Result<Self, AttrError> {
        decode_map(value)
    }
}

fn encode_map<'a, V: AttrValue + 'a>(
    len: usize,
    entries: impl Iterator<Item = (&'a String, &'a V)>,
) -> Result<AttributeValue, AttrError> {
    let mut map = HashMap::with_capacity(len);
    for (k, v) in entries {
        if k.is_empty() {
            return Err(AttrError::new(AttrProblem::EmptyMapKey));
        }
        map.insert(k.clone(), v.to_attr().map_err(|e| e.in_field(k.clone()))?);
    }
    Ok(AttributeValue::M(map))
}

fn decode_map<V: AttrValue, C: Default + Extend<(String, V)>>(value: AttributeValue) -> Result<C, AttrError> {
    match value {
        AttributeValue::M(map) => {
            let mut out = C::default();
            for (k, v) in map {
                let decoded = V::from_attr(v).map_err(|e| e.in_field(k.clone()))?;
                out.extend(std::iter::once((k, decoded)));
            }
            Ok(out)
        }
        other => Err(wrong_type("M", &other)),
    }
}

impl<V: AttrValue> AttrValue for BTreeMap<String, V> {
    const TYPE: AttrType = AttrType::M;
    fn to_attr(&self) -> Result<AttributeValue, AttrError> {
        encode_map(self.len(), self.iter())
    }
    fn from_attr(value: AttributeValue) -> Result<Self, AttrError> {
        decode_map(value)
    }
}

/// One element of a set, as DynamoDB holds it.
#[doc(hidden)]
pub enum ElementValue {
    Text(String),
    Binary(Blob),
}

/// A type that can be an element of a DynamoDB set (SS, NS or BS).
pub trait SetElement: Sized {
    /// The set type: `SS`, `NS` or `BS`.
    const SET_TYPE: AttrType;
    #[doc(hidden)]
    fn encode(&self) -> Result<ElementValue, AttrError>;
    #[doc(hidden)]
    fn decode(element: ElementValue) -> Result<Self, AttrError>;
}

impl SetElement for String {
    const SET_TYPE: AttrType = AttrType::SS;
    fn encode(&self) -> Result<ElementValue, AttrError> {
        Ok(ElementValue::Text(self.clone()))
    }
    fn decode(element: ElementValue) -> Result<Self, AttrError> {
        match element {
            ElementValue::Text(s) => Ok(s),
            ElementValue::Binary(_) => Err(AttrError::new(AttrProblem::WrongType { expected: "S", found: "B" })),
        }
    }
}

impl SetElement for Blob {
    const SET_TYPE: AttrType = AttrType::BS;
    fn encode(&self) -> Result<ElementValue, AttrError> {
        Ok(ElementValue::Binary(self.clone()))
    }
    fn decode(element: ElementValue) -> Result<Self, AttrError> {
        match element {
            ElementValue::Binary(b) => Ok(b),
            ElementValue::Text(_) => Err(AttrError::new(AttrProblem::WrongType { expected: "B", found: "S" })),
        }
    }
}

fn encode_set<'a, T: SetElement + 'a>(len: usize, items: impl Iterator<Item = &'a T>) -> Result<AttributeValue, AttrError> {
    if len == 0 {
        return Err(AttrError::new(AttrProblem::EmptySet));
    }
    let mut texts = Vec::with_capacity(len);
    let mut blobs = Vec::new();
    for item in items {
        match item.encode()? {
            ElementValue::Text(t) => texts.push(t),
            ElementValue::Binary(b) => blobs.push(b),
        }
    }
    Ok(match T::SET_TYPE {
        AttrType::SS => AttributeValue::Ss(texts),
        AttrType::NS => AttributeValue::Ns(texts),
        _ => AttributeValue::Bs(blobs),
    })
}

fn decode_set<T: SetElement, C: Extend<T> + Default>(value: AttributeValue) -> Result<C, AttrError> {
    let elements: Vec<ElementValue> = match (T::SET_TYPE, value) {
        (AttrType::SS, AttributeValue::Ss(v)) | (AttrType::NS, AttributeValue::Ns(v)) => {
            v.into_iter().map(ElementValue::Text).collect()
        }
        (AttrType::BS, AttributeValue::Bs(v)) => v.into_iter().map(ElementValue::Binary).collect(),
        (expected, other) => return Err(wrong_type(expected.name(), &other)),
    };
    let mut out = C::default();
    for element in elements {
        out.extend(std::iter::once(T::decode(element)?));
    }
    Ok(out)
}

impl<T: SetElement + Eq + Hash, S: BuildHasher + Default> AttrValue for HashSet<T, S> {
    const TYPE: AttrType = T::SET_TYPE;
    fn to_attr(&self) -> Result<AttributeValue, AttrError> {
        encode_set(self.len(), self.iter())
    }
    fn from_attr(value: AttributeValue) -> Result<Self, AttrError> {
        decode_set::<T, Self>(value)
    }
}

impl<T: SetElement + Ord> AttrValue for BTreeSet<T> {
    const TYPE: AttrType = T::SET_TYPE;
    fn to_attr(&self) -> Result<AttributeValue, AttrError> {
        encode_set(self.len(), self.iter())
    }
    fn from_attr(value: AttributeValue) -> Result<Self, AttrError> {
        decode_set::<T, Self>(value)
    }
}

/// Encodes any `serde::Serialize` value through `serde_dynamo`: the escape
/// hatch for field types without an [`AttrValue`] implementation
/// (`#[item(serde)]`).
pub fn serde_to_attr<T: Serialize>(value: &T) -> Result<AttributeValue, AttrError> {
    serde_dynamo::to_attribute_value(value).map_err(|e| AttrError::new(AttrProblem::Other(e.to_string())))
}

/// Decodes a `serde::Deserialize` value through `serde_dynamo`.
pub fn serde_from_attr<T: for<'de> Deserialize<'de>>(value: AttributeValue) -> Result<T, AttrError> {
    serde_dynamo::from_attribute_value(value).map_err(|e| AttrError::new(AttrProblem::Other(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integral_numbers_in_other_spellings_decode() {
        assert_eq!(normalize_integer_text("1E+3").as_deref(), Some("1000"));
        assert_eq!(normalize_integer_text("5.00").as_deref(), Some("5"));
        assert_eq!(normalize_integer_text("-0").as_deref(), Some("0"));
        assert_eq!(normalize_integer_text("1.5"), None);
        assert_eq!(normalize_integer_text("12e-1"), None);
        assert_eq!(normalize_integer_text("abc"), None);
        assert_eq!(i64::from_attr(AttributeValue::N("2E1".into())).unwrap(), 20);
    }

    #[test]
    fn floats_outside_dynamodb_range_are_refused() {
        assert_eq!(f64::NAN.to_attr().unwrap_err().problem, AttrProblem::NonFinite);
        assert!(matches!(1e200f64.to_attr().unwrap_err().problem, AttrProblem::OutOfRange { .. }));
        assert!(matches!(5e-324f64.to_attr().unwrap_err().problem, AttrProblem::OutOfRange { .. }));
        assert_eq!(0.0f64.to_attr().unwrap(), AttributeValue::N("0.0".into()));
    }

    #[test]
    fn wide_integers_keep_to_38_digits() {
        assert!(u128::MAX.to_attr().is_err());
        assert!(10u128.pow(38).to_attr().is_ok());
        assert!(i64::MIN.to_attr().is_ok());
    }

    #[test]
    fn empty_sets_are_refused_and_paths_are_reported() {
        let empty: HashSet<String> = HashSet::new();
        assert_eq!(empty.to_attr().unwrap_err().problem, AttrProblem::EmptySet);
        let nested = AttributeValue::L(vec![AttributeValue::N("1".into()), AttributeValue::S("x".into())]);
        let err = Vec::<i32>::from_attr(nested).unwrap_err().in_field("scores");
        assert_eq!(err.path(), "scores[1]");
        let blank: BTreeMap<String, i32> = [(String::new(), 1)].into();
        assert_eq!(blank.to_attr().unwrap_err().problem, AttrProblem::EmptyMapKey);
    }
}
