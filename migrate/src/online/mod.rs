//! The online apply: moving a table to a new key design while the
//! application keeps writing, with no acknowledged write lost, no delete
//! undone and no item left behind.
//!
//! # Phases
//!
//! | phase | what runs | the truth | what is guaranteed |
//! | --- | --- | --- | --- |
//! | **expand** ([`Migrator::start_online`]) | the stream is turned on (NEW_AND_OLD_IMAGES) before the first page is read; the backfill copies every old-form item to its new form, keeping the old; the replay carries every change to an old-form item over to its new form | the old form: the application (old version) writes it | a copy never overwrites a newer write and never brings back a deleted item (each copy is a transaction: put the new form if absent, check the old form still exists); the replay applies each item's changes in the stream's per-item order |
//! | **catch-up** ([`OnlineMigration::wait_caught_up`]) | the replay runs until it has read every shard to its end | the old form | after the backfill finished and the replay caught up, every new form equals what its old form renders, up to the replay lag |
//! | **cut-over** ([`OnlineMigration::cutover`]) | called once the application has stopped writing the old form (the old version is stopped, the new one not yet writing): the replay drains to the end of every shard, the content is verified, the new design is recorded | from here on, the new form: start the new version | every new form equals its old form, attribute for attribute, and no new form lacks an old one (else cut-over fails, naming the items, and nothing is recorded) |
//! | **contract** ([`OnlineMigration::complete`]) | the phase becomes `contract` and the apply waits [`PHASE_SETTLE`](singletable::reserved::PHASE_SETTLE) (migrating tables stop writing old forms); then old forms (and items of removed entities, exported first) are deleted, each only if it still holds what the contract's scan read (up to 25 in a transaction); removed indexes go; the final verification runs; checkpoints, state and lock are removed | the new form | a write that reached an old form alone after cut-over (an old instance not stopped) is never deleted: the stream from the cut-over drain's position names it (read before the deletes and after them; one deleted meanwhile is put back), and the item stays, named in the error; migrating tables' writes (both forms, a fresh token) go ahead |
//!
//! With migrate-on-read ([`singletable::MigratingTable`]) the new version
//! runs from before the apply starts: it writes both forms (stamped with
//! a write token the replay respects) until contract, so the old version
//! can stop at any time before cut-over and cut-over needs no write pause.
//!
//! Every phase is resumable: a killed apply started again with the same
//! plan finds its phase in the table (`#ONLINE` in the reserved
//! partition), its scan checkpoints and its replay position in every
//! shard, and goes on from there. Re-copying and re-replaying are
//! harmless: the copy's conditions and the replay's order make both
//! idempotent.
//!
//! What the write pause at cut-over costs: from the moment the old version
//! stops writing until [`cutover`](OnlineMigration::cutover) returns (the
//! drain and a verification scan); on DynamoDB Local about the scan's
//! length.

mod check;
mod contract;
mod guard;
mod replay;
mod shards;
mod state;
pub(crate) mod stream;
mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;

pub use check::ContentReport;
pub use state::Phase;

use crate::apply::backfill::{self, Mode};
use crate::apply::state::{Lease, Reserved};
use crate::apply::write::Budget;
use crate::apply::{schema, verify, ApplyOptions, ApplyReport, Event, Migrator, Observer, Prepared};
use crate::decide::Rules;
use crate::error::MigrateError;
use crate::plan::{Change, Plan};
use crate::reserved::{is_reserved_in, record_design};
use crate::retry::retrying;
use crate::apply::workers::worker_name;
use shards::ShardLeases;
use state::OnlineState;
use stream::StreamTail;

/// How the replay is doing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayStatus {
    /// Stream records read so far.
    pub records: u64,
    /// Writes the replay made to new forms.
    pub written: u64,
    /// Changes not carried over because a migrating table wrote the new
    /// form after them (see `singletable::MigratingTable`).
    pub superseded: u64,
    /// The last round found no record in any shard.
    pub caught_up: bool,
    /// Seconds between a change and its replay, over the records replayed
    /// so far, from the records' ApproximateCreationDateTime: median and
    /// 99th percentile. The service rounds that time down to the second,
    /// so each figure is high by up to a second; DynamoDB Local rounds it
    /// to the minute, which makes these figures meaningless there (the
    /// benchmark measures lag from the writers' side instead).
    pub lag_p50: f64,
    /// See [`lag_p50`](Self::lag_p50).
    pub lag_p99: f64,
}

