//! Key templates: `"ORG#{org_id}#USER#{user_id}"`.
//!
//! A template is literal text with `{field}` placeholders; `{field:0N}`
//! zero-pads an integer to `N` digits so that numeric keys sort in numeric
//! order. The same [`Template`] value is produced by `#[derive(Item)]` at
//! compile time and read from design files by migrations, and the same
//! functions here check every rendered part, so derived code and the
//! runtime evaluator agree byte for byte.
//!
//! # The injectivity rule
//!
//! The first character of the literal that follows a placeholder is that
//! placeholder's *delimiter*; a value that contains its delimiter is
//! refused with [`Error::KeyDelimiter`], and two placeholders may not touch.
//! The last placeholder of a template takes the rest of the key, so it may
//! contain anything. Under this rule [`Template::parse_key`] recovers every
//! field from a rendered key, so two different field tuples can never
//! render the same key. Empty parts are refused with [`Error::EmptyKey`].
//!
//! ```
//! use singletable::template::{Template, KeyKind};
//!
//! let t = Template::parse("ORG#{org}#USER#{user}", |_| Some((KeyKind::Str, false))).unwrap();
//! let item = [("org".to_string(), singletable::AttributeValue::S("acme".into())),
//!             ("user".to_string(), singletable::AttributeValue::S("ann#1".into()))]
//!     .into_iter().collect();
//! let key = t.render_item(&item, "User", "pk").unwrap();
//! assert_eq!(key, "ORG#acme#USER#ann#1"); // the last field may hold `#`
//! let fields = t.parse_key(&key, "User", "pk").unwrap();
//! assert_eq!(fields[1].1, singletable::AttributeValue::S("ann#1".into()));
//! ```

pub mod grammar;

use std::borrow::Cow;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use crate::attr::{normalize_integer_text, type_name};
use crate::error::Error;

/// Longest partition key value DynamoDB accepts, in bytes.
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
/// Longest sort key value DynamoDB accepts, in bytes.
pub const MAX_SORT_KEY_BYTES: usize = 1024;

/// How a key field is written into a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// A string attribute (`S`), written as is.
    Str,
    /// An integer attribute (`N`), written in decimal, optionally
    /// zero-padded.
    Int,
    /// A boolean attribute (`BOOL`), written `true` / `false`.
    Bool,
}

/// A placeholder of a template: which attribute fills it and how.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FieldRef {
    /// The attribute name in stored items.
    pub attr: Cow<'static, str>,
    /// The Rust field name (the name users write in templates and in
    /// [`KeyParts`](crate::KeyParts)).
    pub field: Cow<'static, str>,
    /// How the value is written.
    pub kind: KeyKind,
    /// Zero-padded width for integers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad: Option<u8>,
    /// Whether the field may be absent (only in index templates; an item
    /// lacking it is left out of the index).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Segment {
    /// Literal text.
    Literal(Cow<'static, str>),
    /// A placeholder.
    Field(FieldRef),
}

/// A parsed key template. Built by `#[derive(Item)]` as static data, or at
/// run time with [`Template::parse`], or read from a design file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Template {
    /// The template in source form, placeholders named by attribute.
    pub source: Cow<'static, str>,
    /// The parsed pieces.
    pub segments: Cow<'static, [Segment]>,
}

/// A value that can fill a key placeholder.
///
/// Implemented for `String`, `&str`, every integer width and `bool`;
/// implement it for your own newtypes to use them in templates.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a key part",
    label = "used in a key template",
    note = "key templates accept strings, integers and bool (or a type implementing `singletable::KeyPart`)"
)]
pub trait KeyPart {
    /// How the value is written and stored.
    const KIND: KeyKind;

    /// Appends the value to a key being rendered.
    ///
    /// `pad` is the zero-padded width of an integer placeholder. Returns a
    /// reason when the value cannot be written in that form.
    fn write_key(&self, out: &mut String, pad: Option<u8>) -> Result<(), String>;

    /// About how many bytes `write_key` appends (to size the key once).
    #[inline]
    fn len_hint(&self) -> usize {
        20
    }
}

impl KeyPart for String {
    const KIND: KeyKind = KeyKind::Str;
    #[inline]
    fn write_key(&self, out: &mut String, pad: Option<u8>) -> Result<(), String> {
        self.as_str().write_key(out, pad)
    }
    #[inline]
    fn len_hint(&self) -> usize {
        self.len()
    }
}

