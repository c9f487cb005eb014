//! Sharing the stream's shards among workers, as the backfill shares its
//! scan segments (`apply::workers`): each shard's checkpoint item is also
//! its lease.
//!
//! | attribute | what |
//! | --- | --- |
//! | `shard`, `parent` | the shard and its parent in the stream's lineage |
//! | `position` | where its replay resumes: `after:<sequence>`, or `done`; absent: the shard's start (TRIM_HORIZON) |
//! | `done` | read to its end (the shard closed) |
//! | `owner`, `epoch`, `counter`, `heartbeat_ms` | the lease, as a segment's |
//! | `at_head`, `lag_ms`, `saved_at_ms` | how its replay stands (the coordinator's catch-up, `migrate status`) |
//!
//! Rules:
//! - whoever lists a shard first (DescribeStream) makes its item, free;
//! - a worker takes a free or expired shard only while the online apply
//!   is in expand and not draining (checked in the take's transaction),
//!   and only once its parent is done
//!   (or gone past the stream's retention): one item's changes lie along
//!   one lineage, so reading parents before children keeps them in order
//!   across workers as within one;
//! - it aims at its share, `ceil(ready shards / live workers)`, takes free
//!   and expired shards first, then steals one from the busiest worker
//!   above its share;
//! - every replay write for a shard is a transaction that checks the
//!   lease (owner and epoch: the fencing token), and so is every position
//!   saved: a worker paused past its lease that wakes up writes neither a
//!   data item nor a checkpoint of the shard;
//! - at cut-over the coordinator marks the online state `draining`;
//!   workers give their shards back and stop; the coordinator takes every
//!   shard at once (a worker still writing is fenced off by the take) and
//!   drains alone, then gives them back.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck};

use super::state;
use super::stream::{ShardPosition, StreamTail};
use crate::apply::state::Reserved;
use crate::apply::workers::{create_lease, fenced_update, n, now_ms, num, take_lease, Held, Liveness, Seen, RELEASE};
use crate::error::MigrateError;
use crate::raw::RawItem;
use crate::reserved::CHECKPOINT_PREFIX;

/// Looks at the shard leases at most this often (and renews every third
/// of a lease).
const LOOK_EVERY: Duration = Duration::from_millis(500);

fn text<'a>(item: &'a RawItem, attr: &str) -> Option<&'a str> {
    item.get(attr).and_then(|v| v.as_s().ok()).map(String::as_str)
}

pub(crate) fn shard_sk(migration: &str, shard: &str) -> String {
    format!("{CHECKPOINT_PREFIX}{migration}#shard#{shard}")
}

fn position_text(position: &ShardPosition) -> String {
    match position {
        ShardPosition::After(seq) => format!("after:{seq}"),
        ShardPosition::Done => "done".to_string(),
    }
}

fn parse_position(text: &str) -> ShardPosition {
    match text.strip_prefix("after:") {
        Some(seq) => ShardPosition::After(seq.to_string()),
        None => ShardPosition::Done,
    }
}

/// One shard's checkpoint and lease, as read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ShardRow {
    pub shard: String,
    pub parent: Option<String>,
    /// `None`: from the shard's start.
    pub position: Option<ShardPosition>,
    pub done: bool,
    pub owner: Option<String>,
    pub epoch: u64,
    pub counter: u64,
    pub heartbeat_ms: Option<u64>,
    /// Its owner last read it to its end.
    pub at_head: bool,
}

impl ShardRow {
    fn seen(&self) -> Seen {
        Seen { counter: self.counter, epoch: self.epoch }
    }
}