/// What cut-over did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CutoverReport {
    /// Stream records replayed during the drain.
    pub drained: u64,
    /// The content check.
    pub content: ContentReport,
    /// How long cut-over took (the drain, the check, recording the design).
    pub took: Duration,
}

/// What the replay task shares with the handle.
#[derive(Debug, Default)]
struct Shared {
    counters: replay::Counters,
    caught_up: AtomicBool,
    /// Drain: stop after reading every shard to its end.
    drain: AtomicBool,
    /// The replay is behind (a shard had a full page waiting, or the last
    /// round took long): the backfill waits.
    behind: AtomicBool,
    lags: Mutex<Vec<f64>>,
}

/// An online apply in progress; see the module docs for its phases.
pub struct OnlineMigration {
    client: Client,
    /// For the replay, started again by a rollback.
    streams: aws_sdk_dynamodbstreams::Client,
    plan: Arc<Plan>,
    opts: ApplyOptions,
    observer: Arc<dyn Observer>,
    at: Reserved,
    migration: String,
    phase: Phase,
    lease: Option<Lease>,
    shared: Arc<Shared>,
    backfill: Option<tokio::task::JoinHandle<Result<ApplyReport, MigrateError>>>,
    replay: Option<tokio::task::JoinHandle<Result<(), MigrateError>>>,
    report: ApplyReport,
    /// Nothing left to do (the plan was applied before).
    done: bool,
    /// Steps before the phases, for numbering.
    step_base: usize,
}

/// A replay round taking longer than this means the replay is behind the
/// application: the backfill waits (see `Shared::behind`).
const BEHIND_AFTER_MS: u64 = 300;

/// Steps of the phases: copy + replay, cut-over, contract.
const PHASE_STEPS: usize = 3;

fn schema_steps(plan: &Plan) -> usize {
    plan.changes.iter().filter(|c| matches!(c, Change::CreateIndex { .. } | Change::UpdateTtl { .. } | Change::UpdatePointInTimeRecovery { .. })).count()
}