impl KeyPart for str {
    const KIND: KeyKind = KeyKind::Str;
    #[inline]
    fn write_key(&self, out: &mut String, pad: Option<u8>) -> Result<(), String> {
        if pad.is_some() {
            return Err(pad_on_non_integer());
        }
        out.push_str(self);
        Ok(())
    }
    #[inline]
    fn len_hint(&self) -> usize {
        self.len()
    }
}

impl<T: KeyPart + ?Sized> KeyPart for &T {
    const KIND: KeyKind = T::KIND;
    #[inline]
    fn write_key(&self, out: &mut String, pad: Option<u8>) -> Result<(), String> {
        (**self).write_key(out, pad)
    }
    #[inline]
    fn len_hint(&self) -> usize {
        (**self).len_hint()
    }
}

impl KeyPart for bool {
    const KIND: KeyKind = KeyKind::Bool;
    #[inline]
    fn write_key(&self, out: &mut String, pad: Option<u8>) -> Result<(), String> {
        if pad.is_some() {
            return Err(pad_on_non_integer());
        }
        out.push_str(if *self { "true" } else { "false" });
        Ok(())
    }
}

macro_rules! integer_key_part {
    ($($t:ty),*) => {$(
        impl KeyPart for $t {
            const KIND: KeyKind = KeyKind::Int;
            #[inline]
            fn write_key(&self, out: &mut String, pad: Option<u8>) -> Result<(), String> {
                let mut buf = itoa::Buffer::new();
                write_integer(buf.format(*self), out, pad)
            }
        }
    )*};
}

integer_key_part!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);

fn pad_on_non_integer() -> String {
    "zero padding applies to integers only".to_string()
}

/// Writes canonical integer text, zero-padded to `pad` digits if given.
/// Shared by derived code (through [`KeyPart`]) and the evaluator.
fn write_integer(digits: &str, out: &mut String, pad: Option<u8>) -> Result<(), String> {
    match pad {
        None => out.push_str(digits),
        Some(width) => {
            if digits.starts_with('-') {
                return Err(format!(
                    "{digits} is negative: zero-padded keys sort as text, where a minus sign breaks numeric order"
                ));
            }
            let width = width as usize;
            if digits.len() > width {
                return Err(format!(
                    "{digits} has more than the template's {width} digits: it would sort out of numeric order"
                ));
            }
            out.extend(std::iter::repeat('0').take(width - digits.len()));
            out.push_str(digits);
        }
    }
    Ok(())
}

/// Checks one rendered part of a key: not empty, and free of its
/// delimiter. Derived code calls this right after writing each part.
#[doc(hidden)]
#[inline]
pub fn check_part(
    key: &str,
    start: usize,
    delimiter: Option<char>,
    entity: &str,
    attribute: &str,
    field: &str,
) -> Result<(), Error> {
    let part = &key[start..];
    if part.is_empty() || delimiter.is_some_and(|d| part.contains(d)) {
        return Err(part_error(part.is_empty(), delimiter, entity, attribute, field));
    }
    Ok(())
}

// Errors are built out of line so the check above stays small enough to
// inline into every derived `to_item`.
#[cold]
#[inline(never)]
fn part_error(empty: bool, delimiter: Option<char>, entity: &str, attribute: &str, field: &str) -> Error {
    if empty {
        return Error::EmptyKey { entity: entity.into(), attribute: attribute.into(), field: field.into() };
    }
    Error::KeyDelimiter {
        entity: entity.into(),
        attribute: attribute.into(),
        field: field.into(),
        delimiter: delimiter.expect("a delimiter was found"),
    }
}

