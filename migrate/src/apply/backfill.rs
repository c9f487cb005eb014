//! The backfill: a parallel scan that rewrites every item whose keys
//! change, one checkpointed page at a time.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use futures::stream::{self, StreamExt, TryStreamExt};

use super::options::{ApplyOptions, ApplyReport, Event, Observer};
use super::state::{Checkpoints, LeaseWatch, SegmentState};
use super::workers::{share, worker_name, Held, LeaseRow, SegmentEnd, Sharing};
use super::write::{batch_write, copy_moves, delete_request, put_request, update_in_place, write_units, Budget, UpdateOutcome};
use crate::ddb_json::{item_from_json, item_to_json};
use crate::decide::{ItemAction, Rules};
use crate::error::MigrateError;
use crate::plan::Plan;
use crate::raw::RawItem;
use crate::retry::retrying;
use crate::reserved::is_reserved_in;

/// The attributes a scan returns when not whole items.
#[derive(Debug, Clone)]
pub(crate) struct Projection {
    expression: String,
    names: HashMap<String, String>,
}

impl Projection {
    pub fn new<'a>(attrs: impl IntoIterator<Item = &'a str>) -> Self {
        let mut names = HashMap::new();
        let mut placeholders = Vec::new();
        for attr in attrs {
            if names.values().all(|a| a != attr) {
                let placeholder = format!("#p{}", names.len());
                placeholders.push(placeholder.clone());
                names.insert(placeholder, attr.to_string());
            }
        }
        Projection { expression: placeholders.join(", "), names }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }
}

/// Scans one page of one segment (strongly consistent), whole items or
/// the `projection`'s attributes.
pub(crate) async fn scan_page(
    client: &Client,
    table: &str,
    segment: u32,
    total: u32,
    start: Option<RawItem>,
    limit: Option<i32>,
    projection: Option<&Projection>,
) -> Result<(Vec<RawItem>, Option<RawItem>), MigrateError> {
    // Throttled like any request: a scan that gives up on the SDK's few
    // tries would end an apply that a write in its place rides out.
    let out = retrying(|| {
        client
            .scan()
            .table_name(table)
            .segment(segment as i32)
            .total_segments(total as i32)
            .consistent_read(true)
            .set_limit(limit)
            .set_exclusive_start_key(start.clone())
            .set_projection_expression(projection.map(|p| p.expression.clone()))
            .set_expression_attribute_names(projection.map(|p| p.names.clone()))
            .send()
    })
    .await
    .map_err(|e| MigrateError::dynamo("Scan", table, e))?;
    Ok((out.items.unwrap_or_default(), out.last_evaluated_key.filter(|k| !k.is_empty())))
}

#[derive(Default)]
struct Counters {
    scanned: AtomicU64,
    written: AtomicU64,
    moved: AtomicU64,
    updated: AtomicU64,
    deleted: AtomicU64,
    unknown: AtomicU64,
}

/// How the backfill writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Nobody else writes: moves are a batch put of the new item, then a
    /// batch delete of the old one.
    Quiet,
    /// The application writes the old form meanwhile and the stream replay
    /// carries its changes over: moves are conditional copies
    /// ([`copy_moves`]) and the old item stays until the contract phase;
    /// removed entities are left for it too.
    Online,
}

