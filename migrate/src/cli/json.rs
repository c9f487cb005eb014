//! Newline-delimited JSON reports, in the manner of `terraform apply
//! -json`: one object per line on standard output, each with `@level`,
//! `@message`, `@timestamp` and a `type`, plus an object named after the
//! type holding its details.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// One report line.
pub(super) fn line(level: &str, kind: &str, message: &str, details: Option<Value>) -> String {
    let mut object = Map::new();
    object.insert("@level".into(), json!(level));
    object.insert("@message".into(), json!(message));
    object.insert("@timestamp".into(), json!(timestamp(SystemTime::now())));
    object.insert("type".into(), json!(kind));
    if let Some(details) = details {
        object.insert(kind.into(), details);
    }
    Value::Object(object).to_string()
}

/// Writes a report line to standard output, flushed at once: a reader
/// follows an apply as it goes.
pub(super) fn emit(level: &str, kind: &str, message: &str, details: Option<Value>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line(level, kind, message, details));
    let _ = out.flush();
}

/// RFC 3339 in UTC, to the microsecond.
fn timestamp(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (year, month, day, rest) = crate::civil::civil(secs);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        // 2024-02-29 (a leap day) 13:45:07.25 UTC.
        assert_eq!(timestamp(UNIX_EPOCH + Duration::from_millis(1_709_214_307_250)), "2024-02-29T13:45:07.250000Z");
    }

    #[test]
    fn a_line_names_its_details_after_its_type() {
        let v: Value = serde_json::from_str(&line("info", "step", "[1/2] create table `t`", Some(json!({"number": 1})))).unwrap();
        assert_eq!((v["@level"].as_str(), v["type"].as_str(), v["step"]["number"].as_u64()), (Some("info"), Some("step"), Some(1)));
        assert_eq!(v["@message"], "[1/2] create table `t`");
        let v: Value = serde_json::from_str(&line("warn", "warning", "careful", None)).unwrap();
        assert!(v.get("warning").is_none());
    }
}