/// Checks a whole rendered key against DynamoDB's length limit.
#[doc(hidden)]
#[inline]
pub fn check_len(key: &str, max: usize, entity: &str, attribute: &str) -> Result<(), Error> {
    if key.len() > max {
        return Err(too_long(key.len(), max, entity, attribute));
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn too_long(len: usize, max: usize, entity: &str, attribute: &str) -> Error {
    Error::KeyTooLong { entity: entity.into(), attribute: attribute.into(), len, max }
}

/// The reason text when writing a part failed, as an [`Error`].
#[doc(hidden)]
#[cold]
#[inline(never)]
pub fn format_error(reason: String, entity: &str, attribute: &str, field: &str) -> Error {
    Error::KeyFormat { entity: entity.into(), attribute: attribute.into(), field: field.into(), reason }
}

impl Template {
    /// Parses a template at run time. `resolve` maps each placeholder name
    /// to its kind and whether it is optional; `None` refuses the name.
    pub fn parse(
        source: &str,
        mut resolve: impl FnMut(&str) -> Option<(KeyKind, bool)>,
    ) -> Result<Template, Error> {
        let pieces = grammar::parse(source).map_err(|e| Error::Template {
            template: source.to_string(),
            offset: e.offset,
            message: e.message,
        })?;
        let mut segments = Vec::with_capacity(pieces.len());
        for piece in pieces {
            segments.push(match piece {
                grammar::Piece::Literal(text) => Segment::Literal(Cow::Owned(text)),
                grammar::Piece::Field { name, pad, offset } => {
                    let (kind, optional) = resolve(&name).ok_or_else(|| Error::Template {
                        template: source.to_string(),
                        offset,
                        message: format!("unknown field `{name}`"),
                    })?;
                    if pad.is_some() && kind != KeyKind::Int {
                        return Err(Error::Template {
                            template: source.to_string(),
                            offset,
                            message: format!("`{name}` is not an integer: zero padding applies to integers only"),
                        });
                    }
                    Segment::Field(FieldRef {
                        attr: Cow::Owned(name.clone()),
                        field: Cow::Owned(name),
                        kind,
                        pad,
                        optional,
                    })
                }
            });
        }
        Ok(Template { source: Cow::Owned(source.to_string()), segments: Cow::Owned(segments) })
    }

    /// The placeholders, in order.
    pub fn fields(&self) -> impl Iterator<Item = &FieldRef> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Field(f) => Some(f),
            Segment::Literal(_) => None,
        })
    }

    /// Whether the template has no placeholder (a constant key).
    pub fn is_constant(&self) -> bool {
        self.fields().next().is_none()
    }

    fn delimiter_after(&self, index: usize) -> Option<char> {
        match self.segments.get(index + 1) {
            Some(Segment::Literal(text)) => text.chars().next(),
            _ => None,
        }
    }

    /// Renders the key from a raw item's attributes — the runtime
    /// evaluator used by migrations. Gives exactly the bytes derived code
    /// gives for the same values.
    pub fn render_item(
        &self,
        item: &HashMap<String, AttributeValue>,
        entity: &str,
        attribute: &str,
    ) -> Result<String, Error> {
        match self.render_prefix(|f| item.get(f.attr.as_ref()), entity, attribute)? {
            (key, None) => Ok(key),
            (_, Some(missing)) => Err(Error::MissingKeyField {
                entity: entity.into(),
                attribute: attribute.into(),
                field: missing.attr.to_string(),
            }),
        }
    }

    /// Renders as much of the key as the given values allow: every segment
    /// up to the first placeholder `lookup` has no value for. Returns the
    /// text and that first missing placeholder (`None` when complete).
    ///
    /// Stopping right before a missing placeholder keeps the delimiter that
    /// closes the previous value, so the prefix `TASK#p1#` selects the
    /// tasks of `p1` and not those of `p10`.
    pub fn render_prefix<'a, 'v>(
        &'a self,
        mut lookup: impl FnMut(&FieldRef) -> Option<&'v AttributeValue>,
        entity: &str,
        attribute: &str,
    ) -> Result<(String, Option<&'a FieldRef>), Error> {
        let mut out = String::with_capacity(self.source.len() + 16);
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Field(field) => {
                    let Some(value) = lookup(field) else {
                        return Ok((out, Some(field)));
                    };
                    let start = out.len();
                    write_value(field, value, &mut out)
                        .map_err(|reason| key_value_error(reason, field, entity, attribute))?;
                    check_part(&out, start, self.delimiter_after(i), entity, attribute, &field.field)?;
                }
            }
        }
        Ok((out, None))
    }

    /// Parses a rendered key back into its fields' attribute values.
    pub fn parse_key(&self, key: &str, entity: &str, attribute: &str) -> Result<Vec<(&FieldRef, AttributeValue)>, Error> {
        let mismatch = |reason: String| Error::KeyMismatch {
            entity: entity.into(),
            attribute: attribute.into(),
            key: key.into(),
            template: self.source.to_string(),
            reason,
        };
        let mut rest = key;
        let mut out = Vec::new();
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Literal(text) => {
                    rest = rest.strip_prefix(text.as_ref()).ok_or_else(|| mismatch(format!("expected {text:?}")))?;
                }
                Segment::Field(field) => {
                    let end = match self.delimiter_after(i) {
                        Some(d) => rest.find(d).ok_or_else(|| mismatch(format!("no {d:?} after `{}`", field.field)))?,
                        None => rest.len(),
                    };
                    let text = &rest[..end];
                    if text.is_empty() {
                        return Err(mismatch(format!("`{}` is empty", field.field)));
                    }
                    out.push((field, parse_value(field, text).map_err(mismatch)?));
                    rest = &rest[end..];
                }
            }
        }
        if !rest.is_empty() {
            return Err(mismatch(format!("unexpected trailing {rest:?}")));
        }
        Ok(out)
    }
}

