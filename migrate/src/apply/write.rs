//! Writes under a write-capacity budget, resubmitting what DynamoDB leaves
//! unprocessed and riding out throttling.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, ConditionCheck, DeleteRequest, Put, PutRequest, TransactWriteItem, WriteRequest};
use aws_sdk_dynamodb::Client;
use tokio::sync::{Mutex, Semaphore, SemaphorePermit};

use crate::error::MigrateError;
use crate::raw::RawItem;
use crate::retry::{backoff, is_transient, retrying, MAX_ATTEMPTS};

/// A token bucket of write capacity units per second, shared by every
/// segment of an apply. `None` rate: unlimited.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    /// The whole budget (`--max-wcu`) and the share of it this worker
    /// spends (the budget over the live workers), as f64 bits.
    configured: Option<f64>,
    rate_bits: std::sync::atomic::AtomicU64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(rate: Option<f64>) -> Arc<Self> {
        let rate = rate.filter(|r| *r > 0.0);
        Arc::new(RateLimiter {
            configured: rate,
            rate_bits: std::sync::atomic::AtomicU64::new(rate.unwrap_or(0.0).to_bits()),
            // Empty at the start: workers joining one by one each start
            // with their share, not with a second of the whole budget.
            state: Mutex::new((0.0, Instant::now())),
        })
    }

    /// Spends `1 / workers` of the configured budget from now on.
    pub fn share_among(&self, workers: usize) {
        if let Some(rate) = self.configured {
            self.rate_bits.store((rate / workers.max(1) as f64).to_bits(), std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Waits until `units` write units may be spent.
    pub async fn acquire(&self, units: f64) {
        if self.configured.is_none() {
            return;
        }
        let rate = f64::from_bits(self.rate_bits.load(std::sync::atomic::Ordering::Relaxed));
        // A request larger than one second of budget still has to go out:
        // it drives the bucket negative and later callers wait it off.
        let burst = rate.max(1.0);
        loop {
            let wait = {
                let mut state = self.state.lock().await;
                let now = Instant::now();
                let refill = now.duration_since(state.1).as_secs_f64() * rate;
                state.0 = (state.0 + refill).min(burst);
                state.1 = now;
                if state.0 >= units.min(burst) {
                    state.0 -= units;
                    return;
                }
                (units.min(burst) - state.0) / rate
            };
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }
}

/// What every request of an apply draws on: a slot among the requests
/// allowed in flight at once, and (for writes) capacity from the rate
/// budget. One `Budget` serves every segment, so the writes of a page of a
/// large segment spread over all slots instead of waiting behind one
/// another while small segments' slots sit idle (a table of a few big
/// partitions scans very unevenly: segments split by partition key).
#[derive(Debug)]
pub(crate) struct Budget {
    limiter: Arc<RateLimiter>,
    slots: Semaphore,
}

impl Budget {
    pub fn new(max_wcu: Option<f64>, in_flight: u32) -> Self {
        Budget { limiter: RateLimiter::new(max_wcu), slots: Semaphore::new(in_flight.max(1) as usize) }
    }

    /// Waits for a free request slot; the request is in flight while the
    /// permit lives.
    pub async fn slot(&self) -> SemaphorePermit<'_> {
        self.slots.acquire().await.expect("the slots are never closed")
    }

    /// Waits until `units` write units may be spent.
    pub async fn units(&self, units: f64) {
        self.limiter.acquire(units).await
    }

    /// Spends `1 / workers` of the write budget: each of that many live
    /// workers takes its share.
    pub fn share_among(&self, workers: usize) {
        self.limiter.share_among(workers)
    }
}

/// DynamoDB's write units for an item: 1 per started KB.
pub(crate) fn write_units(item: &RawItem) -> f64 {
    singletable::item_size(item).div_ceil(1024).max(1) as f64
}

/// Sends puts or deletes in batches of 25, as many at once as `budget`
/// has slots, resubmitting unprocessed requests with backoff until all are
/// written or the bound is reached. Returns when every batch is written
/// (so a caller's deletes can follow its puts).
pub(crate) async fn batch_write(
    client: &Client,
    table: &str,
    requests: Vec<WriteRequest>,
    units: f64,
    budget: &Budget,
) -> Result<(), MigrateError> {
    let per_request = units / requests.len().max(1) as f64;
    let chunks = requests.chunks(25).map(|chunk| write_chunk(client, table, chunk, per_request * chunk.len() as f64, budget));
    futures::future::try_join_all(chunks).await?;
    Ok(())
}

async fn write_chunk(client: &Client, table: &str, chunk: &[WriteRequest], units: f64, budget: &Budget) -> Result<(), MigrateError> {
    budget.units(units).await;
    // What is left to send; `None`: the whole chunk. Copied only once a
    // slot is free, so a page's waiting chunks hold no second copy of it.
    let mut pending: Option<Vec<WriteRequest>> = None;
    let mut attempt = 0;
    loop {
        let result = {
            let _slot = budget.slot().await;
            let requests = pending.take().unwrap_or_else(|| chunk.to_vec());
            client.batch_write_item().request_items(table, requests).send().await
        };
        match result {
            Ok(out) => {
                let left = out.unprocessed_items.and_then(|mut m| m.remove(table)).unwrap_or_default();
                if left.is_empty() {
                    return Ok(());
                }
                tracing::debug!(table, unprocessed = left.len(), attempt, "BatchWriteItem left requests unprocessed; resubmitting");
                pending = Some(left);
            }
            Err(e) if e.as_service_error().is_some_and(is_transient) && attempt < MAX_ATTEMPTS => {
                tracing::warn!(table, error = %error_text(&e), attempt, "BatchWriteItem failed transiently; retrying");
            }
            Err(e) => return Err(MigrateError::dynamo("BatchWriteItem", table, e)),
        }
        attempt += 1;
        if attempt > MAX_ATTEMPTS {
            let left = pending.as_ref().map_or(chunk.len(), Vec::len);
            return Err(MigrateError::Other(format!(
                "BatchWriteItem on table `{table}`: {left} requests still unprocessed after {MAX_ATTEMPTS} attempts"
            )));
        }
        // Backing off frees the slot for others.
        backoff(attempt).await;
    }
}

pub(crate) fn put_request(item: RawItem) -> WriteRequest {
    WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build().expect("item set")).build()
}

pub(crate) fn delete_request(key: RawItem) -> WriteRequest {
    WriteRequest::builder().delete_request(DeleteRequest::builder().set_key(Some(key)).build().expect("key set")).build()
}

/// Copies items to their new form while the application may still write
/// the old one (online apply): each copy is a `Put` of the new item on the
/// condition that no item has the new key yet, in one transaction with a
/// `ConditionCheck` that the old item still exists. So a copy never
/// overwrites what the stream replay (or anyone) already wrote at the new
/// key, and never brings back an item deleted since it was read: at the
/// instant the copy commits, the old item is there and the new one is not.
/// Up to 25 copies share a transaction ([`transaction_chunks`],
/// [`transact_parts`]). Returns
/// how many copies were written.
pub(crate) async fn copy_moves(
    client: &Client,
    table: &str,
    pk_attr: &str,
    moves: Vec<(RawItem, RawItem)>,
    budget: &Budget,
    fence: Option<&ConditionCheck>,
) -> Result<u64, MigrateError> {
    let actions = |(new_item, old_key): &(RawItem, RawItem)| -> Result<Vec<TransactWriteItem>, MigrateError> {
        let check = ConditionCheck::builder()
            .table_name(table)
            .set_key(Some(old_key.clone()))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", pk_attr)
            .build()
            .map_err(|e| MigrateError::Other(format!("table `{table}`: {e}")))?;
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(new_item.clone()))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", pk_attr)
            .build()
            .map_err(|e| MigrateError::Other(format!("table `{table}`: {e}")))?;
        Ok(vec![TransactWriteItem::builder().condition_check(check).build(), TransactWriteItem::builder().put(put).build()])
    };
    // A transactional write costs two units per item written or checked.
    let units = |(new_item, _): &(RawItem, RawItem)| 2.0 * write_units(new_item) + 2.0;
    let size = |(new_item, old_key): &(RawItem, RawItem)| singletable::item_size(new_item) + singletable::item_size(old_key);
    let count = |settled: Vec<((RawItem, RawItem), Settled)>| settled.iter().filter(|(_, s)| matches!(s, Settled::Written)).count() as u64;
    if fence.is_some() {
        // Every chunk checks the same lease item, and transactions that
        // share an item conflict on the service: one at a time per segment
        // (the segments still run side by side).
        let mut written = 0;
        for chunk in transaction_chunks(&moves, size) {
            written += count(transact_parts(client, table, "copy", chunk, &actions, &units, budget, fence).await?);
        }
        return Ok(written);
    }
    let chunks = transaction_chunks(&moves, size).into_iter().map(|chunk| transact_parts(client, table, "copy", chunk, &actions, &units, budget, fence));
    let settled = futures::future::try_join_all(chunks).await?;
    Ok(settled.into_iter().map(count).sum())
}