/// Every shard's checkpoint and lease of `migration`.
pub(crate) async fn rows(at: &Reserved, migration: &str) -> Result<Vec<ShardRow>, MigrateError> {
    let mut rows = Vec::new();
    for item in at.query_prefix(&shard_sk(migration, "")).await? {
        let Some(shard) = text(&item, "shard") else { continue };
        let position = text(&item, "position").map(parse_position);
        rows.push(ShardRow {
            shard: shard.to_string(),
            parent: text(&item, "parent").map(str::to_string),
            done: matches!(item.get("done"), Some(AttributeValue::Bool(true))) || position == Some(ShardPosition::Done),
            position,
            owner: text(&item, "owner").map(str::to_string),
            epoch: num(&item, "epoch").unwrap_or(0),
            counter: num(&item, "counter").unwrap_or(0),
            heartbeat_ms: num(&item, "heartbeat_ms"),
            at_head: matches!(item.get("at_head"), Some(AttributeValue::Bool(true))),
        });
    }
    rows.sort_by(|a, b| a.shard.cmp(&b.shard));
    Ok(rows)
}

/// Where the replay resumes in each shard read from (contract reads the
/// stream on from there). Shards absent start at TRIM_HORIZON.
pub(crate) async fn positions(at: &Reserved, migration: &str) -> Result<HashMap<String, ShardPosition>, MigrateError> {
    Ok(rows(at, migration).await?.into_iter().filter_map(|r| Some((r.shard, r.position?))).collect())
}

/// The shards whose replay may run: not done, and the parent done or
/// unknown (past retention). Parents first, so a taker favours them.
pub(crate) fn ready(rows: &[ShardRow]) -> Vec<&ShardRow> {
    let by_id: HashMap<&str, &ShardRow> = rows.iter().map(|r| (r.shard.as_str(), r)).collect();
    rows.iter()
        .filter(|r| !r.done)
        .filter(|r| r.parent.as_deref().and_then(|p| by_id.get(p)).map_or(true, |p| p.done))
        .collect()
}

/// The shard leases one worker holds, and its view of the others'.
#[derive(Debug)]
pub(crate) struct ShardLeases {
    at: Reserved,
    migration: String,
    me: String,
    lease: Duration,
    held: HashMap<String, Held>,
    liveness: Liveness,
    registered: HashSet<String>,
    renewed: Instant,
    looked: Option<Instant>,
    /// As of the last look: every ready shard has a live owner, and every
    /// other owner last said it read its shards to their end.
    others_at_head: bool,
    last_workers: usize,
}

impl ShardLeases {
    pub fn new(at: Reserved, migration: String, me: String, lease: Duration) -> Self {
        ShardLeases {
            at,
            migration,
            me,
            lease,
            held: HashMap::new(),
            liveness: Liveness::default(),
            registered: HashSet::new(),
            renewed: Instant::now(),
            looked: None,
            others_at_head: false,
            last_workers: 0,
        }
    }

    /// Whether this worker holds `shard`.
    pub fn holds(&self, shard: &str) -> bool {
        self.held.get(shard).is_some_and(|h| !h.is_lost())
    }

    /// The other workers' shards were at their head as of the last look.
    pub fn others_at_head(&self) -> bool {
        self.others_at_head
    }

    /// The fence of every shard held.
    pub fn fences(&self) -> Result<HashMap<String, ConditionCheck>, MigrateError> {
        self.held.iter().filter(|(_, h)| !h.is_lost()).map(|(id, h)| Ok((id.clone(), h.fence(&self.at)?))).collect()
    }

    /// A write for `shard` was refused by its fence: another worker has it.
    pub fn lost(&mut self, shard: &str, tail: &mut StreamTail) {
        if let Some(h) = self.held.remove(shard) {
            tracing::warn!(table = %self.at.table, shard, epoch = h.epoch, "stream shard lease lost to another worker; its replay writes were refused");
        }
        tail.unhold(shard);
    }

    /// Takes `r` (as read: its counter still the one seen) while the
    /// online apply is in expand and not draining, checked in the same
    /// transaction: once cut-over began no worker takes a shard, even one
    /// that was paused between reading the state and taking. `None` when
    /// another worker moved the shard first, or cut-over began.
    async fn take(&self, r: &ShardRow) -> Result<Option<Held>, MigrateError> {
        let guard = state::expanding(&self.at, &self.migration)?;
        take_lease(&self.at, &shard_sk(&self.migration, &r.shard), r.seen(), &self.me, "stream shard", Some(guard)).await
    }

