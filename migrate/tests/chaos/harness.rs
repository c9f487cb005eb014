//! The harness: a seeded table, writer tasks playing the old and the new
//! application version, the controls a migration driver uses (switch a
//! writer to the new version, pause the old writers), and the ledger.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::SeqCst};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use singletable::{Error, Table, TableDesign};
use singletable_migrate::Plan;

use super::entities::{UserForm, UserState};
use super::ledger::{Expected, Ledger, Raw, Stats, WriterLedger};

const OLD: u8 = 0;
const NEW: u8 = 1;

/// Which field the writers' "rename" changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rename {
    /// `name` (scenarios a, c; in c the new index gsi2 is built from it).
    Name,
    /// `email` (scenario b: the changed gsi1 template is built from it).
    Email,
}

/// Knobs of one run.
#[derive(Debug, Clone)]
pub struct Config {
    pub seed_items: usize,
    pub writers: usize,
    pub orgs: usize,
    /// Writers stop by themselves after this long, whatever the driver
    /// does.
    pub max_writing: Duration,
    /// A pause after every operation of a writer (`ZERO`: flat out).
    pub pace: Duration,
    pub rename: Rename,
    pub rng_seed: u64,
}

/// One writer's switches.
#[derive(Default)]
struct WriterCtl {
    /// `OLD` or `NEW`.
    mode: AtomicU8,
    /// Set around every old-version operation (Dekker-style with `mode`
    /// and `paused_old`: a switch or pause that saw it clear knows no old
    /// operation is in flight or will start).
    busy_old: AtomicBool,
}

/// What a migration driver gets: the table, the client, the designs, a
/// plan made before the writers started, and the writers' controls.
pub struct Harness {
    pub client: Client,
    pub table: String,
    pub old_design: TableDesign,
    pub new_design: TableDesign,
    /// `planner::make_plan` (old -> new), made after seeding, before the
    /// writers started.
    pub plan: Plan,
    pub config: Config,
    pub started: Instant,
    old_table: Arc<Table>,
    new_table: RwLock<Arc<Table>>,
    ctl: Vec<WriterCtl>,
    paused_old: AtomicBool,
    stop: AtomicBool,
    ledgers: Vec<Mutex<WriterLedger>>,
    events: Mutex<Vec<(Duration, String)>>,
}

impl Harness {
    pub(crate) fn new(
        client: Client,
        old_design: TableDesign,
        new_design: TableDesign,
        plan: Plan,
        config: Config,
        seeded: Vec<Vec<((String, String), UserState)>>,
    ) -> Harness {
        let table = old_design.table.clone();
        let ledgers = seeded
            .into_iter()
            .map(|items| {
                Mutex::new(WriterLedger { items: items.into_iter().map(|(k, s)| (k, Expected::Exists(s))).collect(), stats: Stats::default() })
            })
            .collect();
        Harness {
            old_table: Arc::new(Table::new(client.clone(), old_design.clone())),
            new_table: RwLock::new(Arc::new(Table::new(client.clone(), new_design.clone()))),
            ctl: (0..config.writers).map(|_| WriterCtl::default()).collect(),
            client,
            table,
            old_design,
            new_design,
            plan,
            config,
            started: Instant::now(),
            paused_old: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            ledgers,
            events: Mutex::new(Vec::new()),
        }
    }

    pub fn writers(&self) -> usize {
        self.ctl.len()
    }

    /// Writer `k` plays the new version from its next operation on;
    /// returns once no old-version operation of `k` is in flight.
    pub async fn switch_to_new(&self, k: usize) {
        self.ctl[k].mode.store(NEW, SeqCst);
        while self.ctl[k].busy_old.load(SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.mark(format!("writer {k} -> new version"));
    }

    /// Writer `k` plays the old version again (a rollback).
    pub fn switch_to_old(&self, k: usize) {
        self.ctl[k].mode.store(OLD, SeqCst);
        self.mark(format!("writer {k} -> old version"));
    }

    /// Every writer to the new version, one after another, `gap` apart
    /// (a rolling deploy: both versions write in between).
    pub async fn roll_to_new(&self, gap: Duration) {
        for k in 0..self.writers() {
            self.switch_to_new(k).await;
            if k + 1 < self.writers() {
                tokio::time::sleep(gap).await;
            }
        }
    }

    /// The cut-over pause: old-version writers stop issuing requests;
    /// returns once none is in flight. New-version writers go on.
    pub async fn pause_old(&self) {
        self.paused_old.store(true, SeqCst);
        while self.ctl.iter().any(|c| c.busy_old.load(SeqCst)) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.mark("old writers paused");
    }

    pub fn resume_old(&self) {
        self.paused_old.store(false, SeqCst);
        self.mark("old writers resumed");
    }

    /// The `Table` new-version writers use (by default one built with
    /// the new design); replace it with, say, a migrate-on-read table.
    pub fn set_new_table(&self, table: Table) {
        *self.new_table.write().unwrap() = Arc::new(table);
    }

    pub fn old_table(&self) -> Arc<Table> {
        self.old_table.clone()
    }

    pub fn new_table(&self) -> Arc<Table> {
        self.new_table.read().unwrap().clone()
    }

    /// A snapshot of the ledger of acknowledged writes so far.
    pub fn ledger(&self) -> Ledger {
        Ledger::merge(self.ledgers.iter().map(|l| {
            let l = l.lock().unwrap();
            (l.items.clone(), l.stats.clone())
        }))
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, SeqCst);
    }