/// Parts (copies, deletes) that share one transaction at most: DynamoDB's
/// limit is 100 actions, and a copy takes two.
pub(crate) const TRANSACTION_PARTS: usize = 25;

/// DynamoDB's limit on the actions of one transaction.
pub(crate) const TRANSACTION_ACTIONS: usize = 100;

/// What one transaction carries at most, below DynamoDB's 4 MB request
/// limit with room for names and the request's own text.
const TRANSACTION_BYTES: usize = 3 << 20;

/// Splits `parts` into transactions of at most [`TRANSACTION_PARTS`] parts
/// and [`TRANSACTION_BYTES`] of items (`size` of a part: the bytes it
/// sends); a part bigger than that goes alone (an item is at most 400 KB,
/// so a copy or a delete compared attribute by attribute never is).
pub(crate) fn transaction_chunks<P: Clone>(parts: &[P], size: impl Fn(&P) -> usize) -> Vec<Vec<P>> {
    transaction_chunks_of(parts, TRANSACTION_PARTS, size)
}

/// [`transaction_chunks`] with at most `max_parts` parts a transaction.
pub(crate) fn transaction_chunks_of<P: Clone>(parts: &[P], max_parts: usize, size: impl Fn(&P) -> usize) -> Vec<Vec<P>> {
    let mut chunks: Vec<Vec<P>> = Vec::new();
    let mut bytes = 0;
    for part in parts {
        let n = size(part);
        match chunks.last_mut() {
            Some(chunk) if chunk.len() < max_parts && bytes + n <= TRANSACTION_BYTES => {
                bytes += n;
                chunk.push(part.clone());
            }
            _ => {
                bytes = n;
                chunks.push(vec![part.clone()]);
            }
        }
    }
    chunks
}