/// Runs the backfill over every segment not yet done, sharing the
/// segments with any other worker of the same migration (`workers`).
/// `lay_out`: this is the apply holding the lock, which makes the
/// segments' checkpoints (a worker waits for them, [`Checkpoints::laid_out`]).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    client: &Client,
    plan: &Plan,
    opts: &ApplyOptions,
    checkpoints: &Checkpoints,
    lease_lost: &LeaseWatch,
    observer: Arc<dyn Observer>,
    report: &mut ApplyReport,
    mode: Mode,
    throttle: Option<&AtomicBool>,
    lay_out: bool,
) -> Result<(), MigrateError> {
    // Every segment's checkpoint is also its lease (see `workers`), laid
    // out by the apply that holds the lock before any worker starts: all
    // of them, then the layout mark workers wait for. An apply killed in
    // between lays out the rest when it resumes (the segment count it
    // began with stays).
    let mut rows = checkpoints.rows().await?;
    if rows.iter().any(|r| r.state.done || r.state.resume_from.is_some()) {
        report.resumed = true;
    }
    if lay_out && !checkpoints.laid_out().await? {
        checkpoints.init(rows.first().map_or(opts.segments.max(1), |r| r.total)).await?;
        rows = checkpoints.rows().await?;
    }
    let total = rows.first().map_or(opts.segments.max(1), |r| r.total);
    let budget = Budget::new(opts.max_wcu, opts.concurrency.unwrap_or(total));
    let counters = Counters::default();
    let expected: Option<u64> = (!plan.entities.is_empty()).then(|| plan.entities.iter().map(|e| e.items).sum());
    let rules = Rules::new(plan, &opts.defaults);
    let sharing = Sharing { me: worker_name(&opts.owner), lease: opts.lease, max_held: opts.concurrency.unwrap_or(total) as usize };

    let work = |held: Held, row: LeaseRow| {
        let (budget, counters, rules, observer, lease_lost) = (&budget, &counters, &rules, observer.clone(), lease_lost);
        async move {
            let segment = row.segment;
            let fence = held.fence(&checkpoints.at)?;
            let fence = (mode == Mode::Online).then_some(fence);
            let scan = |start: Option<RawItem>| async move {
                let _slot = budget.slot().await;
                scan_page(client, &plan.table, segment, total, start, Some(opts.page_size.unwrap_or(super::options::DEFAULT_PAGE_ITEMS)), None).await
            };
            let mut page = scan(row.state.resume_from).await?;
            loop {
                lease_lost.check().await?;
                if opts.cancel.load(Ordering::SeqCst) {
                    return Err(MigrateError::Interrupted { table: plan.table.clone() });
                }
                if held.is_lost() {
                    return Ok(SegmentEnd::Lost);
                }
                // The stream replay comes first (gh-ost's rule: live changes
                // ahead of the row copy): while it is behind, the copy waits,
                // up to two seconds a page so that it always moves on.
                if let Some(throttle) = throttle {
                    let since = std::time::Instant::now();
                    while throttle.load(Ordering::Relaxed) && since.elapsed() < std::time::Duration::from_secs(2) {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                }
                let (items, next) = page;
                // The next page is read while this one is written, so the
                // scan's latency hides behind the writes. It may meet items
                // this page is writing in their new form; those are kept.
                let prefetch = async {
                    match &next {
                        Some(key) => scan(Some(key.clone())).await.map(Some),
                        None => Ok(None),
                    }
                };
                let (n, started) = (items.len(), std::time::Instant::now());
                let (written, fetched) = futures::join!(rewrite_page(client, &plan.table, items, rules, budget, counters, mode, fence.as_ref()), prefetch);
                match written {
                    Err(MigrateError::SegmentLost { .. }) => {
                        tracing::warn!(table = %plan.table, segment, epoch = held.epoch, what = "copy", "segment lease lost to another worker; its copies were refused");
                        held.lost.store(true, Ordering::SeqCst);
                        return Ok(SegmentEnd::Lost);
                    }
                    other => other?,
                }
                tracing::debug!(table = %plan.table, segment, items = n, last = next.is_none(), ms = started.elapsed().as_millis() as u64, "backfill page written");
                observer.event(Event::Progress {
                    scanned: counters.scanned.load(Ordering::Relaxed),
                    written: counters.written.load(Ordering::Relaxed),
                    total: expected,
                });
                // Saved only after every write of the page succeeded: a
                // crash before this line redoes the page, which is harmless
                // because items already in their new form are kept. Only
                // while this worker still holds the segment.
                let state = SegmentState { done: next.is_none(), resume_from: next };
                let saved = {
                    let _slot = budget.slot().await;
                    checkpoints.save_fenced(&held, &state).await?
                };
                if !saved {
                    return Ok(SegmentEnd::Lost);
                }
                match fetched? {
                    Some(fetched) => page = fetched,
                    None => return Ok(SegmentEnd::Done),
                }
            }
        }
    };
    let result = share(checkpoints, &sharing, work, |workers| budget.share_among(workers)).await;
    report.scanned += counters.scanned.load(Ordering::Relaxed);
    report.moved += counters.moved.load(Ordering::Relaxed);
    report.updated += counters.updated.load(Ordering::Relaxed);
    report.deleted += counters.deleted.load(Ordering::Relaxed);
    report.unknown += counters.unknown.load(Ordering::Relaxed);
    if report.unknown > 0 {
        let warning = format!("{} items of no known entity type were left untouched", report.unknown);
        observer.event(Event::Warning(warning.clone()));
        report.warnings.push(warning);
    }
    result
}

/// Rewrites one page: new items first, then deletes of what they replace,
/// then in-place updates.
async fn rewrite_page(
    client: &Client,
    table: &str,
    items: Vec<RawItem>,
    rules: &Rules<'_>,
    budget: &Budget,
    counters: &Counters,
    mode: Mode,
    fence: Option<&aws_sdk_dynamodb::types::ConditionCheck>,
) -> Result<(), MigrateError> {
    let pk_attr = &rules.new.pk_attr;
    let (mut puts, mut deletes, mut updates, mut copies) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut put_units, mut moved, mut deleted) = (0.0, 0, 0);
    counters.scanned.fetch_add(items.len() as u64, Ordering::Relaxed);
    for item in items {
        if is_reserved_in(&item, pk_attr) {
            counters.scanned.fetch_sub(1, Ordering::Relaxed);
            continue;
        }
        match rules.decide(&item).map_err(|reason| MigrateError::Blocked { table: table.to_string(), errors: vec![reason] })? {
            ItemAction::Keep => {}
            ItemAction::Unknown => {
                counters.unknown.fetch_add(1, Ordering::Relaxed);
            }
            ItemAction::Move { new_item, old_key } if mode == Mode::Online => copies.push((new_item, old_key)),
            ItemAction::Delete { .. } if mode == Mode::Online => {}
            ItemAction::Move { new_item, old_key } => {
                put_units += write_units(&new_item);
                puts.push(put_request(new_item));
                deletes.push(delete_request(old_key));
                moved += 1;
            }
            ItemAction::Delete { key } => {
                deletes.push(delete_request(key));
                deleted += 1;
            }
            ItemAction::Update { key, set, remove, expect } => updates.push((key, set, remove, expect)),
        }
    }
    if !copies.is_empty() {
        let copied = copy_moves(client, table, pk_attr, copies, budget, fence).await?;
        counters.moved.fetch_add(copied, Ordering::Relaxed);
        counters.written.fetch_add(copied, Ordering::Relaxed);
    }
    // Every new item is written before any old one is deleted.
    if !puts.is_empty() {
        batch_write(client, table, puts, put_units, budget).await?;
    }
    if !deletes.is_empty() {
        let units = deletes.len() as f64;
        batch_write(client, table, deletes, units, budget).await?;
    }
    counters.moved.fetch_add(moved, Ordering::Relaxed);
    counters.deleted.fetch_add(deleted, Ordering::Relaxed);
    counters.written.fetch_add(moved + deleted, Ordering::Relaxed);

    // Unbounded here: the budget's slots bound the requests in flight.
    stream::iter(updates.into_iter().map(Ok::<_, MigrateError>))
        .try_for_each_concurrent(None, |(mut key, mut set, mut remove, mut expect)| async move {
            for _ in 0..5 {
                match update_in_place(client, table, key.clone(), &set, &remove, &expect, budget).await? {
                    UpdateOutcome::Done => {
                        counters.updated.fetch_add(1, Ordering::Relaxed);
                        counters.written.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                    UpdateOutcome::Conflict => {
                        // Someone wrote the item meanwhile: read it again and
                        // decide afresh from what it holds now.
                        let _slot = budget.slot().await;
                        let fresh = client
                            .get_item()
                            .table_name(table)
                            .set_key(Some(key.clone()))
                            .consistent_read(true)
                            .send()
                            .await
                            .map_err(|e| MigrateError::dynamo("GetItem", table, e))?;
                        let Some(item) = fresh.item else { return Ok(()) };
                        match rules.decide(&item).map_err(|r| MigrateError::Blocked { table: table.to_string(), errors: vec![r] })? {
                            ItemAction::Update { key: k, set: s, remove: r, expect: e } => {
                                (key, set, remove, expect) = (k, s, r, e);
                            }
                            ItemAction::Keep => return Ok(()),
                            other => {
                                return Err(MigrateError::Other(format!(
                                    "table `{table}`: item {key:?} changed during apply into one needing {other:?}; run apply again"
                                )))
                            }
                        }
                    }
                }
            }
            Err(MigrateError::Other(format!("table `{table}`: item {key:?} kept changing during apply; run apply again")))
        })
        .await
}

/// Writes every item of the `removed` entities to a JSON-lines file
/// (appending, so a resumed apply keeps what an earlier attempt exported).
pub(crate) async fn export(
    client: &Client,
    plan: &Plan,
    removed: &HashSet<&str>,
    path: &Path,
    segments: u32,
    in_flight: u32,
) -> Result<u64, MigrateError> {
    let io = |e: std::io::Error| MigrateError::Io { path: path.display().to_string(), source: e };
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
    let out = std::sync::Mutex::new(std::io::BufWriter::new(file));
    let entity_attr = plan.to.entities.first().map(|e| e.entity_attr.to_string()).unwrap_or_else(|| "_et".into());
    let count = AtomicU64::new(0);
    let tasks = (0..segments.max(1)).map(|segment| {
        let (out, count, entity_attr) = (&out, &count, &entity_attr);
        async move {
            let mut start = None;
            loop {
                let (items, next) = scan_page(client, &plan.table, segment, segments.max(1), start, None, None).await?;
                for item in items {
                    if matches!(item.get(entity_attr), Some(AttributeValue::S(e)) if removed.contains(e.as_str())) {
                        let json = item_to_json(&item).map_err(|e| MigrateError::Other(format!("export of an item of `{}`: {e}", plan.table)))?;
                        let line = serde_json::to_string(&json).expect("JSON of an item");
                        writeln!(out.lock().expect("export writer"), "{line}").map_err(io)?;
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
                match next {
                    Some(k) => start = Some(k),
                    None => return Ok::<(), MigrateError>(()),
                }
            }
        }
    });
    stream::iter(tasks).buffer_unordered(in_flight.max(1) as usize).try_collect::<()>().await?;
    let mut writer = out.into_inner().expect("export writer");
    writer.flush().map_err(io)?;
    writer.get_ref().sync_all().map_err(io)?;
    Ok(count.into_inner())
}

/// Puts every item of an export file back.
pub(crate) async fn restore(client: &Client, table: &str, path: &Path, observer: &dyn Observer) -> Result<u64, MigrateError> {
    let io = |e: std::io::Error| MigrateError::Io { path: path.display().to_string(), source: e };
    // Counted first, so progress has a true total.
    let total = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?)
        .lines()
        .filter(|l| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
        .count() as u64;
    let file = std::fs::File::open(path).map_err(io)?;
    // One batch at a time: a restore is rare and not worth a table's burst.
    let budget = Budget::new(None, 1);
    let mut batch = Vec::new();
    let mut seen = HashSet::new();
    let mut written = 0;
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| MigrateError::Other(format!("{}:{}: {e}", path.display(), n + 1)))?;
        let item = item_from_json(&value).map_err(|e| MigrateError::Other(format!("{}:{}: {e}", path.display(), n + 1)))?;
        // An export appended by a resumed apply may hold an item twice;
        // one batch may not carry the same item twice.
        if !seen.insert(line) {
            continue;
        }
        batch.push(put_request(item));
        if batch.len() == 25 {
            written += batch.len() as u64;
            batch_write(client, table, std::mem::take(&mut batch), 25.0, &budget).await?;
            observer.event(Event::Progress { scanned: n as u64 + 1, written, total: Some(total) });
        }
    }
    if !batch.is_empty() {
        written += batch.len() as u64;
        let units = batch.len() as f64;
        batch_write(client, table, batch, units, &budget).await?;
    }
    observer.event(Event::Progress { scanned: total, written, total: Some(total) });
    Ok(written)
}
