//! The tracker's API function: `tracker_lambda::api::handle` on the table
//! named by `TABLE_NAME`.

use lambda_runtime::{service_fn, LambdaEvent};
use tracker_lambda::api::{self, Request};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = tracker_lambda::table_from_env().await?;
    let table = &table;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Request>| api::handle(table, event.payload))).await
}
