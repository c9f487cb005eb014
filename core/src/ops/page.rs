//! Pagination: queries and scans as a `futures::Stream` of typed items,
//! or a page at a time with an opaque cursor for an HTTP API.
//!
//! A cursor is `LastEvaluatedKey` as typed JSON (plus the items still
//! allowed by the query's `limit`), tagged with a fingerprint of the query
//! that issued it and a checksum, in unpadded base64url. Decoding a cursor
//! that was altered, truncated or issued for another query (another table,
//! index, partition, condition or entity) fails with [`Error::Cursor`].
//! The checksum catches accidents and casual edits; it is not a signature:
//! a cursor shows the keys it holds to whoever decodes the base64.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use futures::stream::{self, StreamExt, TryStreamExt};
use serde_json::{json, Map, Value};

use crate::error::Error;
use crate::hash::{hash_value, Fnv64};
use crate::table::Table;

type Raw = HashMap<String, AttributeValue>;

/// One page of items and the cursor of the next page (`None` when there
/// is none). A page may hold fewer items than asked for, even none, while
/// a cursor follows.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, in the order DynamoDB returned them.
    pub items: Vec<T>,
    /// Pass it to the same query's `page` for the next page.
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Query,
    Scan,
}

/// A query or scan ready to send, shared by [`Query`], [`Scan`] and
/// collection queries.
#[derive(Debug, Clone)]
pub(crate) struct Request<'t> {
    pub table: &'t Table,
    pub op: Op,
    pub index: Option<String>,
    pub key_condition: Option<String>,
    pub filter: Option<String>,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
    /// Items whose `.0` attribute equals `.1` are dropped (an open upper
    /// bound's successor).
    pub exclude: Option<(String, AttributeValue)>,
    pub forward: bool,
    pub consistent: bool,
    pub limit: Option<usize>,
    pub page_size: Option<usize>,
    pub segment: Option<(i32, i32)>,
    /// The attributes a `LastEvaluatedKey` of this request holds.
    pub key_attrs: Vec<String>,
    /// For a query: the partition key attribute and value every cursor
    /// must stay in.
    pub partition: Option<(String, AttributeValue)>,
}

/// Where a stream or page starts.
struct Start {
    key: Option<Raw>,
    remaining: Option<usize>,
}

impl<'t> Request<'t> {
    /// One request to DynamoDB.
    async fn fetch(&self, start: Option<Raw>, limit: Option<usize>) -> Result<(Vec<Raw>, Option<Raw>), Error> {
        let table = self.table;
        let limit = limit.map(|l| l.min(i32::MAX as usize) as i32);
        let names = (!self.names.is_empty()).then(|| self.names.clone());
        let values = (!self.values.is_empty()).then(|| self.values.clone());
        let started = std::time::Instant::now();
        let (items, last) = match self.op {
            Op::Query => {
                let out = table
                    .client()
                    .query()
                    .table_name(table.name())
                    .set_index_name(self.index.clone())
                    .set_key_condition_expression(self.key_condition.clone())
                    .set_filter_expression(self.filter.clone())
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .scan_index_forward(self.forward)
                    .set_consistent_read(self.consistent.then_some(true))
                    .set_limit(limit)
                    .set_exclusive_start_key(start)
                    .return_consumed_capacity(super::trace::CAPACITY)
                    .send()
                    .await
                    .map_err(|e| {
                        super::trace::failed("Query", table.name(), None, started, &e);
                        Error::dynamo("Query", table.name(), e)
                    })?;
                super::trace::sent("Query", table.name(), None, started, super::trace::units(out.consumed_capacity()), out.items().len());
                (out.items.unwrap_or_default(), out.last_evaluated_key)
            }
            Op::Scan => {
                let out = table
                    .client()
                    .scan()
                    .table_name(table.name())
                    .set_index_name(self.index.clone())
                    .set_filter_expression(self.filter.clone())
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .set_consistent_read(self.consistent.then_some(true))
                    .set_segment(self.segment.map(|s| s.0))
                    .set_total_segments(self.segment.map(|s| s.1))
                    .set_limit(limit)
                    .set_exclusive_start_key(start)
                    .return_consumed_capacity(super::trace::CAPACITY)
                    .send()
                    .await
                    .map_err(|e| {
                        super::trace::failed("Scan", table.name(), None, started, &e);
                        Error::dynamo("Scan", table.name(), e)
                    })?;
                super::trace::sent("Scan", table.name(), None, started, super::trace::units(out.consumed_capacity()), out.items().len());
                (out.items.unwrap_or_default(), out.last_evaluated_key)
            }
        };
        let mut items = items;
        if let Some((attr, value)) = &self.exclude {
            items.retain(|item| item.get(attr) != Some(value));
        }
        Ok((items, last.filter(|k| !k.is_empty())))
    }

