//! What every request logs, through `tracing` (target `singletable`): one
//! debug event per request with the table, the operation, the entity
//! where there is one, how long it took, the capacity DynamoDB says it
//! consumed, and how many items it carried; a failure is logged at debug
//! too (the caller gets the error). Nothing here installs a subscriber:
//! the application decides where logs go.

use std::time::Instant;

use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};

/// What each request asks for, so the log can say what it cost.
pub(crate) const CAPACITY: ReturnConsumedCapacity = ReturnConsumedCapacity::Total;

/// The capacity units of a response (the sum over tables for a batch or
/// a transaction).
pub(crate) fn units<'a>(capacity: impl IntoIterator<Item = &'a ConsumedCapacity>) -> f64 {
    capacity.into_iter().filter_map(|c| c.capacity_units).sum()
}

/// Logs a finished request.
pub(crate) fn sent(op: &'static str, table: &str, entity: Option<&str>, started: Instant, capacity: f64, items: usize) {
    tracing::debug!(
        target: "singletable",
        op,
        table,
        entity = entity.unwrap_or(""),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        capacity,
        items,
        "request done"
    );
}

/// Logs a failed request (the error goes to the caller).
pub(crate) fn failed(op: &'static str, table: &str, entity: Option<&str>, started: Instant, error: &dyn std::fmt::Display) {
    tracing::debug!(
        target: "singletable",
        op,
        table,
        entity = entity.unwrap_or(""),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        %error,
        "request failed"
    );
}

/// Logs a batch call that DynamoDB left partly unprocessed.
pub(crate) fn unprocessed(op: &'static str, table: &str, left: usize, call: usize) {
    tracing::debug!(target: "singletable", op, table, left, call, "unprocessed requests sent again");
}
