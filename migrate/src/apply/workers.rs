//! Sharing one migration's scan segments among workers (processes on any
//! number of hosts, or one), with DynamoDB as the coordinator, in the
//! manner of the Kinesis Client Library's lease table.
//!
//! Each segment's checkpoint item is also its lease:
//!
//! | attribute | what |
//! | --- | --- |
//! | `owner` | the worker holding the segment (absent: free) |
//! | `epoch` | raised by one on every take: the fencing token |
//! | `counter` | raised on every take, renewal and checkpoint: liveness |
//! | `heartbeat_ms` | wall-clock time of the last renewal (for `status`, and to find leases a crashed run left) |
//! | `done`, `resume_from` | the checkpoint |
//!
//! Rules, each a conditional write:
//! - a worker *takes* a free segment, or one whose counter did not move
//!   for a whole lease as it watched (or whose heartbeat is a lease
//!   old), on the condition that the counter is still the one it saw;
//! - it *renews* what it holds every third of a lease, and *saves a
//!   checkpoint*, only on the condition that it is still the owner at its
//!   epoch: a worker that was paused past its lease and lost the segment
//!   cannot write either (the fencing token). Its online copies carry the
//!   same condition (a `ConditionCheck` in their transaction), so it
//!   cannot write a data item either;
//! - a worker aims at its share, `ceil(segments left / live workers)`,
//!   and holds no more segments than it keeps requests in flight (more
//!   would wait for a slot while another worker could run them): below
//!   it, it takes free and expired segments first, then steals one
//!   segment per round from the worker holding the most, if that one
//!   holds more than its share (bounded stealing).
//!
//! The lease primitives ([`take_lease`], [`fenced_update`], [`Held`],
//! [`Liveness`]) serve the stream shards of an online apply as well
//! (`online::shards`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem, Update};
use futures::stream::{FuturesUnordered, StreamExt};

use super::state::{Checkpoints, Reserved, SegmentState};
use crate::error::MigrateError;
use crate::raw::RawItem;
use crate::reserved::{checkpoint_sk, layout_sk, CHECKPOINT_PREFIX};
use crate::retry::retrying;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub(crate) fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn num(item: &RawItem, attr: &str) -> Option<u64> {
    item.get(attr).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

/// One segment's checkpoint and lease, as read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LeaseRow {
    pub segment: u32,
    pub total: u32,
    pub state: SegmentState,
    pub owner: Option<String>,
    pub epoch: u64,
    pub counter: u64,
    pub heartbeat_ms: Option<u64>,
}

/// A lease this worker holds: a scan segment, or a stream shard
/// (`online::shards`). Both are checkpoint items in the reserved
/// partition with the same lease attributes; `sk` names the item.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub sk: String,
    /// What is leased, for the logs: "segment", "stream shard".
    pub kind: &'static str,
    pub epoch: u64,
    pub owner: String,
    /// Set when a renewal or a checkpoint found the lease taken.
    pub lost: Arc<AtomicBool>,
}

impl Held {
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// The condition every write of this worker under the lease carries:
    /// still the owner, at the epoch it took the lease in.
    pub fn fence(&self, at: &Reserved) -> Result<ConditionCheck, MigrateError> {
        ConditionCheck::builder()
            .table_name(&at.table)
            .set_key(Some(at.key(&self.sk)))
            .condition_expression("#o = :o AND #e = :e")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#e", "epoch")
            .expression_attribute_values(":o", AttributeValue::S(self.owner.clone()))
            .expression_attribute_values(":e", n(self.epoch))
            .build()
            .map_err(|e| MigrateError::Other(format!("table `{}`: {e}", at.table)))
    }
}

/// Creates a lease item (free, with its checkpoint attributes) unless it
/// exists: whichever worker comes first makes it.
pub(crate) async fn create_lease(at: &Reserved, item: RawItem, what: &'static str) -> Result<(), MigrateError> {
    let result = retrying(|| {
        at.client
            .put_item()
            .table_name(&at.table)
            .set_item(Some(item.clone()))
            .condition_expression("attribute_not_exists(#sk)")
            .expression_attribute_names("#sk", &at.sk_attr)
            .send()
    })
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(()),
        Err(e) => Err(MigrateError::dynamo(what, &at.table, e)),
    }
}

