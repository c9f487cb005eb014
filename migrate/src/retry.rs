//! Retrying DynamoDB requests that fail transiently (throttling, a
//! failure on the server's side), with exponential backoff and full
//! jitter: what every request of the crate that writes, and every scan,
//! goes through.

use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;

/// Attempts after the first before a transient failure is given up on.
pub(crate) const MAX_ATTEMPTS: u32 = 12;

/// Sleeps before retry number `attempt` (1 first).
pub(crate) async fn backoff(attempt: u32) {
    // Exponential with full jitter, capped at 5 s.
    let cap = (25u64 << attempt.min(8)).min(5_000);
    tokio::time::sleep(Duration::from_millis(fastrand::u64(cap / 2..=cap))).await;
}

/// Whether a failed request is worth another try: throttling, or a
/// failure on the server's side (DynamoDB's InternalServerError; DynamoDB
/// Local answers InternalFailure at times to a PutItem or UpdateItem on a
/// table whose index was just created).
pub(crate) fn is_transient<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(e: &E) -> bool {
    matches!(
        e.code(),
        Some(
            "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "LimitExceededException"
                | "InternalServerError"
                | "InternalFailure"
                | "ServiceUnavailable"
                // A write that met an item another transaction holds (the
                // application's, or a worker's copy checking its lease):
                // AWS's advice is to send it again.
                | "TransactionConflictException"
        )
    )
}

/// Runs `send` again while it fails transiently (on top of the SDK's own
/// few retries), with backoff, up to the attempt bound.
pub(crate) async fn retrying<T, E, R, Fut>(mut send: impl FnMut() -> Fut) -> Result<T, SdkError<E, R>>
where
    Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    let mut attempt = 0;
    loop {
        match send().await {
            Err(e) if attempt < MAX_ATTEMPTS && e.as_service_error().is_some_and(is_transient) => {
                attempt += 1;
                let code = e.as_service_error().and_then(|s| s.code()).unwrap_or("?");
                tracing::warn!(code, attempt, max_attempts = MAX_ATTEMPTS, "transient failure; retrying after backoff");
                backoff(attempt).await;
            }
            other => return other,
        }
    }
}