    fn deadline_passed(&self) -> bool {
        self.started.elapsed() >= self.config.max_writing
    }

    /// Notes a moment of the run (printed with the report).
    pub fn mark(&self, what: impl Into<String>) {
        let what = what.into();
        let at = self.started.elapsed();
        eprintln!("chaos [{:>6.2} s] {what}", at.as_secs_f64());
        self.events.lock().unwrap().push((at, what));
    }

    pub fn events(&self) -> Vec<(Duration, String)> {
        self.events.lock().unwrap().clone()
    }

    /// A fresh plan (old -> new) of the table as it is now.
    pub async fn make_plan(&self) -> Result<Plan, singletable_migrate::MigrateError> {
        let request = singletable_migrate::PlanRequest::new(self.new_design.clone()).table(&self.table).old_design(self.old_design.clone());
        Ok(singletable_migrate::planner::make_plan(&self.client, &request).await?.plan)
    }
}

/// What became of one write.
enum Outcome {
    Acked,
    /// DynamoDB refused a condition: nothing was written.
    NotWritten,
    /// The library refused before sending: nothing was written.
    Refused(String),
    /// Maybe written, maybe not.
    Unknown(String),
}

fn outcome<T>(r: &Result<T, Error>) -> Outcome {
    match r {
        Ok(_) => Outcome::Acked,
        Err(Error::NotFound { .. } | Error::ConditionFailed { .. } | Error::AlreadyExists { .. } | Error::VersionConflict { .. }) => {
            Outcome::NotWritten
        }
        Err(e @ (Error::Dynamo { .. } | Error::BatchIncomplete { .. } | Error::TransactionCanceled { .. })) => Outcome::Unknown(e.to_string()),
        Err(e) => Outcome::Refused(e.to_string()),
    }
}

/// A writer's own view: the users it owns that exist, by ledger key.
struct Own {
    k: usize,
    live: Vec<(String, String)>,
    created: usize,
    renames: u64,
}