/// How one part of [`transact_parts`] ended.
#[derive(Debug)]
pub(crate) enum Settled {
    Written,
    /// A condition of the part failed: the cancellation reasons of its
    /// actions, in order (with the item, where the action asked for it).
    Refused(Vec<CancellationReason>),
}

/// Sends `parts` (each one or more actions, on items no other part
/// touches) as one transaction; when DynamoDB cancels it, parts whose
/// condition failed settle as [`Settled::Refused`] and the others
/// (cancelled with them, or in conflict with another write) go again, with
/// a growing pause while nothing settles. A `fence` goes last in every
/// transaction, so the parts' reasons keep their places: the worker still
/// holds the segment (see `workers`); when it fails, nothing was written
/// and the segment is lost.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn transact_parts<P>(
    client: &Client,
    table: &str,
    what: &'static str,
    parts: Vec<P>,
    actions: impl Fn(&P) -> Result<Vec<TransactWriteItem>, MigrateError>,
    units: impl Fn(&P) -> f64,
    budget: &Budget,
    fence: Option<&ConditionCheck>,
) -> Result<Vec<(P, Settled)>, MigrateError> {
    let mut pending: Vec<(P, Vec<TransactWriteItem>)> = parts.into_iter().map(|p| actions(&p).map(|a| (p, a))).collect::<Result<_, _>>()?;
    let mut settled = Vec::with_capacity(pending.len());
    let mut attempt = 0;
    while !pending.is_empty() {
        budget.units(pending.iter().map(|(p, _)| units(p)).sum()).await;
        let mut sent: Vec<TransactWriteItem> = pending.iter().flat_map(|(_, a)| a.iter().cloned()).collect();
        let n_actions = sent.len();
        if let Some(fence) = fence {
            sent.push(TransactWriteItem::builder().condition_check(fence.clone()).build());
        }
        let result = {
            let _slot = budget.slot().await;
            client.transact_write_items().set_transact_items(Some(sent)).send().await
        };
        let e = match result {
            Ok(_) => {
                settled.extend(pending.into_iter().map(|(p, _)| (p, Settled::Written)));
                return Ok(settled);
            }
            Err(e) => e,
        };
        let reasons: Option<Vec<CancellationReason>> = match e.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(c)) => Some(c.cancellation_reasons().to_vec()),
            _ => None,
        };
        let failed = |r: &CancellationReason| r.code() == Some("ConditionalCheckFailed");
        if fence.is_some() && reasons.as_ref().and_then(|r| r.get(n_actions)).is_some_and(failed) {
            return Err(MigrateError::SegmentLost { table: table.to_string() });
        }
        match reasons {
            Some(mut reasons) if reasons.len() >= n_actions => {
                reasons.truncate(n_actions);
                tracing::debug!(table, what, parts = pending.len(), reasons = ?reasons.iter().map(|r| r.code()).collect::<Vec<_>>(), attempt, "transaction cancelled");
                let before = pending.len();
                let mut reasons = reasons.into_iter();
                let mut again = Vec::with_capacity(before);
                for (part, actions) in pending {
                    let mine: Vec<CancellationReason> = reasons.by_ref().take(actions.len()).collect();
                    if mine.iter().any(failed) {
                        settled.push((part, Settled::Refused(mine)));
                    } else {
                        again.push((part, actions));
                    }
                }
                pending = again;
                if pending.len() == before {
                    attempt += 1;
                    if attempt >= MAX_ATTEMPTS * 3 {
                        return Err(MigrateError::Other(format!(
                            "table `{table}`: {what} transactions kept being cancelled ({:?}); run apply again",
                            reasons_codes(&e)
                        )));
                    }
                    backoff(attempt).await;
                }
            }
            _ if e.as_service_error().is_some_and(is_transient) || e.as_service_error().is_none() => {
                attempt += 1;
                tracing::warn!(table, what, error = %error_text(&e), attempt, "transaction failed transiently; retrying");
                if attempt >= MAX_ATTEMPTS * 3 {
                    return Err(MigrateError::dynamo("TransactWriteItems", table, e));
                }
                backoff(attempt).await;
            }
            _ => return Err(MigrateError::dynamo("TransactWriteItems", table, e)),
        }
    }
    Ok(settled)
}