    /// Makes the item of every listed shard that has none, free.
    async fn register(&mut self, listed: Vec<(String, Option<String>)>) -> Result<(), MigrateError> {
        for (shard, parent) in listed {
            if self.registered.contains(&shard) {
                continue;
            }
            let mut item = self.at.key(&shard_sk(&self.migration, &shard));
            item.insert("shard".into(), AttributeValue::S(shard.clone()));
            if let Some(p) = &parent {
                item.insert("parent".into(), AttributeValue::S(p.clone()));
            }
            item.insert("done".into(), AttributeValue::Bool(false));
            item.insert("epoch".into(), n(0));
            item.insert("counter".into(), n(0));
            create_lease(&self.at, item, "PutItem (stream shard lease)").await?;
            self.registered.insert(shard);
        }
        Ok(())
    }

    /// Renews the leases held when due (with whether this worker is at the
    /// head of its shards), and at most every [`LOOK_EVERY`] looks at all
    /// of them: registers new shards, notices leases lost, takes its share.
    /// The tail learns what to read.
    pub async fn tick(&mut self, tail: &mut StreamTail, at_head: bool) -> Result<(), MigrateError> {
        self.renew_due(tail, at_head).await?;
        if self.looked.is_some_and(|at| at.elapsed() < LOOK_EVERY) {
            return Ok(());
        }
        self.look(tail).await
    }

    /// Renews every lease held, every third of a lease.
    async fn renew_due(&mut self, tail: &mut StreamTail, at_head: bool) -> Result<(), MigrateError> {
        if self.renewed.elapsed() >= self.lease / 3 {
            self.renewed = Instant::now();
            let values = HashMap::from([(":ah".to_string(), AttributeValue::Bool(at_head))]);
            let ids: Vec<String> = self.held.keys().cloned().collect();
            for id in ids {
                let h = &self.held[&id];
                if !fenced_update(&self.at, h, "SET #c = if_not_exists(#c, :zero) + :one, #h = :now, at_head = :ah", values.clone(), &[], "renew stream shard lease").await? {
                    self.held.remove(&id);
                    tail.unhold(&id);
                }
            }
        }
        Ok(())
    }

    async fn look(&mut self, tail: &mut StreamTail) -> Result<(), MigrateError> {
        self.looked = Some(Instant::now());
        self.register(tail.listed()).await?;
        let rows = rows(&self.at, &self.migration).await?;
        for r in &rows {
            self.liveness.observe(&r.shard, r.counter);
        }
        // Held here, taken there (a renewal may not have told yet).
        for r in &rows {
            if let Some(h) = self.held.get(&r.shard) {
                if r.owner.as_deref() != Some(self.me.as_str()) || r.epoch != h.epoch || r.done {
                    self.held.remove(&r.shard);
                    tail.unhold(&r.shard);
                }
            }
        }
        let (me, lease) = (self.me.as_str(), self.lease);
        let expired = |r: &ShardRow| self.liveness.expired(&r.shard, r.owner.as_deref(), r.heartbeat_ms, me, lease);
        let ready = ready(&rows);
        let mut owners: HashMap<&str, Vec<&ShardRow>> = HashMap::new();
        for r in &ready {
            if let Some(o) = r.owner.as_deref() {
                if o != me && !expired(r) {
                    owners.entry(o).or_default().push(r);
                }
            }
        }
        let workers = owners.len() + 1;
        if workers != self.last_workers {
            tracing::info!(table = %self.at.table, workers, shards_ready = ready.len(), "stream shards: live workers");
            self.last_workers = workers;
        }
        let share = ready.len().div_ceil(workers);
        let takeable: Vec<&ShardRow> = ready.iter().copied().filter(|r| (r.owner.is_none() || expired(r)) && !self.held.contains_key(&r.shard)).collect();
        let mut taken = Vec::new();
        for r in takeable {
            if self.held.len() + taken.len() >= share {
                break;
            }
            if let Some(h) = self.take(r).await? {
                taken.push((r.clone(), h));
            }
        }
        if self.held.len() + taken.len() < share {
            if let Some((owner, theirs)) = owners.iter().max_by_key(|(_, v)| v.len()) {
                if theirs.len() > share {
                    let r = theirs[0];
                    if let Some(h) = self.take(r).await? {
                        tracing::info!(table = %self.at.table, shard = %r.shard, from = owner, "stream shard stolen to balance the workers");
                        taken.push((r.clone(), h));
                    }
                }
            }
        }
        let taken_ids: HashSet<String> = taken.iter().map(|(r, _)| r.shard.clone()).collect();
        for (r, h) in taken {
            tail.hold(&r.shard, r.position.as_ref());
            self.held.insert(r.shard.clone(), h);
        }
        // No shard known yet (the stream not listed yet): not at its head.
        self.others_at_head = !rows.is_empty()
            && ready
            .iter()
            .filter(|r| !self.held.contains_key(&r.shard) && !taken_ids.contains(&r.shard))
            .all(|r| r.owner.as_deref().is_some_and(|o| o != me) && !expired(r) && r.at_head);
        Ok(())
    }