enum ValueError {
    WrongType(&'static str, &'static str),
    Format(String),
}

fn key_value_error(reason: ValueError, field: &FieldRef, entity: &str, attribute: &str) -> Error {
    match reason {
        ValueError::WrongType(expected, found) => Error::Decode {
            entity: entity.into(),
            path: field.attr.to_string(),
            problem: format!("key field for `{attribute}`: expected type {expected}, found {found}"),
        },
        ValueError::Format(reason) => format_error(reason, entity, attribute, &field.field),
    }
}

fn write_value(field: &FieldRef, value: &AttributeValue, out: &mut String) -> Result<(), ValueError> {
    match (field.kind, value) {
        (KeyKind::Str, AttributeValue::S(s)) => s.as_str().write_key(out, field.pad).map_err(ValueError::Format),
        (KeyKind::Bool, AttributeValue::Bool(b)) => b.write_key(out, field.pad).map_err(ValueError::Format),
        (KeyKind::Int, AttributeValue::N(n)) => {
            if is_canonical_integer(n) {
                write_integer(n, out, field.pad).map_err(ValueError::Format)
            } else {
                let canonical = normalize_integer_text(n)
                    .ok_or_else(|| ValueError::Format(format!("{n} is not an integer")))?;
                write_integer(&canonical, out, field.pad).map_err(ValueError::Format)
            }
        }
        (kind, other) => Err(ValueError::WrongType(
            match kind {
                KeyKind::Str => "S",
                KeyKind::Int => "N",
                KeyKind::Bool => "BOOL",
            },
            type_name(other),
        )),
    }
}

fn is_canonical_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" && !text.starts_with('-') || !digits.starts_with('0'))
}