/// Takes the lease of checkpoint item `sk` (not done) whose counter is
/// still `seen.counter`; `None` if another worker moved it first (or
/// `guard`, checked in the same transaction, failed). `kind` names what is
/// leased in the logs ("segment", "stream shard").
///
/// Every take raises the counter and the epoch, and nothing else raises
/// the epoch: while the counter is the one seen, the epoch is too, so the
/// new one is `seen.epoch + 1`.
pub(crate) async fn take_lease(
    at: &Reserved,
    sk: &str,
    seen: Seen,
    me: &str,
    kind: &'static str,
    guard: Option<ConditionCheck>,
) -> Result<Option<Held>, MigrateError> {
    // A checkpoint written before leases existed has no counter: it
    // reads as 0.
    let counter = if seen.counter == 0 { "(#c = :seen OR attribute_not_exists(#c))" } else { "#c = :seen" };
    let epoch = seen.epoch + 1;
    let update = "SET #o = :me, #e = :epoch, #c = :next, #h = :now";
    let condition = format!("attribute_exists(#d) AND #d = :false AND {counter}");
    let names: HashMap<String, String> =
        [("#o", "owner"), ("#e", "epoch"), ("#c", "counter"), ("#h", "heartbeat_ms"), ("#d", "done")].map(|(k, v)| (k.to_string(), v.to_string())).into();
    let values: HashMap<String, AttributeValue> = [
        (":me", AttributeValue::S(me.to_string())),
        (":epoch", n(epoch)),
        (":seen", n(seen.counter)),
        (":next", n(seen.counter + 1)),
        (":now", n(now_ms())),
        (":false", AttributeValue::Bool(false)),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .into();
    let taken = match guard {
        None => {
            let result = retrying(|| {
                at.client
                    .update_item()
                    .table_name(&at.table)
                    .set_key(Some(at.key(sk)))
                    .update_expression(update)
                    .condition_expression(&condition)
                    .set_expression_attribute_names(Some(names.clone()))
                    .set_expression_attribute_values(Some(values.clone()))
                    .send()
            })
            .await;
            match result {
                Ok(_) => true,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => false,
                Err(e) => return Err(MigrateError::dynamo("UpdateItem (take lease)", &at.table, e)),
            }
        }
        // The take and the guard in one transaction.
        Some(guard) => {
            let update = Update::builder()
                .table_name(&at.table)
                .set_key(Some(at.key(sk)))
                .update_expression(update)
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .build()
                .map_err(|e| MigrateError::Other(format!("table `{}`: {e}", at.table)))?;
            let items = vec![TransactWriteItem::builder().update(update).build(), TransactWriteItem::builder().condition_check(guard).build()];
            let result = retrying(|| at.client.transact_write_items().set_transact_items(Some(items.clone())).send()).await;
            match result {
                Ok(_) => true,
                Err(e) if matches!(e.as_service_error(), Some(TransactWriteItemsError::TransactionCanceledException(_))) => false,
                Err(e) => return Err(MigrateError::dynamo("TransactWriteItems (take lease)", &at.table, e)),
            }
        }
    };
    if !taken {
        return Ok(None);
    }
    tracing::info!(table = %at.table, lease = sk, epoch, owner = me, "{kind} lease taken");
    Ok(Some(Held { sk: sk.to_string(), kind, epoch, owner: me.to_string(), lost: Arc::new(AtomicBool::new(false)) }))
}

/// A lease's counter and epoch as read, for [`take_lease`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seen {
    pub counter: u64,
    pub epoch: u64,
}