    /// The drain: takes every shard not done, whoever holds it (a worker
    /// still replaying is fenced off from then on), registering the ones
    /// listed since. Called every drain round, so a shard listed late is
    /// taken too.
    pub async fn take_all(&mut self, tail: &mut StreamTail) -> Result<(), MigrateError> {
        self.renew_due(tail, false).await?;
        self.register(tail.listed()).await?;
        for _ in 0..20 {
            let rows = rows(&self.at, &self.migration).await?;
            let mut missed = 0;
            for r in rows.iter().filter(|r| !r.done) {
                let mine = self.held.get(&r.shard).is_some_and(|h| r.owner.as_deref() == Some(self.me.as_str()) && r.epoch == h.epoch);
                if mine {
                    continue;
                }
                match take_lease(&self.at, &shard_sk(&self.migration, &r.shard), r.seen(), &self.me, "stream shard", None).await? {
                    Some(h) => {
                        tail.hold(&r.shard, r.position.as_ref());
                        self.held.insert(r.shard.clone(), h);
                    }
                    None => missed += 1,
                }
            }
            if missed == 0 {
                return Ok(());
            }
            // A worker renewed or saved in between: read again.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(MigrateError::Other(format!("table `{}`: could not take the stream shards for the drain; other workers kept moving them", self.at.table)))
    }

    /// Saves where the replay stands in `shard`, under its lease; `false`
    /// (the lease dropped, the tail told) when another worker has it.
    pub async fn save(&mut self, tail: &mut StreamTail, shard: &str, position: &ShardPosition, lag: Option<f64>, at_head: bool) -> Result<bool, MigrateError> {
        let Some(h) = self.held.get(shard) else { return Ok(false) };
        let done = *position == ShardPosition::Done;
        let mut values = HashMap::from([
            (":p".to_string(), AttributeValue::S(position_text(position))),
            (":d".to_string(), AttributeValue::Bool(done)),
            (":saved".to_string(), n(now_ms())),
            (":ah".to_string(), AttributeValue::Bool(at_head)),
        ]);
        let mut update = "SET #c = if_not_exists(#c, :zero) + :one, #h = :now, #pos = :p, done = :d, saved_at_ms = :saved, at_head = :ah".to_string();
        if let Some(lag) = lag {
            values.insert(":lag".into(), n((lag * 1000.0) as u64));
            update.push_str(", lag_ms = :lag");
        }
        let saved = fenced_update(&self.at, h, &update, values, &[("#pos", "position")], "save stream position").await?;
        if !saved || done {
            // Done: nobody takes it again, and it needs no renewal.
            self.held.remove(shard);
            if !saved {
                tail.unhold(shard);
            }
        }
        Ok(saved)
    }

    /// Gives every shard held back (the worker stops, or the drain ended).
    pub async fn release_all(&mut self, tail: &mut StreamTail) -> Result<(), MigrateError> {
        for (id, h) in std::mem::take(&mut self.held) {
            fenced_update(&self.at, &h, RELEASE, HashMap::new(), &[], "release stream shard lease").await?;
            tail.unhold(&id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::online::state::OnlineState;
    use crate::online::Phase;
    use singletable::{Table, TableDesign};

    #[derive(singletable::Item)]
    #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
    struct User {
        org: String,
        id: String,
    }

    /// A worker takes a free shard while the apply expands, and none once
    /// the coordinator marked the state draining (a worker paused between
    /// reading the state and taking cannot take one after cut-over began:
    /// the take's transaction checks the state).
    #[tokio::test]
    async fn no_shard_is_taken_once_the_coordinator_drains() {
        let client = singletable_tests::client().await;
        let name = singletable_tests::unique_table_name("shard-take");
        Table::new(client.clone(), TableDesign::new(&name).entity::<User>().build().unwrap()).create_table().await.unwrap();
        let at = Reserved { client: client.clone(), table: name.clone(), pk_attr: "pk".into(), sk_attr: "sk".into() };
        let online = OnlineState { migration: "m".into(), phase: Phase::Expand, stream_arn: "arn".into(), requested: None, own_stream: true, draining: false };
        state::save(&at, &online).await.unwrap();
        let mut worker = ShardLeases::new(at.clone(), "m".into(), "worker #1".into(), Duration::from_secs(2));
        worker.register(vec![("s1".into(), None), ("s2".into(), Some("s1".into()))]).await.unwrap();
        let all = rows(&at, "m").await.unwrap();
        let held = worker.take(&all[0]).await.unwrap().expect("taken while expanding");
        assert_eq!(held.epoch, 1);
        state::set_draining(&at).await.unwrap();
        assert!(worker.take(&all[1]).await.unwrap().is_none(), "taken while draining");
        let after = rows(&at, "m").await.unwrap();
        assert_eq!(after[1].owner, None);
        // Nor after cut-over.
        state::save(&at, &OnlineState { phase: Phase::CutOver, ..online }).await.unwrap();
        assert!(worker.take(&after[1]).await.unwrap().is_none(), "taken after cut-over");
        singletable_tests::delete_table(&client, &name).await;
    }

    fn row(shard: &str, parent: Option<&str>, done: bool) -> ShardRow {
        ShardRow {
            shard: shard.into(),
            parent: parent.map(Into::into),
            position: done.then_some(ShardPosition::Done),
            done,
            owner: None,
            epoch: 0,
            counter: 0,
            heartbeat_ms: None,
            at_head: false,
        }
    }

    #[test]
    fn a_child_shard_is_ready_only_once_its_parent_is_done() {
        let ids = |rows: &[ShardRow]| ready(rows).iter().map(|r| r.shard.clone()).collect::<Vec<_>>();
        // a -> b -> c, and d whose parent is past retention (no item).
        let rows = vec![row("a", None, false), row("b", Some("a"), false), row("c", Some("b"), false), row("d", Some("gone"), false)];
        assert_eq!(ids(&rows), ["a", "d"]);
        let rows = vec![row("a", None, true), row("b", Some("a"), false), row("c", Some("b"), false), row("d", Some("gone"), false)];
        assert_eq!(ids(&rows), ["b", "d"]);
        let rows = vec![row("a", None, true), row("b", Some("a"), true), row("c", Some("b"), false), row("d", Some("gone"), true)];
        assert_eq!(ids(&rows), ["c"]);
    }
}
