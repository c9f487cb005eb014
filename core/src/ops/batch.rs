//! Batch reads and writes over any number of items: split into
//! DynamoDB-sized calls (100 keys, 25 writes), sent with bounded
//! concurrency, with `UnprocessedKeys` / `UnprocessedItems` resubmitted
//! under bounded exponential backoff with jitter. Whatever is still not
//! done after the bound comes back as [`Error::BatchIncomplete`], which
//! lists every request concerned: nothing is dropped silently.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, KeysAndAttributes, PutRequest, WriteRequest};
use futures::stream::{self, StreamExt};

use crate::error::{BatchFailure, BatchOp, Error};
use crate::key::PrimaryKey;
use crate::table::Table;
use crate::Item;

/// Keys per BatchGetItem call (DynamoDB's limit).
pub const MAX_BATCH_GET: usize = 100;
/// Put/delete requests per BatchWriteItem call (DynamoDB's limit).
pub const MAX_BATCH_WRITE: usize = 25;

/// How unprocessed requests are resubmitted: a call of the batch is sent
/// again until DynamoDB has processed all of it, or until `max_attempts`
/// calls in a row processed nothing. Before a resubmission it sleeps a
/// random time between zero and `min(max_delay, base_delay * 2^n)`, `n`
/// being the number of calls in a row without progress ("full jitter").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls in a row without progress before giving up (at least 1).
    pub max_attempts: u32,
    /// The first backoff ceiling.
    pub base_delay: Duration,
    /// The largest backoff ceiling.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 8 attempts, 50 ms doubling up to 5 s.
    fn default() -> Self {
        RetryPolicy { max_attempts: 8, base_delay: Duration::from_millis(50), max_delay: Duration::from_secs(5) }
    }
}

impl RetryPolicy {
    /// The backoff before resubmission number `n` (1-based), jittered.
    fn delay(&self, n: u32) -> Duration {
        let ceiling = self.base_delay.saturating_mul(1u32 << n.saturating_sub(1).min(20)).min(self.max_delay);
        let nanos = ceiling.as_nanos().min(u64::MAX as u128) as u64;
        Duration::from_nanos(if nanos == 0 { 0 } else { fastrand::u64(0..=nanos) })
    }
}


/// What a finished batch took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchSummary {
    /// Requests in the batch (keys read, or puts and deletes written).
    pub requests: usize,
    /// Calls sent to DynamoDB, resubmissions included.
    pub calls: usize,
    /// Requests sent again because DynamoDB returned them unprocessed.
    pub resubmitted: usize,
}

impl BatchSummary {
    fn add(&mut self, other: BatchSummary) {
        self.requests += other.requests;
        self.calls += other.calls;
        self.resubmitted += other.resubmitted;
    }
}

/// A request's identity, kept beside the request handed to the SDK.
#[derive(Debug, Clone)]
struct Meta {
    index: usize,
    entity: &'static str,
    op: BatchOp,
    key: PrimaryKey,
}

impl Meta {
    fn failure(self) -> BatchFailure {
        BatchFailure { index: self.index, entity: self.entity.to_string(), op: self.op, key: self.key }
    }
}

/// Checks one key against the keys seen so far in the batch.
fn check_duplicate(
    seen: &mut HashMap<PrimaryKey, usize>,
    key: &PrimaryKey,
    index: usize,
    entity: &str,
    operation: &'static str,
    table: &str,
) -> Result<(), Error> {
    if let Some(&first) = seen.get(key) {
        return Err(Error::DuplicateKey {
            operation,
            table: table.to_string(),
            entity: entity.to_string(),
            key: Box::new(key.clone()),
            first,
            second: index,
        });
    }
    seen.insert(key.clone(), index);
    Ok(())
}