impl std::fmt::Debug for OnlineMigration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnlineMigration").field("table", &self.plan.table).field("phase", &self.phase).finish_non_exhaustive()
    }
}

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl Migrator {
    /// Starts (or resumes) the online apply of `plan`: takes the lock,
    /// makes the schema changes that add (indexes, settings), turns the
    /// stream on, then runs the backfill and the stream replay in the
    /// background. Needs a DynamoDB Streams client ([`Migrator::with_streams`]).
    ///
    /// Resuming: when the table holds the state of an online apply of this
    /// same plan, it goes on in the phase it reached (its lock must have
    /// expired or be this owner's).
    pub async fn start_online(&self, plan: &Plan, opts: &ApplyOptions, observer: Arc<dyn Observer>) -> Result<OnlineMigration, MigrateError> {
        let observer = crate::apply::Traced::wrap(&plan.table, observer);
        let streams = self.streams.clone().ok_or_else(|| {
            MigrateError::Other("an online apply reads the table's stream: give the Migrator a DynamoDB Streams client (Migrator::with_streams)".into())
        })?;
        if plan.changes.iter().any(|c| matches!(c, Change::CopyToNewTable { .. } | Change::CreateTable { .. })) {
            return Err(MigrateError::Other(format!(
                "table `{}`: this plan creates or copies a table; there is no live table to migrate online: apply it without --online",
                plan.table
            )));
        }
        let at = Reserved { client: self.client.clone(), table: plan.table.clone(), pk_attr: plan.to.pk_attr.clone(), sk_attr: plan.to.sk_attr.clone() };
        let saved = state::load(&at).await?;
        let migration_of_plan = crate::apply::migration_id(plan, &{
            let mut d = plan.defaults()?;
            d.extend(opts.defaults.clone());
            d
        });
        let resuming = match &saved {
            Some(s) if s.migration == migration_of_plan => true,
            Some(s) => {
                return Err(MigrateError::Other(format!(
                    "table `{}`: another online migration ({}) is in progress, in phase {:?}; finish it first",
                    plan.table, s.migration, s.phase
                )))
            }
            None => false,
        };
        let Prepared { opts, checkpoints, already_applied, live, .. } = self.prepare(plan, opts, &*observer, Some(resuming)).await?;
        if already_applied && !resuming {
            // Run again after it completed (or was killed as it finished):
            // the table records this plan's design and holds no online
            // state, so the contract is done too.
            if let Some(owner) = Lease::clear_expired(&at).await? {
                observer.event(Event::Warning(format!("removed the expired lock of an apply by `{owner}` that stopped after its last step")));
            }
            let warning = format!("table `{}` already records this plan's design: the plan was applied; nothing to do", plan.table);
            observer.event(Event::Warning(warning.clone()));
            return Ok(OnlineMigration {
                client: self.client.clone(),
                streams: streams.clone(),
                plan: Arc::new(plan.clone()),
                opts: opts.clone(),
                observer,
                at,
                migration: checkpoints.migration.clone(),
                phase: Phase::CutOver,
                lease: None,
                shared: Arc::new(Shared::default()),
                backfill: None,
                replay: None,
                report: ApplyReport { warnings: vec![warning], ..ApplyReport::default() },
                done: true,
                step_base: 0,
            });
        }
        let lease = Lease::acquire(&at, &opts.owner, opts.lease).await?;
        let migration = checkpoints.migration.clone();
        let mut report = ApplyReport { resumed: resuming, ..ApplyReport::default() };

        let state = match saved {
            Some(s) => {
                observer.event(Event::Warning(format!("resuming the online apply of table `{}` in phase {:?}", plan.table, s.phase)));
                if s.draining {
                    // Killed during a cut-over's drain: expand again.
                    state::save(&at, &OnlineState { draining: false, ..s.clone() }).await?;
                }
                s
            }
            None => {
                // Additive schema changes first: the backfill writes the
                // new indexes' keys. Removals wait for contract.
                let steps: Vec<&Change> = plan
                    .changes
                    .iter()
                    .filter(|c| matches!(c, Change::CreateIndex { .. } | Change::UpdateTtl { .. } | Change::UpdatePointInTimeRecovery { .. }))
                    .collect();
                debug_assert_eq!(steps.len(), schema_steps(plan));
                for (i, change) in steps.iter().enumerate() {
                    observer.event(Event::Step { number: i + 1, total: steps.len() + PHASE_STEPS + 1, text: describe_step(change) });
                    match change {
                        Change::CreateIndex { index, .. } => schema::create_index(&self.client, &plan.table, index).await?,
                        other => schema::apply_setting(&self.client, &plan.table, other, &mut report, &*observer).await?,
                    }
                }
                observer.event(Event::Step {
                    number: steps.len() + 1,
                    total: steps.len() + PHASE_STEPS + 1,
                    text: "turn the table's stream on (changes from now on are captured)".into(),
                });
                let stream_arn = stream::enable(&self.client, &streams, &plan.table).await?;
                // Turned on for the migration: turned off again at the end
                // unless the new design asks for a stream.
                let own_stream = live.stream.is_none();
                let s = OnlineState { migration: migration.clone(), phase: Phase::Expand, stream_arn, requested: None, own_stream, draining: false };
                state::save(&at, &s).await?;
                s
            }
        };
        // Steps taken before the phases (schema changes, the stream), so the
        // phases number on from them; a resumed apply starts at its phase.
        let step_base = if resuming { 0 } else { schema_steps(plan) + 1 };
        let plan = Arc::new(plan.clone());
        let shared = Arc::new(Shared::default());
        let mut online = OnlineMigration {
            client: self.client.clone(),
            streams: streams.clone(),
            plan: plan.clone(),
            opts: opts.clone(),
            observer: observer.clone(),
            at: at.clone(),
            migration: migration.clone(),
            phase: state.phase,
            lease: None,
            shared: shared.clone(),
            backfill: None,
            replay: None,
            report,
            done: false,
            step_base,
        };
        if state.phase == Phase::Expand {
            observer.event(Event::Step {
                number: step_base + 1,
                total: step_base + PHASE_STEPS,
                text: "copy every item to its new form while the stream replay carries changes over".into(),
            });
            // The replay starts first, so no change waits for the backfill.
            online.start_replay(&state.stream_arn, &lease).await?;
            let copy_opts = opts.clone();
            let (client, plan, observer, lease_watch, replay_shared) = (self.client.clone(), plan.clone(), observer.clone(), lease.watch(), shared.clone());
            online.backfill = Some(tokio::spawn(async move {
                let mut report = ApplyReport::default();
                lease_watch.check().await?;
                backfill::run(&client, &plan, &copy_opts, &checkpoints, &lease_watch, observer.clone(), &mut report, Mode::Online, Some(&replay_shared.behind), true)
                    .await?;
                observer.event(Event::Warning("backfill done; the replay catches up with the stream".into()));
                Ok(report)
            }));
        }
        online.lease = Some(lease);
        Ok(online)
    }
}

fn describe_step(change: &Change) -> String {
    match change {
        Change::CreateIndex { index, .. } => format!("create index `{}` and wait until ACTIVE", index.name),
        _ => "update table settings".into(),
    }
}