/// Updates a held lease's item on the condition that this worker still
/// holds it at its epoch (the fencing token); `false` (and the lease
/// marked lost) when another worker took it. `update` may use `#o`,
/// `#e`, `#c`, `#h` and `:zero`, `:one`, `:now` besides `extra` and
/// `names`.
pub(crate) async fn fenced_update(
    at: &Reserved,
    held: &Held,
    update: &str,
    extra: HashMap<String, AttributeValue>,
    names: &[(&str, &str)],
    what: &'static str,
) -> Result<bool, MigrateError> {
    let key = at.key(&held.sk);
    let mut values = HashMap::from([
        (":me".to_string(), AttributeValue::S(held.owner.clone())),
        (":epoch".to_string(), n(held.epoch)),
        (":zero".to_string(), n(0)),
        (":one".to_string(), n(1)),
        (":now".to_string(), n(now_ms())),
    ]);
    values.extend(extra);
    let result = retrying(|| {
        at.client
            .update_item()
            .table_name(&at.table)
            .set_key(Some(key.clone()))
            .update_expression(update)
            .condition_expression("#o = :me AND #e = :epoch")
            .set_expression_attribute_names(Some(names.iter().map(|(k, v)| (k.to_string(), v.to_string())).chain([
                ("#o".to_string(), "owner".to_string()),
                ("#e".to_string(), "epoch".to_string()),
                ("#c".to_string(), "counter".to_string()),
                ("#h".to_string(), "heartbeat_ms".to_string()),
            ]).collect()))
            .set_expression_attribute_values(Some(values.clone()))
            .send()
    })
    .await;
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
            if !held.lost.swap(true, Ordering::SeqCst) {
                tracing::warn!(table = %at.table, lease = %held.sk, epoch = held.epoch, what, "{} lease lost to another worker", held.kind);
            }
            Ok(false)
        }
        Err(e) => Err(MigrateError::dynamo("UpdateItem (lease)", &at.table, e)),
    }
}

/// Renewal: the counter moves, the heartbeat is now.
pub(crate) const RENEW: &str = "SET #c = if_not_exists(#c, :zero) + :one, #h = :now";
/// Release: no owner (taken at once by the next worker that looks).
pub(crate) const RELEASE: &str = "REMOVE #o SET #c = if_not_exists(#c, :zero) + :one, #h = :now";

/// Which leases look expired, from watching their counters: a lease
/// whose counter did not move for a whole lease as this worker watched,
/// or whose heartbeat is a lease (and a second for clock skew) old.
#[derive(Debug, Default)]
pub(crate) struct Liveness {
    /// lease -> (counter, when it was first seen at that value)
    seen: HashMap<String, (u64, Instant)>,
}

impl Liveness {
    pub fn observe(&mut self, id: &str, counter: u64) {
        match self.seen.get(id) {
            Some((c, _)) if *c == counter => {}
            _ => {
                self.seen.insert(id.to_string(), (counter, Instant::now()));
            }
        }
    }

    /// Owned by another worker that looks gone.
    pub fn expired(&self, id: &str, owner: Option<&str>, heartbeat_ms: Option<u64>, me: &str, lease: Duration) -> bool {
        let watched = self.seen.get(id).is_some_and(|(_, since)| since.elapsed() >= lease);
        let stale = heartbeat_ms.is_some_and(|h| now_ms().saturating_sub(h) > lease.as_millis() as u64 + 1000);
        owner.is_some() && owner != Some(me) && (watched || stale)
    }
}

impl Checkpoints {
    /// Every segment's checkpoint and lease.
    pub async fn rows(&self) -> Result<Vec<LeaseRow>, MigrateError> {
        let mut rows = Vec::new();
        for item in self.at.query_prefix(&format!("{CHECKPOINT_PREFIX}{}#", self.migration)).await? {
            let (Some(segment), Some(total)) = (num(&item, "segment"), num(&item, "total_segments")) else { continue };
            rows.push(LeaseRow {
                segment: segment as u32,
                total: total as u32,
                state: SegmentState {
                    done: matches!(item.get("done"), Some(AttributeValue::Bool(true))),
                    resume_from: item.get("resume_from").and_then(|v| v.as_m().ok()).cloned(),
                },
                owner: item.get("owner").and_then(|v| v.as_s().ok()).cloned(),
                epoch: num(&item, "epoch").unwrap_or(0),
                counter: num(&item, "counter").unwrap_or(0),
                heartbeat_ms: num(&item, "heartbeat_ms"),
            });
        }
        rows.sort_by_key(|r| r.segment);
        Ok(rows)
    }

    /// Whether every segment's checkpoint was made ([`init`](Self::init)
    /// finished): workers wait for this, never for the first rows, which
    /// an apply killed while making them would leave incomplete.
    pub async fn laid_out(&self) -> Result<bool, MigrateError> {
        let key = self.at.key(&layout_sk(&self.migration));
        let out = retrying(|| self.at.client.get_item().table_name(&self.at.table).set_key(Some(key.clone())).consistent_read(true).send())
            .await
            .map_err(|e| MigrateError::dynamo("GetItem (segment layout)", &self.at.table, e))?;
        Ok(out.item.is_some())
    }

