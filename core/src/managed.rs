//! Fields the toolkit maintains: `#[item(version)]`, `#[item(ttl)]`,
//! `#[item(created_at)]`, `#[item(updated_at)]`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::attr::{AttrType, AttrValue};
use crate::error::{AttrError, AttrProblem, Error};

/// Which timestamp [`Item`](crate::Item)'s hidden `__now` is asked for.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    CreatedAt,
    UpdatedAt,
}

/// The type of an `#[item(version)]` field: an unsigned integer. A new
/// item has version 0; every write stores the version it was given plus
/// one, on condition that the stored version is the one given.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an `#[item(version)]` field",
    label = "not an unsigned integer",
    note = "a version is an unsigned integer (u32, u64 ...); a new item has version 0"
)]
pub trait VersionNumber: AttrValue {
    /// Named by derived code, so that a wrong type is reported at the field.
    #[doc(hidden)]
    const __CHECK: () = ();
}
impl VersionNumber for u8 {}
impl VersionNumber for u16 {}
impl VersionNumber for u32 {}
impl VersionNumber for u64 {}
impl VersionNumber for usize {}

/// The type of an `#[item(created_at)]` or `#[item(updated_at)]` field.
///
/// Implemented for [`SystemTime`] (stored as epoch seconds, with the
/// fraction: see its [`AttrValue`] implementation) and `Option` of one;
/// implement it (with [`AttrValue`]) for your own time type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a `created_at`/`updated_at` field",
    label = "no `singletable::Timestamp` implementation",
    note = "use `std::time::SystemTime` or `Option<SystemTime>`, or implement `singletable::Timestamp` for your type"
)]
pub trait Timestamp: AttrValue {
    /// The current time.
    fn now() -> Self;
}

impl Timestamp for SystemTime {
    fn now() -> Self {
        SystemTime::now()
    }
}

impl<T: Timestamp> Timestamp for Option<T> {
    fn now() -> Self {
        Some(T::now())
    }
}

/// The type of an `#[item(ttl)]` field: when DynamoDB may delete the item.
///
/// Stored as whole epoch seconds (type `N`), which is what DynamoDB's time
/// to live reads: [`SystemTime`] (rounded *up* to the next second, so an
/// item never expires early; read back as that whole second), unsigned
/// or signed 64-bit epoch seconds (`u64`, `i64`), or an `Option` of one
/// (`None`: the item never expires).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an `#[item(ttl)]` field",
    label = "not an expiry time",
    note = "use `std::time::SystemTime`, epoch seconds as `u64`/`i64`, or an `Option` of one"
)]
pub trait TtlValue: AttrValue {
    /// Epoch seconds; `None` leaves the attribute out.
    fn epoch_seconds(&self) -> Result<Option<i64>, AttrError>;

    /// Encodes the value as the TTL attribute.
    #[doc(hidden)]
    fn to_ttl_attr(&self) -> Result<Option<AttributeValue>, AttrError> {
        Ok(self.epoch_seconds()?.map(|s| AttributeValue::N(s.to_string())))
    }
}

impl TtlValue for SystemTime {
    fn epoch_seconds(&self) -> Result<Option<i64>, AttrError> {
        let (neg, d) = since_epoch(*self);
        let secs = i64::try_from(d.as_secs())
            .map_err(|_| AttrError::new(AttrProblem::OutOfRange { text: format!("{d:?} from the epoch") }))?;
        Ok(Some(if neg {
            -secs
        } else if d.subsec_nanos() > 0 {
            secs + 1
        } else {
            secs
        }))
    }
}

impl TtlValue for u64 {
    fn epoch_seconds(&self) -> Result<Option<i64>, AttrError> {
        i64::try_from(*self)
            .map(Some)
            .map_err(|_| AttrError::new(AttrProblem::OutOfRange { text: self.to_string() }))
    }
}

impl TtlValue for i64 {
    fn epoch_seconds(&self) -> Result<Option<i64>, AttrError> {
        Ok(Some(*self))
    }
}

impl<T: TtlValue> TtlValue for Option<T> {
    fn epoch_seconds(&self) -> Result<Option<i64>, AttrError> {
        match self {
            Some(v) => v.epoch_seconds(),
            None => Ok(None),
        }
    }
}

fn since_epoch(t: SystemTime) -> (bool, Duration) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (false, d),
        Err(e) => (true, e.duration()),
    }
}

