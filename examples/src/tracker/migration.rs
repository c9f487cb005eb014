//! The v1 → v2 migration through the library, as a service would run it
//! from its own deployment code (the demo runs the same steps through the
//! `singletable migrate` command line instead).

use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use singletable_migrate::planner::{self, PlanRequest};
use singletable_migrate::{ApplyOptions, ApplyReport, MigrateError, Migrator, Plan, Quiet};

use super::{v1, v2};

/// Plans the move of `table` to [`v2::design`] with the library's planner:
/// the design the table records (or, for a table never migrated,
/// [`v1::design`]) and the live table (DescribeTable) against v2, and a
/// scan for what the data says (item counts, samples, collisions).
pub async fn plan_v2(client: &Client, table: &str) -> Result<Plan, MigrateError> {
    let request = PlanRequest::new(v2::design(table)?).table(table).old_design(v1::design(table)?);
    Ok(planner::make_plan(client, &request).await?.plan)
}

/// Applies a plan: creates `gsi3`, moves every item to its v2 keys (the
/// new item is written before the old one is deleted), verifies the
/// result and records v2 as the table's design.
pub async fn apply(client: &Client, plan: &Plan) -> Result<ApplyReport, MigrateError> {
    Migrator::new(client.clone()).apply(plan, &ApplyOptions::default(), Arc::new(Quiet)).await
}