    /// Creates the checkpoint of every segment that has none (free, at
    /// the start), then the layout mark, so that workers find them all.
    pub async fn init(&self, total: u32) -> Result<(), MigrateError> {
        for segment in 0..total {
            let mut item = self.at.key(&checkpoint_sk(&self.migration, segment));
            item.insert("segment".into(), n(segment as u64));
            item.insert("total_segments".into(), n(total as u64));
            item.insert("done".into(), AttributeValue::Bool(false));
            item.insert("epoch".into(), n(0));
            item.insert("counter".into(), n(0));
            create_lease(&self.at, item, "PutItem (segment lease)").await?;
        }
        let mut mark = self.at.key(&layout_sk(&self.migration));
        mark.insert("total_segments".into(), n(total as u64));
        create_lease(&self.at, mark, "PutItem (segment layout)").await
    }

    /// Takes segment `row` if its lease is still as read; `None` if
    /// another worker moved it first.
    pub async fn take(&self, row: &LeaseRow, me: &str) -> Result<Option<Held>, MigrateError> {
        let seen = Seen { counter: row.counter, epoch: row.epoch };
        take_lease(&self.at, &checkpoint_sk(&self.migration, row.segment), seen, me, "segment", None).await
    }

    /// Renews a held segment; `false` (and the lease marked lost) when
    /// another worker took it.
    pub async fn renew(&self, held: &Held) -> Result<bool, MigrateError> {
        fenced_update(&self.at, held, RENEW, HashMap::new(), &[], "renew segment lease").await
    }

    /// Saves a segment's checkpoint under its lease; `false` (and the
    /// lease marked lost) when another worker took the segment.
    pub async fn save_fenced(&self, held: &Held, state: &SegmentState) -> Result<bool, MigrateError> {
        let mut values = HashMap::from([(":done".to_string(), AttributeValue::Bool(state.done)), (":saved".to_string(), n(now_ms()))]);
        let update = match &state.resume_from {
            Some(key) => {
                values.insert(":from".into(), AttributeValue::M(key.clone()));
                "SET #c = if_not_exists(#c, :zero) + :one, #h = :now, done = :done, resume_from = :from, saved_at_ms = :saved"
            }
            None => "SET #c = if_not_exists(#c, :zero) + :one, #h = :now, done = :done, saved_at_ms = :saved REMOVE resume_from",
        };
        fenced_update(&self.at, held, update, values, &[], "save checkpoint").await
    }

    /// Gives a held segment up, so another worker (or this apply run
    /// again) takes it at once instead of after a lease.
    pub async fn release(&self, held: &Held) -> Result<bool, MigrateError> {
        fenced_update(&self.at, held, RELEASE, HashMap::new(), &[], "release segment lease").await
    }
}

/// How a worker shares segments.
#[derive(Debug, Clone)]
pub(crate) struct Sharing {
    /// This worker's name (unique among the workers).
    pub me: String,
    /// A lease not renewed for this long is taken over.
    pub lease: Duration,
    /// Segments held at once at most: the requests this worker keeps in
    /// flight (a segment more would only wait for a slot, while another
    /// worker could run it).
    pub max_held: usize,
}

/// How a segment's work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegmentEnd {
    Done,
    /// The lease went to another worker; it goes on from the checkpoint.
    Lost,
}

/// Runs `work` for segments of the migration, shared with every other
/// worker running this same loop, until every segment is done. `work`
/// gets the lease and must save checkpoints with
/// [`Checkpoints::save_fenced`], stopping when it returns `false`.
/// `on_workers` hears how many workers are live (for the write budget).
pub(crate) async fn share<F, Fut>(cp: &Checkpoints, sharing: &Sharing, work: F, on_workers: impl Fn(usize)) -> Result<(), MigrateError>
where
    F: FnMut(Held, LeaseRow) -> Fut,
    Fut: Future<Output = Result<SegmentEnd, MigrateError>>,
{
    let mut held: HashMap<u32, Held> = HashMap::new();
    let result = share_loop(cp, sharing, work, on_workers, &mut held).await;
    if result.is_err() {
        // Stopped early (an error, Ctrl-C): the segments go back at once.
        for h in held.values().filter(|h| !h.is_lost()) {
            let _ = cp.release(h).await;
        }
    }
    result
}

