//! The tracker's stream function: `tracker_lambda::stream::handle` on the
//! DynamoDB stream of the table named by `TABLE_NAME`.

use lambda_runtime::tracing;
use lambda_runtime::{service_fn, LambdaEvent};
use singletable::aws_lambda_events::event::dynamodb::Event;
use singletable::aws_lambda_events::streams::DynamoDbEventResponse;
use tracker_lambda::stream::{self, StreamError};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing::init_default_subscriber();
    let table = tracker_lambda::table_from_env().await?;
    let table = &table;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        let report = stream::handle(table, event.payload).await?;
        // The response tells Lambda which record to retry from, not why:
        // the reason goes to the function's log.
        if let Some(failed) = &report.failed {
            tracing::error!(sequence_number = %failed.sequence_number, event_id = %failed.event_id, error = %failed.error, "record not handled");
        }
        tracing::info!(handled = report.handled.len(), notified = report.notified.len(), "batch done");
        Ok::<DynamoDbEventResponse, StreamError>(report.response())
    }))
    .await
}