    fn start(&self, cursor: Option<&str>) -> Result<Start, Error> {
        match cursor {
            None => Ok(Start { key: None, remaining: self.limit }),
            Some(c) => self.decode_cursor(c),
        }
    }

    /// Every item, a request at a time (each asking for at most
    /// `page_size` items and what `limit` still allows).
    pub(crate) fn raw_stream(self) -> futures::stream::BoxStream<'t, Result<Raw, Error>> {
        struct State<'t> {
            request: Request<'t>,
            start: Option<Raw>,
            remaining: Option<usize>,
            done: bool,
        }
        let remaining = self.limit;
        let state = State { request: self, start: None, remaining, done: false };
        stream::try_unfold(state, |mut s| async move {
            if s.done || s.remaining == Some(0) {
                return Ok(None);
            }
            let ask = match (s.request.page_size, s.remaining) {
                (Some(p), Some(r)) => Some(p.max(1).min(r)),
                (p, r) => p.map(|p| p.max(1)).or(r),
            };
            let (items, last) = s.request.fetch(s.start.take(), ask).await?;
            if let Some(r) = &mut s.remaining {
                *r -= items.len().min(*r);
            }
            s.done = last.is_none();
            s.start = last;
            Ok(Some((stream::iter(items.into_iter().map(Ok)), s)))
        })
        .try_flatten()
        .boxed()
    }

    /// One page: up to `page_size` items (one request's worth without it),
    /// and the cursor after them.
    pub(crate) async fn raw_page(&self, cursor: Option<&str>) -> Result<(Vec<Raw>, Option<String>), Error> {
        let Start { key, mut remaining } = self.start(cursor)?;
        let mut start = key;
        let want = match (self.page_size, remaining) {
            (Some(p), Some(r)) => Some(p.max(1).min(r)),
            (p, r) => p.map(|p| p.max(1)).or(r),
        };
        let mut items = Vec::new();
        if want == Some(0) {
            return Ok((items, None));
        }
        loop {
            let ask = want.map(|w| w - items.len());
            let (got, last) = self.fetch(start.take(), ask).await?;
            items.extend(got);
            start = last;
            if start.is_none() || self.page_size.is_none() || want.is_some_and(|w| items.len() >= w) {
                break;
            }
        }
        if let Some(r) = &mut remaining {
            *r -= items.len().min(*r);
        }
        let cursor = match start {
            Some(key) if remaining != Some(0) => Some(self.encode_cursor(&key, remaining)),
            _ => None,
        };
        Ok((items, cursor))
    }

    /// A stable hash of everything that selects the items.
    fn fingerprint(&self) -> u64 {
        let mut h = Fnv64::new();
        h.write_str(match self.op {
            Op::Query => "query",
            Op::Scan => "scan",
        });
        h.write_str(self.table.name());
        h.write_str(self.index.as_deref().unwrap_or("-"));
        h.write_str(self.key_condition.as_deref().unwrap_or("-"));
        h.write_str(self.filter.as_deref().unwrap_or("-"));
        let mut names: Vec<_> = self.names.iter().collect();
        names.sort();
        for (k, v) in names {
            h.write_str(k);
            h.write_str(v);
        }
        let mut values: Vec<_> = self.values.iter().collect();
        values.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in values {
            h.write_str(k);
            hash_value(&mut h, v);
        }
        h.write_str(if self.forward { "fwd" } else { "rev" });
        if let Some((s, t)) = self.segment {
            h.write_str(&format!("{s}/{t}"));
        }
        h.finish()
    }

    fn encode_cursor(&self, key: &Raw, remaining: Option<usize>) -> String {
        let mut k = Map::new();
        let mut attrs: Vec<_> = key.iter().collect();
        attrs.sort_by(|a, b| a.0.cmp(b.0));
        for (name, value) in attrs {
            // Key attributes are S, N or B: always typed JSON.
            k.insert(name.clone(), value_json(value).unwrap_or(Value::Null));
        }
        let mut payload = json!({ "v": 1, "q": format!("{:016x}", self.fingerprint()), "k": k });
        if let Some(r) = remaining {
            payload["r"] = json!(r);
        }
        let mut bytes = serde_json::to_vec(&payload).expect("cursors serialize");
        let sum = checksum(&bytes);
        bytes.extend_from_slice(&sum.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn decode_cursor(&self, cursor: &str) -> Result<Start, Error> {
        let bad = |reason: String| Error::Cursor { table: self.table.name().to_string(), reason };
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor.trim())
            .map_err(|e| bad(format!("not a cursor of this API (base64url: {e})")))?;
        if bytes.len() < 9 {
            return Err(bad("not a cursor of this API (too short)".into()));
        }
        let (payload, sum) = bytes.split_at(bytes.len() - 8);
        if checksum(payload).to_be_bytes() != sum {
            return Err(bad("the cursor was altered or truncated (checksum mismatch)".into()));
        }
        let payload: Value =
            serde_json::from_slice(payload).map_err(|e| bad(format!("not a cursor of this API (JSON: {e})")))?;
        if payload["v"] != json!(1) {
            return Err(bad(format!("unsupported cursor version {}", payload["v"])));
        }
        if payload["q"] != json!(format!("{:016x}", self.fingerprint())) {
            return Err(bad(
                "the cursor was issued for another query (table, index, entity, key condition or order differ)".into(),
            ));
        }
        let Some(Value::Object(k)) = payload.get("k") else {
            return Err(bad("the cursor holds no key".into()));
        };
        let mut key = Raw::new();
        for (name, value) in k {
            key.insert(name.clone(), json_value(value).ok_or_else(|| bad(format!("key attribute `{name}` is not a typed value")))?);
        }
        let mut expected: Vec<&str> = self.key_attrs.iter().map(String::as_str).collect();
        expected.sort_unstable();
        expected.dedup();
        let mut found: Vec<&str> = key.keys().map(String::as_str).collect();
        found.sort_unstable();
        if found != expected {
            return Err(bad(format!("the cursor holds key attributes {found:?}, this query's keys are {expected:?}")));
        }
        if let Some((attr, value)) = &self.partition {
            if key.get(attr) != Some(value) {
                return Err(bad("the cursor points outside this query's partition".into()));
            }
        }
        let remaining = match payload.get("r") {
            None | Some(Value::Null) => None,
            Some(r) => Some(r.as_u64().ok_or_else(|| bad("the cursor's remaining count is not a number".into()))? as usize),
        };
        if remaining.is_some_and(|r| self.limit.is_some_and(|l| r > l)) {
            return Err(bad("the cursor allows more items than this query's limit".into()));
        }
        Ok(Start { key: Some(key), remaining: remaining.or(self.limit) })
    }
}