/// The table key of a stored item or key map, if both parts are strings.
fn key_of_map(table: &Table, map: &HashMap<String, AttributeValue>) -> Option<PrimaryKey> {
    let design = table.design();
    match (map.get(&design.pk_attr), map.get(&design.sk_attr)) {
        (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => Some(PrimaryKey { pk: pk.clone(), sk: sk.clone() }),
        _ => None,
    }
}

/// Why a chunk stopped short.
struct ChunkFailure {
    pending: Vec<Meta>,
    reason: String,
    source: Option<Error>,
}

fn incomplete(
    operation: &'static str,
    table: &str,
    total: usize,
    mut failures: Vec<ChunkFailure>,
) -> Error {
    // The first hard error, if any, is the cause; otherwise the bound.
    failures.sort_by_key(|f| f.source.is_none());
    let mut failed: Vec<BatchFailure> = Vec::new();
    let mut reason = String::new();
    let mut source = None;
    for f in failures {
        if reason.is_empty() || (source.is_none() && f.source.is_some()) {
            reason = f.reason;
        }
        if source.is_none() {
            source = f.source.map(Box::new);
        }
        failed.extend(f.pending.into_iter().map(Meta::failure));
    }
    failed.sort_by_key(|f| f.index);
    Error::BatchIncomplete { operation, table: table.to_string(), total, failed, reason, source }
}

// ---------------------------------------------------------------------------
// Batch write

/// A batch of puts and deletes of items of any entities of the table; see
/// [`Table::batch_write`].
///
/// Every item is encoded and checked (keys, size, duplicates) as it is
/// added; [`BatchWrite::send`] reports the first problem before any
/// request is sent.
#[must_use = "a batch does nothing until `.send().await`"]
pub struct BatchWrite<'t> {
    table: &'t Table,
    metas: Vec<Meta>,
    requests: Vec<WriteRequest>,
    seen: HashMap<PrimaryKey, usize>,
    error: Option<Error>,
    concurrency: usize,
    retry: RetryPolicy,
}

impl fmt::Debug for BatchWrite<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchWrite")
            .field("table", &self.table.name())
            .field("requests", &self.requests.len())
            .field("error", &self.error)
            .field("concurrency", &self.concurrency)
            .field("retry", &self.retry)
            .finish()
    }
}

/// Default number of calls in flight for batches.
pub const DEFAULT_CONCURRENCY: usize = 4;

impl<'t> BatchWrite<'t> {
    fn push(&mut self, entity: &'static str, op: BatchOp, key: PrimaryKey, request: WriteRequest) {
        let index = self.metas.len();
        if self.error.is_none() {
            if let Err(e) = check_duplicate(&mut self.seen, &key, index, entity, "BatchWriteItem", self.table.name()) {
                self.error = Some(e);
            }
        }
        self.metas.push(Meta { index, entity, op, key });
        self.requests.push(request);
    }

    fn invalid(&mut self, source: Error) {
        let index = self.metas.len();
        if self.error.is_none() {
            self.error = Some(Error::BatchRequest {
                operation: "BatchWriteItem",
                table: self.table.name().to_string(),
                index,
                source: Box::new(source),
            });
        }
        // Keep positions stable for later requests' indices.
        self.metas.push(Meta { index, entity: "", op: BatchOp::Put, key: PrimaryKey { pk: String::new(), sk: String::new() } });
        self.requests.push(WriteRequest::builder().build());
    }

    /// Adds a put of `item` (replacing any item with its key).
    pub fn put<T: Item>(mut self, item: &T) -> Self {
        self.add_put(item);
        self
    }