/// Runs writer `k` until stopped or its time is up; `O` is the old
/// version's `User`, `N` the new one's.
pub(crate) async fn writer<O: UserForm, N: UserForm>(h: Arc<Harness>, k: usize) {
    let mut rng = fastrand::Rng::with_seed(h.config.rng_seed ^ (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut own = {
        let l = h.ledgers[k].lock().unwrap();
        Own {
            k,
            live: l.items.iter().filter(|(_, e)| matches!(e, Expected::Exists(_))).map(|(key, _)| key.clone()).collect(),
            created: 0,
            renames: 0,
        }
    };
    let ctl = &h.ctl[k];
    while !h.stop.load(SeqCst) && !h.deadline_passed() {
        ctl.busy_old.store(true, SeqCst);
        let mode = ctl.mode.load(SeqCst);
        if mode == OLD {
            if h.paused_old.load(SeqCst) {
                ctl.busy_old.store(false, SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            let table = h.old_table();
            one_op::<O>(&h, &table, &mut own, &mut rng, false).await;
            ctl.busy_old.store(false, SeqCst);
        } else {
            ctl.busy_old.store(false, SeqCst);
            let table = h.new_table();
            one_op::<N>(&h, &table, &mut own, &mut rng, true).await;
        }
        if !h.config.pace.is_zero() {
            tokio::time::sleep(h.config.pace).await;
        }
    }
    ctl.busy_old.store(false, SeqCst);
}

/// Records what a write did to one user, in writer `own.k`'s ledger.
fn record(h: &Harness, own: &mut Own, key: &(String, String), op: &str, new: bool, out: Outcome, after: Option<UserState>) {
    let mut l = h.ledgers[own.k].lock().unwrap();
    match out {
        Outcome::Acked => {
            l.stats.ack(op, new);
            match after {
                Some(s) => {
                    l.items.insert(key.clone(), Expected::Exists(s));
                    if !own.live.contains(key) {
                        own.live.push(key.clone());
                    }
                }
                None => {
                    l.items.insert(key.clone(), Expected::Deleted);
                    own.live.retain(|k| k != key);
                }
            }
        }
        Outcome::NotWritten => l.stats.condition_failed += 1,
        Outcome::Refused(e) => {
            l.stats.refused += 1;
            l.stats.error(format!("{op}: refused: {e}"));
        }
        Outcome::Unknown(e) => {
            l.stats.unknown_outcomes += 1;
            l.stats.error(format!("{op}: unknown outcome: {e}"));
            l.items.insert(key.clone(), Expected::Unknown);
            own.live.retain(|k| k != key);
        }
    }
}

fn expected(h: &Harness, k: usize, key: &(String, String)) -> Option<UserState> {
    match h.ledgers[k].lock().unwrap().items.get(key) {
        Some(Expected::Exists(s)) => Some(s.clone()),
        _ => None,
    }
}

/// One random operation through `table`, with `T` the `User` of the
/// version being played.
async fn one_op<T: UserForm>(h: &Harness, table: &Table, own: &mut Own, rng: &mut fastrand::Rng, new: bool) {
    let roll = rng.u32(..100);
    if own.live.is_empty() || (63..78).contains(&roll) {
        // Create a new user (create-only put); its id is this writer's.
        own.created += 1;
        let id = format!("w{}c{:05}", own.k, own.created);
        let org = format!("org{}", rng.usize(..h.config.orgs));
        let state = UserState { email: format!("{id}@example.test"), name: format!("created {id}"), n: 0 };
        let key = (org.clone(), id.clone());
        let r = table.create(&T::build(&org, &id, &state)).await;
        record(h, own, &key, "create", new, outcome(&r), Some(state));
        return;
    }
    let key = own.live[rng.usize(..own.live.len())].clone();
    let Some(want) = expected(h, own.k, &key) else { return };
    if roll < 40 {
        // Conditional increment (attribute_exists(pk)).
        let r = T::increment(table, &key).send().await;
        let after = UserState { n: want.n + 1, ..want.clone() };
        if let Ok(u) = &r {
            if u.state() != after {
                h.ledgers[own.k].lock().unwrap().stats.stale_observations += 1;
            }
        }
        record(h, own, &key, "increment", new, outcome(&r), Some(after));
    } else if roll < 55 {
        own.renames += 1;
        let (r, after) = match h.config.rename {
            Rename::Name => {
                let name = format!("{} r{}", key.1, own.renames);
                (T::set_name(table, &key, &name).send().await, UserState { name, ..want.clone() })
            }
            Rename::Email => {
                let email = format!("{}.r{}@example.test", key.1, own.renames);
                (T::set_email(table, &key, &email).send().await, UserState { email, ..want.clone() })
            }
        };
        if let Ok(u) = &r {
            if u.state() != after {
                h.ledgers[own.k].lock().unwrap().stats.stale_observations += 1;
            }
        }
        record(h, own, &key, "rename", new, outcome(&r), Some(after));
    } else if roll < 63 {
        let r = table.delete::<T>(&key).await;
        record(h, own, &key, "delete", new, outcome(&r), None);
    } else {
        // Read-modify-write through the library: get, change, put.
        let read = table.get::<T>(&key).await;
        let current = match read {
            Ok(Some(u)) => u,
            Ok(None) => {
                h.ledgers[own.k].lock().unwrap().stats.read_found_nothing += 1;
                return;
            }
            Err(e) => {
                let mut l = h.ledgers[own.k].lock().unwrap();
                l.stats.read_errors += 1;
                l.stats.error(format!("rmw get: {e}"));
                return;
            }
        };
        let mut s = current.state();
        if s != want {
            h.ledgers[own.k].lock().unwrap().stats.stale_observations += 1;
        }
        s.n += 1;
        own.renames += 1;
        s.name = format!("{} m{}", key.1, own.renames);
        let r = table.put(&T::build(&key.0, &key.1, &s)).await;
        // What the put wrote is what the application acknowledged.
        record(h, own, &key, "rmw", new, outcome(&r), Some(s));
    }
}

/// Every item of the table, read with consistent scans (4 segments).
pub async fn scan_all(client: &Client, table: &str) -> Vec<Raw> {
    let parts = futures::future::join_all((0..4).map(|segment| async move {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = client
                .scan()
                .table_name(table)
                .consistent_read(true)
                .segment(segment)
                .total_segments(4)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            out.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return out;
            }
        }
    }))
    .await;
    parts.into_iter().flatten().collect()
}

/// The seed users of writer `k` of `writers`: `u00000`, `u00001`, ...
/// round-robin.
pub fn seed_users(config: &Config) -> Vec<Vec<((String, String), UserState)>> {
    let mut rng = fastrand::Rng::with_seed(config.rng_seed);
    let mut out: Vec<Vec<_>> = (0..config.writers).map(|_| Vec::new()).collect();
    for i in 0..config.seed_items {
        let id = format!("u{i:05}");
        let org = format!("org{}", rng.usize(..config.orgs));
        let state = UserState { email: format!("{id}@example.test"), name: format!("name of {id}"), n: rng.u64(..1000) };
        out[i % config.writers].push(((org, id), state));
    }
    out
}

/// Per-operation acknowledgement counts, for printing.
pub fn acked_line(stats: &Stats) -> String {
    let m: BTreeMap<_, _> = stats.acked.iter().collect();
    m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}
