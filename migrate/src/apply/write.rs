//! Writes under a write-capacity budget, resubmitting what DynamoDB leaves
//! unprocessed and riding out throttling.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use tokio::sync::Mutex;

use super::decide::Item;
use crate::error::MigrateError;

/// A token bucket of write capacity units per second, shared by every
/// segment of an apply. `None` rate: unlimited.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: Option<f64>,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(rate: Option<f64>) -> Arc<Self> {
        let rate = rate.filter(|r| *r > 0.0);
        Arc::new(RateLimiter { rate, state: Mutex::new((rate.unwrap_or(0.0), Instant::now())) })
    }

    /// Waits until `units` write units may be spent.
    pub async fn acquire(&self, units: f64) {
        let Some(rate) = self.rate else { return };
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

/// DynamoDB's write units for an item: 1 per started KB.
pub(crate) fn write_units(item: &Item) -> f64 {
    singletable::item_size(item).div_ceil(1024).max(1) as f64
}

const MAX_ATTEMPTS: u32 = 12;

async fn backoff(attempt: u32) {
    // Exponential with full jitter, capped at 5 s.
    let cap = (25u64 << attempt.min(8)).min(5_000);
    tokio::time::sleep(Duration::from_millis(fastrand::u64(cap / 2..=cap))).await;
}

fn is_throttling<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(e: &E) -> bool {
    matches!(
        e.code(),
        Some("ProvisionedThroughputExceededException" | "ThrottlingException" | "RequestLimitExceeded" | "LimitExceededException")
    )
}

/// Sends puts or deletes in batches of 25, resubmitting unprocessed
/// requests with backoff until all are written or the bound is reached.
pub(crate) async fn batch_write(
    client: &Client,
    table: &str,
    requests: Vec<WriteRequest>,
    units: f64,
    limiter: &RateLimiter,
) -> Result<(), MigrateError> {
    for chunk in requests.chunks(25) {
        limiter.acquire(units * chunk.len() as f64 / requests.len().max(1) as f64).await;
        let mut pending: Vec<WriteRequest> = chunk.to_vec();
        let mut attempt = 0;
        while !pending.is_empty() {
            let result = client
                .batch_write_item()
                .request_items(table, std::mem::take(&mut pending))
                .send()
                .await;
            match result {
                Ok(out) => {
                    pending = out.unprocessed_items.and_then(|mut m| m.remove(table)).unwrap_or_default();
                }
                Err(e) if e.as_service_error().is_some_and(is_throttling) && attempt < MAX_ATTEMPTS => {
                    pending = chunk.to_vec();
                }
                Err(e) => return Err(MigrateError::dynamo("BatchWriteItem", table, e)),
            }
            if !pending.is_empty() {
                attempt += 1;
                if attempt > MAX_ATTEMPTS {
                    return Err(MigrateError::Other(format!(
                        "BatchWriteItem on table `{table}`: {} requests still unprocessed after {MAX_ATTEMPTS} attempts",
                        pending.len()
                    )));
                }
                backoff(attempt).await;
            }
        }
    }
    Ok(())
}

pub(crate) fn put_request(item: Item) -> WriteRequest {
    WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build().expect("item set")).build()
}

pub(crate) fn delete_request(key: Item) -> WriteRequest {
    WriteRequest::builder().delete_request(DeleteRequest::builder().set_key(Some(key)).build().expect("key set")).build()
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
    key: Item,
    set: &[(String, AttributeValue)],
    remove: &[String],
    expect: &[(String, Option<AttributeValue>)],
    limiter: &RateLimiter,
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
    let mut attempt = 0;
    loop {
        limiter.acquire(1.0).await;
        let result = client
            .update_item()
            .table_name(table)
            .set_key(Some(key.clone()))
            .update_expression(expression.trim())
            .condition_expression(conditions.join(" AND "))
            .set_expression_attribute_names(Some(names.clone()))
            .set_expression_attribute_values((!values.is_empty()).then(|| values.clone()))
            .send()
            .await;
        match result {
            Ok(_) => return Ok(UpdateOutcome::Done),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                return Ok(UpdateOutcome::Conflict)
            }
            Err(e) if e.as_service_error().is_some_and(is_throttling) && attempt < MAX_ATTEMPTS => {
                attempt += 1;
                backoff(attempt).await;
            }
            Err(e) => return Err(MigrateError::dynamo("UpdateItem", table, e)),
        }
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
        // 300 units at 200/s with a 200-unit burst: 0.5 s of waiting.
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(500) && waited < Duration::from_millis(600), "{waited:?}");
        let unlimited = RateLimiter::new(None);
        unlimited.acquire(1e9).await;
    }
}
