//! Table-level steps: indexes, settings, and the copy into a new table
//! when the base key schema changes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, CreateGlobalSecondaryIndexAction, DeleteGlobalSecondaryIndexAction, GlobalSecondaryIndexUpdate,
    KeySchemaElement, KeyType, PointInTimeRecoverySpecification, Projection, ProjectionType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use singletable::{Table, TableDesign, TableIndex};

use super::backfill::scan_page;
use super::options::{ApplyOptions, ApplyReport, Event, Observer};
use super::verify::verify;
use super::write::{batch_write, put_request, write_units, Budget};
use crate::decide::Target;
use crate::error::MigrateError;
use crate::live::{describe, LiveTable};
use crate::plan::{Change, Plan};
use crate::raw::RawItem;
use crate::reserved::{is_reserved_in, record_design};

fn build_err(e: impl std::fmt::Display) -> MigrateError {
    MigrateError::Other(e.to_string())
}

async fn wait_for(client: &Client, table: &str, what: &str, mut ready: impl FnMut(&LiveTable) -> bool) -> Result<(), MigrateError> {
    let mut delay = Duration::from_millis(50);
    for _ in 0..600 {
        let live = describe(client, table).await?;
        if ready(&live) {
            return Ok(());
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    Err(MigrateError::Other(format!("table `{table}`: gave up waiting for {what}")))
}

/// Creates one GSI and waits until it is ACTIVE (DynamoDB creates one
/// index per table at a time).
pub(crate) async fn create_index(client: &Client, table: &str, index: &TableIndex) -> Result<(), MigrateError> {
    // An apply killed after creating the index resumes here: wait for the
    // index it made instead of asking for it twice.
    let live = describe(client, table).await?;
    if let Some(existing) = live.indexes.iter().find(|i| i.name == index.name) {
        if !existing.matches(index) {
            return Err(MigrateError::Other(format!(
                "table `{table}`: index `{}` exists with other key attributes than the plan's; plan again",
                index.name
            )));
        }
        return wait_for(client, table, &format!("index `{}` to become ACTIVE", index.name), |live| {
            live.indexes.iter().any(|i| i.name == index.name && i.status == "ACTIVE")
        })
        .await;
    }
    let key = |attr: &str, kind| KeySchemaElement::builder().attribute_name(attr).key_type(kind).build().map_err(build_err);
    let mut action = CreateGlobalSecondaryIndexAction::builder()
        .index_name(&index.name)
        .key_schema(key(&index.pk_attr, KeyType::Hash)?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build());
    let mut req = client.update_table().table_name(table).attribute_definitions(
        AttributeDefinition::builder().attribute_name(&index.pk_attr).attribute_type(ScalarAttributeType::S).build().map_err(build_err)?,
    );
    if let Some(sk) = &index.sk_attr {
        action = action.key_schema(key(sk, KeyType::Range)?);
        req = req.attribute_definitions(
            AttributeDefinition::builder().attribute_name(sk).attribute_type(ScalarAttributeType::S).build().map_err(build_err)?,
        );
    }
    req.global_secondary_index_updates(GlobalSecondaryIndexUpdate::builder().create(action.build().map_err(build_err)?).build())
        .send()
        .await
        .map_err(|e| MigrateError::dynamo("UpdateTable (create index)", table, e))?;
    wait_for(client, table, &format!("index `{}` to become ACTIVE", index.name), |live| {
        live.indexes.iter().any(|i| i.name == index.name && i.status == "ACTIVE")
    })
    .await
}

/// Deletes one GSI and waits until it is gone.
pub(crate) async fn delete_index(client: &Client, table: &str, name: &str) -> Result<(), MigrateError> {
    client
        .update_table()
        .table_name(table)
        .global_secondary_index_updates(
            GlobalSecondaryIndexUpdate::builder()
                .delete(DeleteGlobalSecondaryIndexAction::builder().index_name(name).build().map_err(build_err)?)
                .build(),
        )
        .send()
        .await
        .map_err(|e| MigrateError::dynamo("UpdateTable (delete index)", table, e))?;
    wait_for(client, table, &format!("index `{name}` to be deleted"), |live| !live.indexes.iter().any(|i| i.name == name)).await
}

fn warn(report: &mut ApplyReport, observer: &dyn Observer, text: String) {
    observer.event(Event::Warning(text.clone()));
    report.warnings.push(text);
}

/// Applies one settings change.
pub(crate) async fn apply_setting(
    client: &Client,
    table: &str,
    change: &Change,
    report: &mut ApplyReport,
    observer: &dyn Observer,
) -> Result<(), MigrateError> {
    match change {
        Change::UpdateTtl { from, to } => {
            // One TTL attribute per table: switch the old one off first.
            if let Some(old) = from {
                set_ttl(client, table, old, false).await?;
            }
            if let Some(new) = to {
                set_ttl(client, table, new, true).await?;
            }
        }
        Change::UpdateStream { to, .. } => {
            let spec = match to {
                Some(view) => StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::from(view.as_str()))
                    .build()
                    .map_err(build_err)?,
                None => StreamSpecification::builder().stream_enabled(false).build().map_err(build_err)?,
            };
            client
                .update_table()
                .table_name(table)
                .stream_specification(spec)
                .send()
                .await
                .map_err(|e| MigrateError::dynamo("UpdateTable (stream)", table, e))?;
        }
        Change::UpdatePointInTimeRecovery { to, .. } => {
            let result = client
                .update_continuous_backups()
                .table_name(table)
                .point_in_time_recovery_specification(
                    PointInTimeRecoverySpecification::builder().point_in_time_recovery_enabled(*to).build().map_err(build_err)?,
                )
                .send()
                .await;
            if let Err(e) = result {
                let text = aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string();
                if text.contains("UnknownOperation") {
                    warn(report, observer, format!("table `{table}`: this endpoint does not support point-in-time recovery (DynamoDB Local); setting skipped"));
                } else {
                    return Err(MigrateError::dynamo("UpdateContinuousBackups", table, e));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

async fn set_ttl(client: &Client, table: &str, attr: &str, enabled: bool) -> Result<(), MigrateError> {
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(TimeToLiveSpecification::builder().attribute_name(attr).enabled(enabled).build().map_err(build_err)?)
        .send()
        .await
        .map_err(|e| MigrateError::dynamo("UpdateTimeToLive", table, e))?;
    Ok(())
}

/// Creates a table from its design: keys, indexes and settings (TTL,
/// stream, point-in-time recovery); what the endpoint cannot do becomes a
/// warning.
pub(crate) async fn create_table(
    client: &Client,
    design: &TableDesign,
    report: &mut ApplyReport,
    observer: &dyn Observer,
) -> Result<(), MigrateError> {
    let provisioned = Table::new(client.clone(), design.clone()).create_table().await?;
    for warning in provisioned.warnings {
        warn(report, observer, warning);
    }
    Ok(())
}

/// Copies every item of `from` into a new table `to` built from the new
/// design, re-rendering keys; verifies the copy and reports the cut-over.
/// The source table is left as it is.
pub(crate) async fn copy_to_new_table(
    client: &Client,
    plan: &Plan,
    from: &str,
    to: &str,
    opts: &ApplyOptions,
    observer: Arc<dyn Observer>,
    mut report: ApplyReport,
) -> Result<ApplyReport, MigrateError> {
    let old = plan.from.as_ref().ok_or_else(|| MigrateError::NoRecordedDesign { table: from.to_string() })?;
    let new = &plan.to;
    observer.event(Event::Step { number: 1, total: 3, text: format!("create table `{to}`") });
    let target = describe(client, to).await?;
    if !target.exists {
        create_table(client, new, &mut report, &*observer).await?;
    }
    observer.event(Event::Step { number: 2, total: 3, text: format!("copy `{from}` into `{to}` with the new keys") });
    // Key attributes of the old layout are dropped; the new ones rendered.
    let old_keys: Vec<&str> = [old.pk_attr.as_str(), old.sk_attr.as_str()]
        .into_iter()
        .chain(old.indexes.iter().flat_map(|i| std::iter::once(i.pk_attr.as_str()).chain(i.sk_attr.as_deref())))
        .collect();
    let segments = opts.segments.max(1);
    let budget = Budget::new(opts.max_wcu, opts.in_flight());
    let (copied, skipped, scanned) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let total = Some(plan.entities.iter().map(|e| e.items).sum::<u64>()).filter(|n| *n > 0);
    let entity_attr = new.entities.first().map(|e| e.entity_attr.to_string()).unwrap_or_else(|| "_et".into());
    let tasks = (0..segments).map(|segment| {
        let (budget, copied, skipped, scanned, old_keys, entity_attr, observer) =
            (&budget, &copied, &skipped, &scanned, &old_keys, &entity_attr, observer.clone());
        async move {
            let mut start = None;
            loop {
                let (items, next) = {
                    let _slot = budget.slot().await;
                    scan_page(client, from, segment, segments, start, Some(opts.page_size.unwrap_or(super::options::DEFAULT_PAGE_ITEMS)), None).await?
                };
                let mut puts = Vec::new();
                let mut units = 0.0;
                let read = scanned.fetch_add(items.len() as u64, Ordering::Relaxed) + items.len() as u64;
                for item in items {
                    if is_reserved_in(&item, &old.pk_attr) {
                        continue;
                    }
                    let entity = item.get(entity_attr).and_then(|v| v.as_s().ok()).and_then(|e| new.entity(e));
                    let Some(entity) = entity else {
                        skipped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let payload: RawItem = item.into_iter().filter(|(k, _)| !old_keys.contains(&k.as_str())).collect();
                    let target = Target::of(entity, &payload, &opts.defaults, &[])
                        .map_err(|e| MigrateError::Blocked { table: from.to_string(), errors: vec![e.to_string()] })?;
                    let moved = target.new_item(&payload);
                    units += write_units(&moved);
                    puts.push(put_request(moved));
                }
                let n = puts.len() as u64;
                if !puts.is_empty() {
                    batch_write(client, to, puts, units, budget).await?;
                }
                let done = copied.fetch_add(n, Ordering::Relaxed) + n;
                observer.event(Event::Progress { scanned: read, written: done, total });
                match next {
                    Some(k) => start = Some(k),
                    None => return Ok::<(), MigrateError>(()),
                }
            }
        }
    });
    futures::future::try_join_all(tasks).await?;
    report.moved = copied.into_inner();
    report.unknown = skipped.into_inner();
    if report.unknown > 0 {
        let text = format!("{} items of no entity of the new design were not copied", report.unknown);
        warn(&mut report, &*observer, text);
    }

    observer.event(Event::Step { number: 3, total: 3, text: format!("verify `{to}`") });
    let copy_plan = Plan { table: to.to_string(), from: None, to: new.clone(), changes: vec![], entities: plan.entities.clone(), fingerprint: String::new(), defaults: plan.defaults.clone() };
    let verification = verify(client, &copy_plan, segments, opts.in_flight(), true, &*observer).await?;
    let problems = verification.problems.clone();
    report.verification = Some(verification);
    if !problems.is_empty() {
        return Err(MigrateError::Verification { table: to.to_string(), problems });
    }
    record_design(client, new, to).await?;
    report.cutover = vec![
        format!("1. Deploy the application reading and writing `{to}` (design recorded there)."),
        format!("2. Items written to `{from}` after this copy are not in `{to}`: stop writers first, or run this apply again to copy the rest (it overwrites with the latest)."),
        format!("3. When `{to}` serves traffic, back up and delete `{from}`."),
    ];
    Ok(report)
}