/// The cancellation reasons' codes of a cancelled transaction.
fn reasons_codes<R>(e: &aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError, R>) -> Vec<String> {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => c.cancellation_reasons().iter().filter_map(|r| r.code().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

/// The error's code and message, or what kind of failure it was when the
/// server did not answer (timeout, dispatch failure).
fn error_text<E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    e: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> String {
    match e.as_service_error() {
        Some(s) => format!("{}: {}", s.code().unwrap_or("?"), s.message().unwrap_or("")),
        None => format!("{e:?}").chars().take(200).collect(),
    }
}

/// Outcome of a conditional in-place update.
pub(crate) enum UpdateOutcome {
    Done,
    /// The item changed (or vanished) since it was read.
    Conflict,
}

/// The parts of a conditional in-place update: the update and condition
/// expressions with their names and values.
pub(crate) struct InPlace {
    pub update: String,
    pub condition: String,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

/// Sets and removes attributes of one item on the condition that it
/// exists and the `expect`ed attributes still hold the values read
/// (absent: `None`).
pub(crate) fn in_place(key: &RawItem, set: &[(String, AttributeValue)], remove: &[String], expect: &[(String, Option<AttributeValue>)]) -> InPlace {
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    let mut sets = Vec::new();
    for (i, (a, v)) in set.iter().enumerate() {
        names.insert(format!("#s{i}"), a.clone());
        values.insert(format!(":s{i}"), v.clone());
        sets.push(format!("#s{i} = :s{i}"));
    }
    let mut removes = Vec::new();
    for (i, a) in remove.iter().enumerate() {
        names.insert(format!("#r{i}"), a.clone());
        removes.push(format!("#r{i}"));
    }
    let mut conditions = vec!["attribute_exists(#pk)".to_string()];
    names.insert("#pk".into(), key.keys().next().cloned().unwrap_or_default());
    for (i, (a, v)) in expect.iter().enumerate() {
        names.insert(format!("#c{i}"), a.clone());
        match v {
            Some(v) => {
                values.insert(format!(":c{i}"), v.clone());
                conditions.push(format!("#c{i} = :c{i}"));
            }
            None => conditions.push(format!("attribute_not_exists(#c{i})")),
        }
    }
    let mut expression = String::new();
    if !sets.is_empty() {
        expression.push_str("SET ");
        expression.push_str(&sets.join(", "));
    }
    if !removes.is_empty() {
        expression.push_str(" REMOVE ");
        expression.push_str(&removes.join(", "));
    }
    InPlace { update: expression.trim().to_string(), condition: conditions.join(" AND "), names, values }
}

/// Sets and removes attributes of one item on the condition that the
/// `expect`ed attributes still hold the values read (absent: `None`).
pub(crate) async fn update_in_place(
    client: &Client,
    table: &str,
    key: RawItem,
    set: &[(String, AttributeValue)],
    remove: &[String],
    expect: &[(String, Option<AttributeValue>)],
    budget: &Budget,
) -> Result<UpdateOutcome, MigrateError> {
    let InPlace { update: expression, condition, names, values } = in_place(&key, set, remove, expect);
    // Each attempt spends its units again and holds a slot only while in
    // flight; backing off frees it for others.
    let result = retrying(|| async {
        budget.units(1.0).await;
        let _slot = budget.slot().await;
        client
            .update_item()
            .table_name(table)
            .set_key(Some(key.clone()))
            .update_expression(&expression)
            .condition_expression(&condition)
            .set_expression_attribute_names(Some(names.clone()))
            .set_expression_attribute_values((!values.is_empty()).then(|| values.clone()))
            .send()
            .await
    })
    .await;
    match result {
        Ok(_) => Ok(UpdateOutcome::Done),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(UpdateOutcome::Conflict),
        Err(e) => Err(MigrateError::dynamo("UpdateItem", table, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Tokio's paused clock makes this exact rather than timed.
    #[tokio::test(start_paused = true)]
    async fn the_limiter_spends_at_most_its_rate() {
        let limiter = RateLimiter::new(Some(200.0));
        let start = Instant::now();
        for _ in 0..30 {
            limiter.acquire(10.0).await;
        }
        // 300 units at 200/s, the bucket empty at the start: 1.5 s.
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(1500) && waited < Duration::from_millis(1600), "{waited:?}");
        let unlimited = RateLimiter::new(None);
        unlimited.acquire(1e9).await;
    }

    #[test]
    fn transactions_hold_at_most_25_parts_and_3_mb() {
        let sizes = [100usize; 60];
        let chunks = transaction_chunks(&sizes, |n| *n);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [25, 25, 10]);
        // 400 KB items: seven fit in 3 MB, an eighth would not.
        let big = [400usize << 10; 16];
        let chunks = transaction_chunks(&big, |n| *n);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [7, 7, 2]);
        assert!(chunks.iter().all(|c| c.iter().sum::<usize>() <= TRANSACTION_BYTES));
        // A part over the limit on its own still goes, alone.
        let chunks = transaction_chunks(&[10usize, 4 << 20, 10], |n| *n);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_limiter_shared_among_workers_spends_its_share() {
        let limiter = RateLimiter::new(Some(200.0));
        limiter.share_among(4);
        let start = Instant::now();
        for _ in 0..10 {
            limiter.acquire(10.0).await;
        }
        // 100 units at 50/s: 2 s.
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(2000) && waited < Duration::from_millis(2100), "{waited:?}");
        // No budget: nothing to share.
        let unlimited = RateLimiter::new(None);
        unlimited.share_among(4);
        unlimited.acquire(1e9).await;
    }
}