/// A key value as typed JSON (`{"S": "x"}`), through serde_dynamo.
fn value_json(v: &AttributeValue) -> Option<Value> {
    if !is_known(v) {
        return None;
    }
    serde_json::to_value(serde_dynamo::AttributeValue::from(v.clone())).ok()
}

/// Reads a typed-JSON key value back; key attributes are S, N or B.
fn json_value(v: &Value) -> Option<AttributeValue> {
    let read: serde_dynamo::AttributeValue = serde_json::from_value(v.clone()).ok()?;
    let value = AttributeValue::from(read);
    matches!(value, AttributeValue::S(_) | AttributeValue::N(_) | AttributeValue::B(_)).then_some(value)
}

/// Whether serde_dynamo can convert the value (it panics on a type newer
/// than itself).
fn is_known(v: &AttributeValue) -> bool {
    match v {
        AttributeValue::S(_)
        | AttributeValue::N(_)
        | AttributeValue::B(_)
        | AttributeValue::Bool(_)
        | AttributeValue::Null(_)
        | AttributeValue::Ss(_)
        | AttributeValue::Ns(_)
        | AttributeValue::Bs(_) => true,
        AttributeValue::L(l) => l.iter().all(is_known),
        AttributeValue::M(m) => m.values().all(is_known),
        _ => false,
    }
}

fn checksum(payload: &[u8]) -> u64 {
    let mut h = Fnv64::new();
    h.write(b"singletable-cursor");
    h.write(payload);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_json_round_trips_key_values() {
        use aws_sdk_dynamodb::primitives::Blob;
        for v in [AttributeValue::S("USER#ann".into()), AttributeValue::N("-12.5".into()), AttributeValue::B(Blob::new(vec![0, 255, 7]))] {
            assert_eq!(json_value(&value_json(&v).unwrap()), Some(v));
        }
        // Not a key type.
        assert_eq!(json_value(&json!({"BOOL": true})), None);
        assert_eq!(json_value(&json!({"S": "a", "N": "1"})), None);
        assert_eq!(json_value(&json!({"BOOL": "true"})), None);
    }
}