/// `SystemTime` is stored as a number: seconds since the Unix epoch, with
/// a fraction of up to nine digits when the time has one
/// (`1767225600.25`), negative before 1970. It reads back exactly.
impl AttrValue for SystemTime {
    const TYPE: AttrType = AttrType::N;

    fn to_attr(&self) -> Result<AttributeValue, AttrError> {
        let (neg, d) = since_epoch(*self);
        let mut text = String::new();
        if neg && !d.is_zero() {
            text.push('-');
        }
        text.push_str(&d.as_secs().to_string());
        if d.subsec_nanos() > 0 {
            let frac = format!("{:09}", d.subsec_nanos());
            text.push('.');
            text.push_str(frac.trim_end_matches('0'));
        }
        Ok(AttributeValue::N(text))
    }

    fn from_attr(value: AttributeValue) -> Result<Self, AttrError> {
        let text = match value {
            AttributeValue::N(n) => n,
            other => {
                return Err(AttrError::new(AttrProblem::WrongType { expected: "N", found: crate::attr::type_name(&other) }))
            }
        };
        parse_epoch(&text)
            .ok_or_else(|| AttrError::new(AttrProblem::BadNumber { text: text.clone(), target: "SystemTime (epoch seconds)" }))
    }
}

fn parse_epoch(text: &str) -> Option<SystemTime> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        // Other spellings (exponents) go through the integer normaliser.
        let canonical = crate::attr::normalize_integer_text(text)?;
        return parse_epoch(&canonical).filter(|_| !canonical.contains(['e', 'E']));
    }
    let secs: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut nanos_text: String = frac.chars().take(9).collect();
    while nanos_text.len() < 9 {
        nanos_text.push('0');
    }
    let nanos: u32 = nanos_text.parse().ok()?;
    let d = Duration::new(secs, nanos);
    if neg {
        UNIX_EPOCH.checked_sub(d)
    } else {
        UNIX_EPOCH.checked_add(d)
    }
}

/// Reads a stored version number.
pub(crate) fn read_version(entity: &str, attr: &str, value: Option<&AttributeValue>) -> Result<u64, Error> {
    match value {
        None | Some(AttributeValue::Null(_)) => Ok(0),
        Some(v) => u64::from_attr(v.clone()).map_err(|e| e.in_field(attr).decoding(entity)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(t: SystemTime) -> (String, SystemTime) {
        let AttributeValue::N(text) = t.to_attr().unwrap() else { panic!() };
        let back = SystemTime::from_attr(AttributeValue::N(text.clone())).unwrap();
        (text, back)
    }

    #[test]
    fn system_time_is_epoch_seconds_and_reads_back_exactly() {
        let t = UNIX_EPOCH + Duration::new(1_767_225_600, 250_000_000);
        assert_eq!(round_trip(t), ("1767225600.25".to_string(), t));
        let t = UNIX_EPOCH + Duration::new(5, 1);
        assert_eq!(round_trip(t), ("5.000000001".to_string(), t));
        assert_eq!(round_trip(UNIX_EPOCH), ("0".to_string(), UNIX_EPOCH));
        let before = UNIX_EPOCH - Duration::new(10, 500_000_000);
        assert_eq!(round_trip(before), ("-10.5".to_string(), before));
        let now = SystemTime::now();
        assert_eq!(round_trip(now).1, now);
        assert_eq!(SystemTime::from_attr(AttributeValue::N("1E+3".into())).unwrap(), UNIX_EPOCH + Duration::from_secs(1000));
        assert!(SystemTime::from_attr(AttributeValue::N("abc".into())).is_err());
        assert!(SystemTime::from_attr(AttributeValue::S("1".into())).is_err());
    }

    #[test]
    fn ttl_is_whole_seconds_rounded_up() {
        let t = UNIX_EPOCH + Duration::new(100, 1);
        assert_eq!(t.to_ttl_attr().unwrap(), Some(AttributeValue::N("101".into())));
        let t = UNIX_EPOCH + Duration::new(100, 0);
        assert_eq!(t.to_ttl_attr().unwrap(), Some(AttributeValue::N("100".into())));
        assert_eq!(None::<SystemTime>.to_ttl_attr().unwrap(), None);
        assert_eq!(7u64.to_ttl_attr().unwrap(), Some(AttributeValue::N("7".into())));
        assert!(u64::MAX.to_ttl_attr().is_err());
    }
}