/// Who runs a replay loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The apply that holds the lock: replays its share of the shards
    /// until cut-over, then takes them all and drains alone.
    Coordinator,
    /// One more worker (`Migrator::work`): replays its share until the
    /// coordinator drains (or the apply moved on), then gives it back.
    Worker,
}

/// What a replay loop works with.
struct Replay {
    client: Client,
    plan: Arc<Plan>,
    opts: ApplyOptions,
    at: Reserved,
    migration: String,
    shared: Arc<Shared>,
    lease: crate::apply::state::LeaseWatch,
    role: Role,
}

/// The stream replay of one worker: reads the shards whose leases it
/// holds (`shards`), carries each round's changes over under those
/// leases, and saves where it stands.
async fn replay_loop(r: Replay, mut tail: StreamTail, mut shards: ShardLeases) -> Result<(), MigrateError> {
    let result = replay_rounds(&r, &mut tail, &mut shards).await;
    // Stopped (the drain ended, the coordinator drains, an error): the
    // shards go back at once, not after a lease.
    let released = shards.release_all(&mut tail).await;
    result.and(released)
}

async fn replay_rounds(r: &Replay, tail: &mut StreamTail, shards: &mut ShardLeases) -> Result<(), MigrateError> {
    let Replay { client, plan, opts, at, shared, lease, role, migration } = r;
    let rules = Rules::new(plan, &opts.defaults);
    // Enough writes in flight to outrun the application, few enough to
    // leave the backfill its share of the server.
    let budget = Budget::new(opts.max_wcu, opts.in_flight().max(8));
    // Rounds since the drain began, and rounds that read every shard to
    // its end among those read after it began.
    let (mut drain_rounds, mut at_head_since_drain) = (0u32, 0u32);
    let mut drain_started: Option<Instant> = None;
    let mut at_head = false;
    let mut state_read: Option<Instant> = None;
    tail.held_only();
    // Lists the shards (and reads none: none is held yet).
    let mut batches = tail.poll().await?;
    loop {
        lease.check().await?;
        if *role == Role::Worker && state_read.map_or(true, |t| t.elapsed() >= Duration::from_millis(500)) {
            state_read = Some(Instant::now());
            match state::load(at).await? {
                Some(s) if s.migration == *migration && s.phase == Phase::Expand && !s.draining => {}
                _ => {
                    tracing::info!(table = %plan.table, "the coordinator drains the stream (or the apply moved on): this worker's replay stops");
                    return Ok(());
                }
            }
        }
        let draining = *role == Role::Coordinator && shared.drain.load(Ordering::SeqCst);
        if draining {
            if drain_started.is_none() {
                // Workers stop when they see this; the take below fences
                // off any write they still make.
                state::set_draining(at).await?;
                drain_started = Some(Instant::now());
            }
            shards.take_all(tail).await?;
        } else {
            shards.tick(tail, at_head).await?;
        }
        // Records of shards this worker no longer holds are its new
        // owner's to replay (from the position saved).
        batches.retain(|b: &stream::ShardBatch| shards.holds(&b.shard));
        // The toolkit's own writes (lock renewals, these checkpoints) are in
        // the stream too: they are skipped, and never count as traffic, or
        // saving a checkpoint would make the next round non-empty forever.
        let records: Vec<stream::StreamRecord> =
            batches.iter().flat_map(|b| b.records.iter()).filter(|r| !is_reserved_in(&r.keys, &plan.to.pk_attr)).cloned().collect();
        let n = records.len();
        let mut round_ms = 0;
        let mut lag_max = None;
        // The next round is read while this one is written (records of one
        // item stay in order: a round's writes finish before the next
        // round's begin), so the replay's speed is its writes', not writes
        // plus reads.
        let next = if n > 0 {
            let now = now_secs();
            let lags: Vec<f64> = records.iter().filter_map(|r| r.created_at).map(|t| (now - t).max(0.0)).collect();
            let started = Instant::now();
            let fences = shards.fences()?;
            let (applied, next) = futures::join!(replay::apply_round(client, &plan.table, &rules, records, &budget, &shared.counters, &fences), tail.poll());
            for shard in applied? {
                shards.lost(&shard, tail);
            }
            round_ms = started.elapsed().as_millis() as u64;
            let max = lags.iter().copied().fold(0.0, f64::max);
            tracing::debug!(table = %plan.table, records = n, shards = batches.len(), ms = round_ms, lag_max_s = max, "replay round applied");
            shared.lags.lock().expect("lags").extend(lags);
            lag_max = Some(max);
            Some(next)
        } else {
            None
        };
        // At the head of the stream: every shard read to its end as of this
        // round (a full page means more may follow). Under constant writes
        // this is as close as it gets; the drain at cut-over, when writers
        // have stopped, waits for rounds with nothing at all.
        at_head = batches.iter().all(|b| b.records.len() < stream::GET_RECORDS_LIMIT) && !tail.discovery_pending();
        // Saved only after the round's writes: a crash before replays the
        // round, which is harmless. A shard lost meanwhile is not saved.
        for b in &batches {
            if shards.holds(&b.shard) {
                shards.save(tail, &b.shard, &b.position, lag_max, at_head).await?;
            }
        }
        shared.caught_up.store(at_head && shards.others_at_head(), Ordering::SeqCst);
        shared.behind.store(!at_head || round_ms > BEHIND_AFTER_MS, Ordering::Relaxed);
        if let Some(started) = drain_started {
            drain_rounds += 1;
            // The read of the round after this one may have been sent
            // before the drain began; the rounds after that were read
            // since. Two of them reading every shard to its end, over at
            // least a second (records still on their way into the stream
            // are in), reach a position after the drain began. Records may
            // follow it: migrating tables write both forms during cut-over
            // (the new form has them already); anything else shows in the
            // content check.
            if drain_rounds > 2 {
                at_head_since_drain = if at_head { at_head_since_drain + 1 } else { 0 };
            }
            if at_head_since_drain >= 2 && started.elapsed() >= Duration::from_secs(1) {
                return Ok(());
            }
        }
        batches = match next {
            Some(next) => next?,
            None => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                tail.poll().await?
            }
        };
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

impl OnlineMigration {
    /// The phase reached.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The table migrated.
    pub fn table(&self) -> &str {
        &self.plan.table
    }

    /// How the replay is doing.
    pub fn status(&self) -> ReplayStatus {
        let mut lags = self.shared.lags.lock().expect("lags").clone();
        lags.sort_by(f64::total_cmp);
        ReplayStatus {
            records: self.shared.counters.records.load(Ordering::Relaxed),
            written: self.shared.counters.written.load(Ordering::Relaxed),
            superseded: self.shared.counters.superseded.load(Ordering::Relaxed),
            caught_up: self.shared.caught_up.load(Ordering::SeqCst),
            lag_p50: percentile(&lags, 0.5),
            lag_p99: percentile(&lags, 0.99),
        }
    }

    /// Starts the stream replay: its share of the shards, where their
    /// checkpoints say.
    async fn start_replay(&mut self, stream_arn: &str, lease: &Lease) -> Result<(), MigrateError> {
        let tail = StreamTail::new(self.streams.clone(), self.plan.table.clone(), stream_arn.to_string(), HashMap::new());
        let shards = ShardLeases::new(self.at.clone(), self.migration.clone(), worker_name(&self.opts.owner), self.opts.lease);
        self.shared.drain.store(false, Ordering::SeqCst);
        // Not caught up until the new replay says so (after a rollback the
        // old one's last word was "caught up").
        self.shared.caught_up.store(false, Ordering::SeqCst);
        let replay = Replay {
            client: self.client.clone(),
            plan: self.plan.clone(),
            opts: self.opts.clone(),
            at: self.at.clone(),
            migration: self.migration.clone(),
            shared: self.shared.clone(),
            lease: lease.watch(),
            role: Role::Coordinator,
        };
        self.replay = Some(tokio::spawn(replay_loop(replay, tail, shards)));
        Ok(())
    }

    /// The way back, after cut-over and before contract: the old form
    /// becomes the truth again, so the old version can be deployed again.
    ///
    /// It first checks that every new form still equals what its old form
    /// renders (migrating tables write both forms until contract, so their
    /// writes pass; a write that reached only the new form, from a plain
    /// new-version table, would be lost by going back: the rollback is
    /// refused, naming the items, and nothing changes). Then it records the
    /// old design, sets the phase back to expand and starts the replay
    /// again where the drain stopped. Cut over again when ready.
    pub async fn rollback(&mut self) -> Result<ContentReport, MigrateError> {
        if self.phase != Phase::CutOver {
            return Err(MigrateError::Other(format!(
                "table `{}`: only a cut-over online apply can roll back (phase {:?}); before cut-over the old form is the truth already, after contract it is gone",
                self.plan.table, self.phase
            )));
        }
        let Some(old_design) = self.plan.from.clone() else {
            return Err(MigrateError::Other(format!("table `{}`: the plan has no old design to go back to", self.plan.table)));
        };
        let rules = Rules::new(&self.plan, &self.opts.defaults);
        let content = check::check(&self.client, &self.plan, &rules, self.opts.segments).await?;
        if !content.problems.is_empty() {
            let mut problems = vec![
                "written only to the new form after cut-over (a new-version instance without a migrating table?): going back would lose them".to_string(),
            ];
            problems.extend(content.problems);
            return Err(MigrateError::Verification { table: self.plan.table.clone(), problems });
        }
        record_design(&self.client, &old_design, &self.plan.table).await?;
        let saved = state::load(&self.at).await?;
        let (stream_arn, own_stream) = saved.map(|s| (s.stream_arn, s.own_stream)).unwrap_or_default();
        state::save(&self.at, &OnlineState { migration: self.migration.clone(), phase: Phase::Expand, stream_arn: stream_arn.clone(), requested: None, own_stream, draining: false })
            .await?;
        self.phase = Phase::Expand;
        let lease = self.lease.take().ok_or_else(|| MigrateError::Other(format!("table `{}`: the online apply holds no lock", self.plan.table)))?;
        let started = self.start_replay(&stream_arn, &lease).await;
        self.lease = Some(lease);
        started?;
        self.observer.event(Event::Warning(format!(
            "rolled back: the old form is the truth again and the replay runs; the old version may write. Cut over again when ready ({} items compared)",
            content.compared
        )));
        Ok(content)
    }

    /// Fails with the replay's error if it stopped.
    async fn replay_alive(&mut self) -> Result<(), MigrateError> {
        if self.replay.as_ref().is_some_and(|h| h.is_finished()) {
            let handle = self.replay.take().expect("checked");
            return match handle.await {
                Ok(Ok(())) => Err(MigrateError::Other(format!("table `{}`: the stream replay stopped early", self.plan.table))),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(MigrateError::Other(format!("table `{}`: the stream replay panicked: {e}", self.plan.table))),
            };
        }
        Ok(())
    }

    /// Waits until the backfill has finished and the replay has caught up
    /// with the stream. The replay goes on afterwards, until cut-over.
    pub async fn wait_caught_up(&mut self) -> Result<ReplayStatus, MigrateError> {
        if let Some(handle) = self.backfill.take() {
            let report = handle
                .await
                .map_err(|e| MigrateError::Other(format!("table `{}`: the backfill panicked: {e}", self.plan.table)))??;
            self.report.scanned += report.scanned;
            self.report.moved += report.moved;
            self.report.updated += report.updated;
            self.report.unknown += report.unknown;
            self.report.resumed |= report.resumed;
        }
        if self.phase != Phase::Expand {
            return Ok(self.status());
        }
        loop {
            self.replay_alive().await?;
            let status = self.status();
            if status.caught_up {
                self.observer.event(Event::Warning(format!(
                    "caught up: {} stream records replayed; switch the application to the new version, then cut over",
                    status.records
                )));
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until another process asks for `what` (`migrate cutover` /
    /// `migrate complete` set it in the table's online state), replaying
    /// meanwhile.
    pub async fn wait_for_request(&mut self, what: &str) -> Result<(), MigrateError> {
        self.wait_for_any(&[what]).await.map(|_| ())
    }

    /// Waits until another process asks for one of `what` (`migrate
    /// cutover`, `migrate complete`, `migrate rollback`); returns which.
    pub async fn wait_for_any(&mut self, what: &[&str]) -> Result<String, MigrateError> {
        loop {
            self.replay_alive().await?;
            if let Some(s) = state::load(&self.at).await? {
                if let Some(r) = s.requested.filter(|r| what.contains(&r.as_str())) {
                    return Ok(r);
                }
            }
            // Part of the write pause at cut-over: poll often.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Cut-over: call it once the application no longer writes the old
    /// form. Drains the replay to the end of every shard, verifies every
    /// new form against its old form, and records the new design; from
    /// then on the application writes the new form. Fails (recording
    /// nothing) when the content differs, naming the items.
    pub async fn cutover(&mut self) -> Result<CutoverReport, MigrateError> {
        let started = Instant::now();
        if self.phase != Phase::Expand {
            return Ok(CutoverReport::default());
        }
        self.observer.event(Event::Step {
            number: self.step_base + PHASE_STEPS - 1,
            total: self.step_base + PHASE_STEPS,
            text: "cut-over: drain the replay, compare every new form with its old form, record the design".into(),
        });
        self.wait_caught_up().await?;
        let before = self.shared.counters.records.load(Ordering::Relaxed);
        self.shared.drain.store(true, Ordering::SeqCst);
        if let Some(handle) = self.replay.take() {
            handle.await.map_err(|e| MigrateError::Other(format!("table `{}`: the stream replay panicked: {e}", self.plan.table)))??;
        }
        let drained = self.shared.counters.records.load(Ordering::Relaxed) - before;
        let rules = Rules::new(&self.plan, &self.opts.defaults);
        let content = check::check(&self.client, &self.plan, &rules, self.opts.segments).await?;
        if !content.problems.is_empty() {
            return Err(MigrateError::Verification { table: self.plan.table.clone(), problems: content.problems });
        }
        record_design(&self.client, &self.plan.to, &self.plan.table).await?;
        let saved = state::load(&self.at).await?;
        let (stream_arn, own_stream) = saved.map(|s| (s.stream_arn, s.own_stream)).unwrap_or_default();
        state::save(&self.at, &OnlineState { migration: self.migration.clone(), phase: Phase::CutOver, stream_arn, requested: None, own_stream, draining: false })
            .await?;
        self.phase = Phase::CutOver;
        Ok(CutoverReport { drained, content, took: started.elapsed() })
    }

    /// Contract: deletes old forms (each only if unchanged since it was
    /// read) and items of removed entities (exported first), removes
    /// indexes the design dropped, runs the final verification, and
    /// clears checkpoints, state and lock.
    pub async fn complete(mut self) -> Result<ApplyReport, MigrateError> {
        if self.done {
            return Ok(self.report.clone());
        }
        if self.phase == Phase::Expand {
            return Err(MigrateError::Other(format!("table `{}`: cut over before completing the online apply", self.plan.table)));
        }
        if self.phase == Phase::CutOver {
            // Migrating tables stop writing old forms once they see this
            // phase; they read it at most PHASE_REFRESH ago, and a write
            // they began before may still land: wait PHASE_SETTLE before
            // deleting old forms. (One landing even later is not lost:
            // contract deletes only unchanged old forms.)
            let saved = state::load(&self.at).await?;
            let (stream_arn, own_stream) = saved.map(|s| (s.stream_arn, s.own_stream)).unwrap_or_default();
            let contract = OnlineState { migration: self.migration.clone(), phase: Phase::Contract, stream_arn, requested: None, own_stream, draining: false };
            state::save(&self.at, &contract).await?;
            self.phase = Phase::Contract;
            tokio::time::sleep(singletable::reserved::PHASE_SETTLE).await;
        }
        let plan = self.plan.clone();
        let opts = self.opts.clone();
        let removed: HashSet<&str> =
            plan.changes.iter().filter_map(|c| if let Change::RemoveEntity { entity } = c { Some(entity.as_str()) } else { None }).collect();
        if !removed.is_empty() {
            let path = opts.export_dir.join(format!("{}-{}-removed.jsonl", plan.table, self.migration));
            backfill::export(&self.client, &plan, &removed, &path, opts.segments, opts.in_flight()).await?;
            self.report.exports.push(path);
        }
        self.observer.event(Event::Step {
            number: self.step_base + PHASE_STEPS,
            total: self.step_base + PHASE_STEPS,
            text: "contract: delete old forms, then verify".into(),
        });
        let rules = Rules::new(&plan, &opts.defaults);
        // Old forms written alone since the cut-over drain (see `guard`):
        // the stream from where the drain stopped, before and after the
        // deletes.
        let mut stragglers = guard::Stragglers::default();
        let mut tail = match state::load(&self.at).await? {
            Some(saved) if !saved.stream_arn.is_empty() => {
                let positions = shards::positions(&self.at, &self.migration).await?;
                Some(StreamTail::new(self.streams.clone(), plan.table.clone(), saved.stream_arn, positions))
            }
            _ => None,
        };
        if let Some(tail) = tail.as_mut() {
            let read = guard::read_to_end(tail, &rules, &mut stragglers).await?;
            tracing::debug!(table = %plan.table, records = read, stragglers = stragglers.by_key.len(), "contract: stream read since cut-over");
        }
        // Conditional deletes, 25 to a request: many in flight.
        let budget = Budget::new(opts.max_wcu, opts.concurrency.unwrap_or(opts.segments.max(1) * 8));
        let contracted = contract::run(&self.client, &plan, &rules, opts.segments, &budget, &stragglers).await?;
        self.report.deleted += contracted.deleted;
        tracing::debug!(table = %plan.table, deleted = contracted.deleted, tokens_removed = contracted.untokened, "contract: old forms deleted");
        if let Some(tail) = tail.as_mut() {
            let mut late = guard::Stragglers::default();
            guard::read_to_end(tail, &rules, &mut late).await?;
            for (name, (old_key, image)) in late.by_key {
                if !stragglers.by_key.contains_key(&name) && guard::put_back(&self.client, &plan.table, &plan.to.pk_attr, &image).await? {
                    self.report.deleted = self.report.deleted.saturating_sub(1);
                    tracing::warn!(table = %plan.table, item = %name, "contract: an old form written after cut-over was deleted with it; put back");
                }
                stragglers.by_key.insert(name, (old_key, image));
            }
        }
        // Named while the old form is there: a user who carried the write
        // over by hand and deleted the old form can complete.
        let mut problems = Vec::new();
        for (name, (old_key, _)) in &stragglers.by_key {
            let there = retrying(|| self.client.get_item().table_name(&plan.table).set_key(Some(old_key.clone())).consistent_read(true).send())
                .await
                .map_err(|e| MigrateError::dynamo("GetItem (old form written after cut-over)", &plan.table, e))?
                .item
                .is_some();
            if there {
                problems.push(format!("{name}: written through the old form alone after cut-over (an instance still on the old version?); left in place, not carried over"));
            }
        }
        problems.sort();
        problems.extend(
            contracted.changed.iter().filter(|k| !stragglers.by_key.contains_key(*k)).map(|k| format!("{k}: the old form changed after cut-over (an old application version still writing?); left in place")),
        );
        if !problems.is_empty() {
            let more = problems.len().saturating_sub(20);
            problems.truncate(20);
            if more > 0 {
                problems.push(format!("... and {more} more"));
            }
            return Err(MigrateError::Verification { table: plan.table.clone(), problems });
        }
        for change in &plan.changes {
            if let Change::DeleteIndex { index } = change {
                schema::delete_index(&self.client, &plan.table, &index.name).await?;
            }
        }
        let verification = verify::verify(&self.client, &plan, opts.segments, opts.in_flight(), false, &*self.observer).await?;
        let problems = verification.problems.clone();
        self.report.verification = Some(verification);
        if !problems.is_empty() {
            return Err(MigrateError::Verification { table: plan.table.clone(), problems });
        }
        // The stream goes off again if the migration turned it on and the
        // design does not ask for one.
        let own_stream = state::load(&self.at).await?.is_some_and(|s| s.own_stream);
        if own_stream && plan.to.settings.stream.is_none() {
            stream::disable(&self.client, &plan.table).await?;
        }
        let checkpoints = crate::apply::state::Checkpoints { at: self.at.clone(), migration: self.migration.clone() };
        checkpoints.clear_all().await?;
        state::clear(&self.at).await?;
        if let Some(lease) = self.lease.take() {
            lease.release().await?;
        }
        Ok(self.report.clone())
    }

    /// Stops the background work without finishing (the state stays, so
    /// starting again resumes), and lets go of the lock.
    pub async fn abandon(mut self) -> Result<(), MigrateError> {
        if let Some(h) = self.replay.take() {
            h.abort();
        }
        if let Some(h) = self.backfill.take() {
            h.abort();
        }
        if let Some(lease) = self.lease.take() {
            lease.release().await?;
        }
        Ok(())
    }
}

impl Drop for OnlineMigration {
    fn drop(&mut self) {
        // An online apply dropped before it completed (an error, or the
        // caller gave up) stops its background work; its state, checkpoints
        // and (expiring) lock stay, so starting it again resumes.
        if let Some(h) = self.replay.take() {
            h.abort();
        }
        if let Some(h) = self.backfill.take() {
            h.abort();
        }
    }
}

/// Asks the online apply running on `table` to cut over (`"cutover"`) or
/// complete (`"complete"`): what `migrate cutover` and `migrate complete`
/// do from another shell. Returns the phase it is in.
pub async fn request(client: &Client, table: &str, pk_attr: &str, sk_attr: &str, what: &str) -> Result<Phase, MigrateError> {
    let at = Reserved { client: client.clone(), table: table.to_string(), pk_attr: pk_attr.to_string(), sk_attr: sk_attr.to_string() };
    Ok(state::request(&at, what).await?.phase)
}

/// The phase of the online apply in progress on `table`, if any.
pub async fn phase(client: &Client, table: &str, pk_attr: &str, sk_attr: &str) -> Result<Option<Phase>, MigrateError> {
    let at = Reserved { client: client.clone(), table: table.to_string(), pk_attr: pk_attr.to_string(), sk_attr: sk_attr.to_string() };
    Ok(state::load(&at).await?.map(|s| s.phase))
}