    fn add_put<T: Item>(&mut self, item: &T) {
        match self.table.encode(item).and_then(|(design, mut encoded)| {
            if design.managed.version.is_some() {
                return Err(Error::invalid_argument(
                    "batch_write",
                    format!(
                        "entity `{}` is versioned (#[item(version)]) and BatchWriteItem cannot check a version: write it with put, save or a transaction",
                        design.entity
                    ),
                ));
            }
            // created_at / updated_at, as a single put sets them.
            crate::ops::write::stamp_put::<T>(design, &mut encoded)?;
            Ok((design, encoded))
        }) {
            Ok((design, encoded)) => match key_of_map(self.table, &encoded) {
                Some(key) => {
                    let put = PutRequest::builder().set_item(Some(encoded)).build().expect("item is set");
                    self.push(design.entity.as_ref(), BatchOp::Put, key, WriteRequest::builder().put_request(put).build());
                }
                None => self.invalid(Error::Design(format!("entity `{}` wrote no string table key", design.entity))),
            },
            Err(e) => self.invalid(e),
        }
    }

    /// Adds a put of every item.
    pub fn put_all<'a, T: Item + 'a>(mut self, items: impl IntoIterator<Item = &'a T>) -> Self {
        let items = items.into_iter();
        self.reserve(items.size_hint().0);
        for item in items {
            self.add_put(item);
        }
        self
    }

    /// Adds a delete of the item of entity `T` with this key (deleting an
    /// absent item is not an error).
    pub fn delete<T: Item>(mut self, key: &T::Key) -> Self {
        self.add_delete::<T>(key);
        self
    }

    fn add_delete<T: Item>(&mut self, key: &T::Key) {
        let result = self.table.entity::<T>().and_then(|design| Ok((design, T::key_of(key)?)));
        match result {
            Ok((design, key)) => {
                let delete = DeleteRequest::builder().set_key(Some(self.table.key_map(key.clone()))).build().expect("key is set");
                self.push(design.entity.as_ref(), BatchOp::Delete, key, WriteRequest::builder().delete_request(delete).build());
            }
            Err(e) => self.invalid(e),
        }
    }

    /// Adds a delete of every key.
    pub fn delete_all<'a, T: Item>(mut self, keys: impl IntoIterator<Item = &'a T::Key>) -> Self
    where
        T::Key: 'a,
    {
        for key in keys {
            self.add_delete::<T>(key);
        }
        self
    }

    fn reserve(&mut self, n: usize) {
        self.metas.reserve(n);
        self.requests.reserve(n);
        self.seen.reserve(n);
    }

    /// Calls in flight at once (default [`DEFAULT_CONCURRENCY`]; at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// How unprocessed items are resubmitted.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Requests added so far.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// Whether no request was added.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Sends the batch. On success every request was done. Otherwise
    /// nothing was sent (an invalid request, [`Error::DuplicateKey`]), or
    /// [`Error::BatchIncomplete`] lists every request not done.
    pub async fn send(self) -> Result<BatchSummary, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let BatchWrite { table, metas, requests, concurrency, retry, .. } = self;
        let total = requests.len();
        let mut chunks = Vec::with_capacity(total.div_ceil(MAX_BATCH_WRITE));
        let mut metas = metas.into_iter();
        let mut requests = requests.into_iter();
        loop {
            let m: Vec<Meta> = metas.by_ref().take(MAX_BATCH_WRITE).collect();
            if m.is_empty() {
                break;
            }
            let r: Vec<WriteRequest> = requests.by_ref().take(m.len()).collect();
            chunks.push((m, r));
        }
        let abort = AtomicBool::new(false);
        let abort = &abort;
        let results: Vec<Result<BatchSummary, ChunkFailure>> = stream::iter(chunks)
            .map(|(m, r)| write_chunk(table, m, r, retry, abort))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut summary = BatchSummary::default();
        let mut failures = Vec::new();
        for r in results {
            match r {
                Ok(s) => summary.add(s),
                Err(f) => failures.push(f),
            }
        }
        if failures.is_empty() {
            Ok(summary)
        } else {
            Err(incomplete("BatchWriteItem", table.name(), total, failures))
        }
    }
}

