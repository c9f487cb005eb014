//! Writes under a write-capacity budget, resubmitting what DynamoDB leaves
//! unprocessed and riding out throttling.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, DeleteRequest, Put, PutRequest, TransactWriteItem, WriteRequest};
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
/// Up to 25 copies share a transaction; when DynamoDB cancels it, copies
/// whose condition failed are settled (someone got there first) and the
/// others are sent again. Returns how many copies were written.
pub(crate) async fn copy_moves(
    client: &Client,
    table: &str,
    pk_attr: &str,
    moves: Vec<(RawItem, RawItem)>,
    budget: &Budget,
    fence: Option<&ConditionCheck>,
) -> Result<u64, MigrateError> {
    if fence.is_some() {
        // Every chunk checks the same lease item, and transactions that
        // share an item conflict on the service: one at a time per segment
        // (the segments still run side by side).
        let mut written = 0;
        for chunk in moves.chunks(25) {
            written += copy_chunk(client, table, pk_attr, chunk.to_vec(), budget, fence).await?;
        }
        return Ok(written);
    }
    let chunks = moves.chunks(25).map(|chunk| copy_chunk(client, table, pk_attr, chunk.to_vec(), budget, fence));
    let written = futures::future::try_join_all(chunks).await?;
    Ok(written.into_iter().sum())
}

async fn copy_chunk(
    client: &Client,
    table: &str,
    pk_attr: &str,
    mut pending: Vec<(RawItem, RawItem)>,
    budget: &Budget,
    fence: Option<&ConditionCheck>,
) -> Result<u64, MigrateError> {
    let mut written = 0;
    let mut attempt = 0;
    while !pending.is_empty() {
        // A transactional write costs two units per item written or checked.
        budget.units(pending.iter().map(|(new, _)| 2.0 * write_units(new) + 2.0).sum()).await;
        let mut actions = Vec::with_capacity(pending.len() * 2);
        for (new_item, old_key) in &pending {
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
            actions.push(TransactWriteItem::builder().condition_check(check).build());
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        // Last, so that the copies' reasons keep their places: the worker
        // still holds the segment (see `workers`).
        if let Some(fence) = fence {
            actions.push(TransactWriteItem::builder().condition_check(fence.clone()).build());
        }
        let result = {
            let _slot = budget.slot().await;
            client.transact_write_items().set_transact_items(Some(actions)).send().await
        };
        match result {
            Ok(_) => {
                written += pending.len() as u64;
                return Ok(written);
            }
            Err(e) => {
                let reasons: Option<Vec<Option<String>>> = e.as_service_error().and_then(|s| match s {
                    TransactWriteItemsError::TransactionCanceledException(c) => {
                        Some(c.cancellation_reasons().iter().map(|r| r.code().map(str::to_string)).collect())
                    }
                    _ => None,
                });
                if fence.is_some()
                    && reasons.as_ref().and_then(|r| r.get(pending.len() * 2)).is_some_and(|r| r.as_deref() == Some("ConditionalCheckFailed"))
                {
                    return Err(MigrateError::SegmentLost { table: table.to_string() });
                }
                let reasons = reasons.map(|mut r| {
                    r.truncate(pending.len() * 2);
                    r
                });
                match reasons {
                    // Settled copies drop out; the rest (cancelled with
                    // them, or in conflict with another write) go again.
                    Some(reasons) if reasons.len() == pending.len() * 2 => {
                        let settled = |i: usize| {
                            [&reasons[2 * i], &reasons[2 * i + 1]].iter().any(|r| r.as_deref() == Some("ConditionalCheckFailed"))
                        };
                        let before = pending.len();
                        tracing::debug!(table, copies = before, ?reasons, attempt, "copy transaction cancelled");
                        let mut i = 0;
                        pending.retain(|_| {
                            let keep = !settled(i);
                            i += 1;
                            keep
                        });
                        if pending.len() == before {
                            attempt += 1;
                            if attempt >= MAX_ATTEMPTS * 3 {
                                return Err(MigrateError::Other(format!(
                                    "table `{table}`: copies kept being cancelled ({:?}); run apply again",
                                    reasons.iter().flatten().collect::<Vec<_>>()
                                )));
                            }
                            backoff(attempt).await;
                        }
                    }
                    _ if e.as_service_error().is_some_and(is_transient) || e.as_service_error().is_none() => {
                        attempt += 1;
                        tracing::warn!(table, error = %error_text(&e), attempt, "copy transaction failed transiently; retrying");
                        if attempt >= MAX_ATTEMPTS * 3 {
                            return Err(MigrateError::dynamo("TransactWriteItems (copy)", table, e));
                        }
                        backoff(attempt).await;
                    }
                    _ => return Err(MigrateError::dynamo("TransactWriteItems (copy)", table, e)),
                }
            }
        }
    }
    Ok(written)
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
    // Each attempt spends its units again and holds a slot only while in
    // flight; backing off frees it for others.
    let result = retrying(|| async {
        budget.units(1.0).await;
        let _slot = budget.slot().await;
        client
            .update_item()
            .table_name(table)
            .set_key(Some(key.clone()))
            .update_expression(expression.trim())
            .condition_expression(conditions.join(" AND "))
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