fn parse_value(field: &FieldRef, text: &str) -> Result<AttributeValue, String> {
    match field.kind {
        KeyKind::Str => Ok(AttributeValue::S(text.to_string())),
        KeyKind::Bool => match text {
            "true" => Ok(AttributeValue::Bool(true)),
            "false" => Ok(AttributeValue::Bool(false)),
            _ => Err(format!("`{}` should be true or false", field.field)),
        },
        KeyKind::Int => match field.pad {
            Some(width) => {
                if text.len() != width as usize || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("`{}` should be {width} digits", field.field));
                }
                let trimmed = text.trim_start_matches('0');
                Ok(AttributeValue::N(if trimmed.is_empty() { "0" } else { trimmed }.to_string()))
            }
            None if is_canonical_integer(text) => Ok(AttributeValue::N(text.to_string())),
            None => Err(format!("`{}` should be an integer", field.field)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(src: &str) -> Template {
        Template::parse(src, |name| {
            Some(match name {
                "n" | "m" => (KeyKind::Int, false),
                "flag" => (KeyKind::Bool, false),
                _ => (KeyKind::Str, false),
            })
        })
        .unwrap()
    }

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    #[test]
    fn grammar_refuses_what_could_not_parse_back() {
        for (src, needle) in [
            ("", "empty key template"),
            ("A#{a}{b}", "touch"),
            ("A#{}", "empty placeholder"),
            ("A#{a", "unclosed"),
            ("A#}", "unmatched"),
            ("{n:8}", "unsupported format"),
            ("{n:x}", "unsupported format"),
            ("{n:040}", "unsupported format"),
        ] {
            let err = grammar::parse(src).unwrap_err();
            assert!(err.message.contains(needle), "{src}: {}", err.message);
        }
        assert_eq!(
            grammar::parse("{{x}}#{a}").unwrap(),
            vec![grammar::Piece::Literal("{x}#".into()), grammar::Piece::Field { name: "a".into(), pad: None, offset: 7 }]
        );
    }

    #[test]
    fn renders_and_parses_back() {
        let tpl = t("ORG#{org}#N#{n:05}#F#{flag}#{rest}");
        let it = item(&[("org", s("acme")), ("n", AttributeValue::N("42".into())), ("flag", AttributeValue::Bool(true)), ("rest", s("a#b"))]);
        let key = tpl.render_item(&it, "E", "pk").unwrap();
        assert_eq!(key, "ORG#acme#N#00042#F#true#a#b");
        let parsed = tpl.parse_key(&key, "E", "pk").unwrap();
        let back: HashMap<String, AttributeValue> = parsed.into_iter().map(|(f, v)| (f.attr.to_string(), v)).collect();
        assert_eq!(back, it);
    }

    #[test]
    fn refuses_empty_parts_delimiters_and_bad_padding() {
        let tpl = t("ORG#{org}#N#{n:03}");
        let err = tpl.render_item(&item(&[("org", s("")), ("n", AttributeValue::N("1".into()))]), "E", "pk").unwrap_err();
        assert!(matches!(err, Error::EmptyKey { ref field, .. } if field == "org"), "{err}");
        let err = tpl.render_item(&item(&[("org", s("a#b")), ("n", AttributeValue::N("1".into()))]), "E", "pk").unwrap_err();
        assert!(matches!(err, Error::KeyDelimiter { delimiter: '#', .. }), "{err}");
        let err = tpl.render_item(&item(&[("org", s("a")), ("n", AttributeValue::N("1000".into()))]), "E", "pk").unwrap_err();
        assert!(matches!(err, Error::KeyFormat { .. }), "{err}");
        let err = tpl.render_item(&item(&[("org", s("a")), ("n", AttributeValue::N("-1".into()))]), "E", "pk").unwrap_err();
        assert!(matches!(err, Error::KeyFormat { .. }), "{err}");
        let err = tpl.render_item(&item(&[("org", s("a"))]), "E", "pk").unwrap_err();
        assert!(matches!(err, Error::MissingKeyField { .. }), "{err}");
        let err = tpl.render_item(&item(&[("org", AttributeValue::N("1".into())), ("n", AttributeValue::N("1".into()))]), "E", "pk").unwrap_err();
        assert!(err.to_string().contains("expected type S, found N"), "{err}");
    }

    #[test]
    fn prefix_stops_before_first_missing_field() {
        let tpl = t("TASK#{project}#{task}");
        let p = s("p1");
        let (prefix, missing) = tpl.render_prefix(|f| (f.attr == "project").then_some(&p), "E", "sk").unwrap();
        assert_eq!(prefix, "TASK#p1#");
        assert_eq!(missing.unwrap().attr, "task");
        let (prefix, _) = tpl.render_prefix(|_| None, "E", "sk").unwrap();
        assert_eq!(prefix, "TASK#");
    }

    #[test]
    fn parse_refuses_foreign_keys() {
        let tpl = t("ORG#{org}#N#{n:03}");
        for bad in ["ORG#a", "ORG#a#N#1", "ORG##N#001", "XORG#a#N#001", "ORG#a#N#0010"] {
            assert!(tpl.parse_key(bad, "E", "pk").is_err(), "{bad}");
        }
        let plain = t("N#{n}");
        assert!(plain.parse_key("N#007", "E", "pk").is_err());
        assert!(plain.parse_key("N#-0", "E", "pk").is_err());
        assert!(plain.parse_key("N#-7", "E", "pk").is_ok());
    }

    #[test]
    fn normalizes_integral_numbers_from_other_writers() {
        let tpl = t("N#{n}");
        let key = tpl.render_item(&item(&[("n", AttributeValue::N("1E+2".into()))]), "E", "pk").unwrap();
        assert_eq!(key, "N#100");
    }
}