/// What both batch loops do with what DynamoDB left unprocessed: match it
/// back to the requests sent (keeping the order it came in), count calls
/// in a row without progress against the retry bound, and back off.
async fn requeue(
    metas: &mut Vec<Meta>,
    returned: Vec<Option<PrimaryKey>>,
    what: &str,
    sent: usize,
    streak: &mut u32,
    retry: &RetryPolicy,
    summary: &mut BatchSummary,
) -> Result<(), ChunkFailure> {
    let mut by_key: HashMap<PrimaryKey, Meta> = metas.drain(..).map(|m| (m.key.clone(), m)).collect();
    for key in returned.iter().flatten() {
        if let Some(meta) = by_key.remove(key) {
            metas.push(meta);
        }
    }
    if metas.len() != returned.len() {
        // DynamoDB returned something we did not send: never guess.
        // Those not returned were processed; the matched ones were not.
        let unknown = returned.len() - metas.len();
        return Err(ChunkFailure {
            pending: std::mem::take(metas),
            reason: format!("DynamoDB returned {unknown} unprocessed {what} that match none sent"),
            source: None,
        });
    }
    summary.resubmitted += returned.len();
    *streak = if returned.len() < sent { 0 } else { *streak + 1 };
    if *streak >= retry.max_attempts.max(1) {
        return Err(ChunkFailure {
            pending: std::mem::take(metas),
            reason: format!("still unprocessed after {streak} calls in a row without progress"),
            source: None,
        });
    }
    tokio::time::sleep(retry.delay(*streak + 1)).await;
    Ok(())
}

/// Sends one chunk of at most 25 requests until all are processed.
async fn write_chunk(
    table: &Table,
    mut metas: Vec<Meta>,
    mut requests: Vec<WriteRequest>,
    retry: RetryPolicy,
    abort: &AtomicBool,
) -> Result<BatchSummary, ChunkFailure> {
    let mut summary = BatchSummary { requests: metas.len(), ..Default::default() };
    let mut streak = 0u32;
    loop {
        if abort.load(Ordering::Relaxed) {
            return Err(ChunkFailure { pending: metas, reason: "not sent: another call of the batch failed".into(), source: None });
        }
        summary.calls += 1;
        let sent = requests.len();
        let started = std::time::Instant::now();
        let result = table
            .client()
            .batch_write_item()
            .request_items(table.name(), requests)
            .return_consumed_capacity(super::trace::CAPACITY)
            .send()
            .await;
        let out = match result {
            Ok(out) => {
                super::trace::sent("BatchWriteItem", table.name(), None, started, super::trace::units(out.consumed_capacity()), sent);
                out
            }
            Err(e) => {
                super::trace::failed("BatchWriteItem", table.name(), None, started, &e);
                abort.store(true, Ordering::Relaxed);
                let source = Error::dynamo("BatchWriteItem", table.name(), e);
                return Err(ChunkFailure { pending: metas, reason: "a call failed".into(), source: Some(source) });
            }
        };
        let unprocessed = out.unprocessed_items.and_then(|mut m| m.remove(table.name())).unwrap_or_default();
        if unprocessed.is_empty() {
            return Ok(summary);
        }
        super::trace::unprocessed("BatchWriteItem", table.name(), unprocessed.len(), summary.calls);
        let returned = unprocessed.iter().map(|request| {
            let map = match (&request.put_request, &request.delete_request) {
                (Some(p), _) => Some(&p.item),
                (None, Some(d)) => Some(&d.key),
                _ => None,
            };
            map.and_then(|m| key_of_map(table, m))
        });
        requeue(&mut metas, returned.collect(), "requests", sent, &mut streak, &retry, &mut summary).await?;
        requests = unprocessed;
    }
}

// ---------------------------------------------------------------------------
// Batch get

/// A batch read of items of entity `T` by key; see [`Table::batch_get`].
#[must_use = "a batch does nothing until `.send().await`"]
pub struct BatchGet<'t, T> {
    table: &'t Table,
    keys: Vec<PrimaryKey>,
    error: Option<Error>,
    consistent: bool,
    concurrency: usize,
    retry: RetryPolicy,
    _entity: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for BatchGet<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchGet")
            .field("table", &self.table.name())
            .field("keys", &self.keys.len())
            .field("error", &self.error)
            .field("consistent", &self.consistent)
            .finish()
    }
}