async fn share_loop<F, Fut>(
    cp: &Checkpoints,
    sharing: &Sharing,
    mut work: F,
    on_workers: impl Fn(usize),
    held: &mut HashMap<u32, Held>,
) -> Result<(), MigrateError>
where
    F: FnMut(Held, LeaseRow) -> Fut,
    Fut: Future<Output = Result<SegmentEnd, MigrateError>>,
{
    // Renewals every third of a lease; a look for work to take twice a
    // second at most, so that a worker joining or a segment ending is
    // noticed soon.
    let renew_every = sharing.lease / 3;
    let tick = renew_every.min(Duration::from_millis(500));
    let mut renewed = Instant::now();
    let me = sharing.me.as_str();
    // The first error of a segment: returned once the others stopped.
    let mut failed: Option<MigrateError> = None;
    let mut liveness = Liveness::default();
    let mut tasks = FuturesUnordered::new();
    let mut last_workers = 0;
    loop {
        if renewed.elapsed() >= renew_every {
            renewed = Instant::now();
            for h in held.values() {
                if !h.is_lost() {
                    cp.renew(h).await?;
                }
            }
        }
        if let Some(e) = failed.take() {
            if tasks.is_empty() {
                return Err(e);
            }
            failed = Some(e);
        }
        let rows = cp.rows().await?;
        let left: Vec<&LeaseRow> = rows.iter().filter(|r| !r.state.done).collect();
        if left.is_empty() && tasks.is_empty() {
            return Ok(());
        }
        for r in &rows {
            liveness.observe(&r.segment.to_string(), r.counter);
        }
        let expired = |r: &LeaseRow| liveness.expired(&r.segment.to_string(), r.owner.as_deref(), r.heartbeat_ms, me, sharing.lease);
        let mut owners: HashMap<&str, Vec<&LeaseRow>> = HashMap::new();
        for r in &left {
            if let Some(o) = r.owner.as_deref() {
                if !expired(r) && o != me {
                    owners.entry(o).or_default().push(r);
                }
            }
        }
        let workers = owners.len() + 1;
        if workers != last_workers {
            tracing::info!(table = %cp.at.table, workers, segments_left = left.len(), "live workers");
            on_workers(workers);
            last_workers = workers;
        }
        // After a failure no segment is taken; the running ones end at
        // their next page boundary (as Ctrl-C stops them, or on their own).
        let share = if failed.is_some() { 0 } else { left.len().div_ceil(workers).min(sharing.max_held.max(1)) };
        let mine = |held: &HashMap<u32, Held>| held.values().filter(|h| !h.is_lost()).count();
        // Free and expired segments first.
        let takeable: Vec<&LeaseRow> = left.iter().copied().filter(|r| (r.owner.is_none() || expired(r)) && !held.contains_key(&r.segment)).collect();
        for r in takeable {
            if mine(held) >= share {
                break;
            }
            if let Some(h) = cp.take(r, me).await? {
                held.insert(r.segment, h.clone());
                tasks.push(run_one(h, r.clone(), &mut work));
            }
        }
        // Then one segment from the busiest worker, if it holds more than
        // its share.
        if mine(held) < share {
            if let Some((owner, theirs)) = owners.iter().max_by_key(|(_, v)| v.len()) {
                if theirs.len() > share {
                    let r = theirs[0];
                    if let Some(h) = cp.take(r, me).await? {
                        tracing::info!(table = %cp.at.table, segment = r.segment, from = owner, "segment stolen to balance the workers");
                        held.insert(r.segment, h.clone());
                        tasks.push(run_one(h, r.clone(), &mut work));
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            Some(result) = tasks.next(), if !tasks.is_empty() => {
                let (segment, end) = result;
                match end {
                    Ok(_) => {
                        held.remove(&segment);
                    }
                    // Kept, so that it is released when the worker stops.
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
        }
    }
}

fn run_one<F, Fut>(held: Held, row: LeaseRow, work: &mut F) -> impl Future<Output = (u32, Result<SegmentEnd, MigrateError>)>
where
    F: FnMut(Held, LeaseRow) -> Fut,
    Fut: Future<Output = Result<SegmentEnd, MigrateError>>,
{
    let segment = row.segment;
    let fut = work(held, row);
    async move { (segment, fut.await) }
}

/// A worker name unique among processes and hosts: `base` plus random
/// bits.
pub(crate) fn worker_name(base: &str) -> String {
    format!("{base} #{:08x}", fastrand::u32(..))
}