impl<'t, T: Item> BatchGet<'t, T> {
    /// Strongly consistent reads (default: eventually consistent).
    pub fn consistent(mut self, yes: bool) -> Self {
        self.consistent = yes;
        self
    }

    /// Calls in flight at once (default [`DEFAULT_CONCURRENCY`]; at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// How unprocessed keys are resubmitted.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Reads every key: one entry per key, in the order given, `None`
    /// where no item has that key.
    pub async fn send(self) -> Result<Vec<Option<T>>, Error> {
        self.send_with_summary().await.map(|(items, _)| items)
    }

    /// Like [`BatchGet::send`], with what it took.
    pub async fn send_with_summary(self) -> Result<(Vec<Option<T>>, BatchSummary), Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let BatchGet { table, keys, consistent, concurrency, retry, .. } = self;
        let entity: &'static str = T::DESIGN.entity.as_ref();
        let total = keys.len();
        let positions: HashMap<PrimaryKey, usize> = keys.iter().cloned().enumerate().map(|(i, k)| (k, i)).collect();
        let metas: Vec<Meta> =
            keys.into_iter().enumerate().map(|(index, key)| Meta { index, entity, op: BatchOp::Get, key }).collect();
        let chunks: Vec<Vec<Meta>> = metas.chunks(MAX_BATCH_GET).map(<[Meta]>::to_vec).collect();
        let abort = AtomicBool::new(false);
        let abort = &abort;
        type Got = Result<(Vec<HashMap<String, AttributeValue>>, BatchSummary), ChunkFailure>;
        let results: Vec<Got> = stream::iter(chunks)
            .map(|chunk| get_chunk(table, chunk, consistent, retry, abort))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut out: Vec<Option<T>> = std::iter::repeat_with(|| None).take(total).collect();
        let mut summary = BatchSummary::default();
        let mut failures = Vec::new();
        for r in results {
            match r {
                Ok((items, s)) => {
                    summary.add(s);
                    for item in items {
                        let Some(&at) = key_of_map(table, &item).as_ref().and_then(|k| positions.get(k)) else { continue };
                        out[at] = Some(T::from_item(item)?);
                    }
                }
                Err(f) => failures.push(f),
            }
        }
        if failures.is_empty() {
            Ok((out, summary))
        } else {
            Err(incomplete("BatchGetItem", table.name(), total, failures))
        }
    }
}

async fn get_chunk(
    table: &Table,
    mut metas: Vec<Meta>,
    consistent: bool,
    retry: RetryPolicy,
    abort: &AtomicBool,
) -> Result<(Vec<HashMap<String, AttributeValue>>, BatchSummary), ChunkFailure> {
    let mut summary = BatchSummary { requests: metas.len(), ..Default::default() };
    let mut found = Vec::with_capacity(metas.len());
    let mut keys: Vec<HashMap<String, AttributeValue>> = metas.iter().map(|m| table.key_map(m.key.clone())).collect();
    let mut streak = 0u32;
    loop {
        if abort.load(Ordering::Relaxed) {
            return Err(ChunkFailure { pending: metas, reason: "not sent: another call of the batch failed".into(), source: None });
        }
        summary.calls += 1;
        let sent = keys.len();
        let request = KeysAndAttributes::builder().set_keys(Some(keys)).consistent_read(consistent).build().expect("keys are set");
        let started = std::time::Instant::now();
        let result = table
            .client()
            .batch_get_item()
            .request_items(table.name(), request)
            .return_consumed_capacity(super::trace::CAPACITY)
            .send()
            .await;
        let out = match result {
            Ok(out) => {
                super::trace::sent("BatchGetItem", table.name(), None, started, super::trace::units(out.consumed_capacity()), sent);
                out
            }
            Err(e) => {
                super::trace::failed("BatchGetItem", table.name(), None, started, &e);
                abort.store(true, Ordering::Relaxed);
                let source = Error::dynamo("BatchGetItem", table.name(), e);
                return Err(ChunkFailure { pending: metas, reason: "a call failed".into(), source: Some(source) });
            }
        };
        if let Some(items) = out.responses.and_then(|mut r| r.remove(table.name())) {
            found.extend(items);
        }
        let unprocessed = out
            .unprocessed_keys
            .and_then(|mut m| m.remove(table.name()))
            .map(|k| k.keys)
            .unwrap_or_default();
        if unprocessed.is_empty() {
            return Ok((found, summary));
        }
        super::trace::unprocessed("BatchGetItem", table.name(), unprocessed.len(), summary.calls);
        let returned = unprocessed.iter().map(|key| key_of_map(table, key)).collect();
        requeue(&mut metas, returned, "keys", sent, &mut streak, &retry, &mut summary).await?;
        keys = unprocessed;
    }
}

impl Table {
    /// Starts a batch of puts and deletes, of items of one or several
    /// entities; send it with [`BatchWrite::send`].
    ///
    /// ```no_run
    /// # use singletable::{Item, Table};
    /// # #[derive(Item)] #[item(pk = "U#{id}", sk = "U")] struct User { id: String }
    /// # #[derive(Item)] #[item(pk = "U#{id}", sk = "N#{n}")] struct Note { id: String, n: u32 }
    /// # async fn demo(table: Table, users: Vec<User>, note: Note) -> Result<(), singletable::Error> {
    /// table.batch_write().put_all(&users).put(&note).delete::<Note>(&("ann".to_string(), 7)).send().await?;
    /// # Ok(()) }
    /// ```
    pub fn batch_write(&self) -> BatchWrite<'_> {
        BatchWrite {
            table: self,
            metas: Vec::new(),
            requests: Vec::new(),
            seen: HashMap::new(),
            error: None,
            concurrency: DEFAULT_CONCURRENCY,
            retry: RetryPolicy::default(),
        }
    }

    /// Starts a batch read of items of entity `T` by typed key; send it
    /// with [`BatchGet::send`]. A key given twice is refused
    /// ([`Error::DuplicateKey`]) before anything is sent.
    pub fn batch_get<'k, T: Item>(&self, keys: impl IntoIterator<Item = &'k T::Key>) -> BatchGet<'_, T>
    where
        T::Key: 'k,
    {
        let mut error = self.entity::<T>().err();
        let mut rendered = Vec::new();
        let mut seen = HashMap::new();
        for (index, key) in keys.into_iter().enumerate() {
            if error.is_some() {
                break;
            }
            match T::key_of(key) {
                Ok(key) => {
                    if let Err(e) = check_duplicate(&mut seen, &key, index, &T::DESIGN.entity, "BatchGetItem", self.name()) {
                        error = Some(e);
                    }
                    rendered.push(key);
                }
                Err(e) => {
                    error = Some(Error::BatchRequest {
                        operation: "BatchGetItem",
                        table: self.name().to_string(),
                        index,
                        source: Box::new(e),
                    })
                }
            }
        }
        BatchGet {
            table: self,
            keys: rendered,
            error,
            consistent: false,
            concurrency: DEFAULT_CONCURRENCY,
            retry: RetryPolicy::default(),
            _entity: PhantomData,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_under_its_ceiling() {
        let p = RetryPolicy { max_attempts: 5, base_delay: Duration::from_millis(10), max_delay: Duration::from_millis(50) };
        for n in 1..40 {
            let ceiling = Duration::from_millis(10 * (1u64 << (n - 1).min(20))).min(Duration::from_millis(50));
            assert!(p.delay(n) <= ceiling, "{n}");
        }
    }
}
