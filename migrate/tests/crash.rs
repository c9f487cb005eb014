//! Crash test of `singletable migrate apply`: the built binary is killed
//! with SIGKILL at random points of an apply over 5,060 items, then run
//! again (and maybe killed again) once its lease has expired, until an
//! apply completes. Every trial then checks that each original item is
//! present exactly once, in its new form, its attributes those of the
//! original but the keys; that no old form is left; that the new design
//! is recorded and no lock or checkpoint is left behind; and that
//! `migrate plan` says `No changes.`.
//!
//! After every kill the table is also checked for what a move promises:
//! each item exists in its old form, its new form or both, never in
//! neither, and never altered.
//!
//! The migration: `User` (3,700 items) moves (`ORG#{org}` ->
//! `TENANT#{org}`) and joins a new index `gsi1`; `Project` (1,300) keeps
//! its keys and joins `gsi1` with its own templates (updates in place);
//! `Note` (60) does not change.
//!
//! Kill points come from a seeded RNG (the seed is printed; `CRASH_SEED`
//! replays one, `CRASH_TRIALS` and `CRASH_LANES` set the number of trials
//! and how many run side by side). The first kill of the `i`-th of `n`
//! timed trials falls in the `i`-th `n`-quantile of a full apply's
//! duration (the median of the full applies measured so far, under the
//! same load), so kills cover the apply from process start to its last
//! writes; every fifth trial is killed instead within 100 ms after its
//! backfill's checkpoints all say done (verification, recording the
//! design, clearing checkpoints, releasing the lock). A resumed apply's
//! kill scales with the work left. A trial whose apply finishes before its
//! first kill does not count; a spare trial replaces it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use futures::StreamExt;
use singletable::{Item, Table, TableDesign};
use singletable_migrate::reserved::{read_recorded_design, record_design, CHECKPOINT_PREFIX, LOCK_SK, RESERVED_PK};
use singletable_tests::{client, endpoint, unique_table_name};

mod v1 {
    #[derive(singletable::Item, Debug, Clone)]
    #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
    pub struct User {
        pub org: String,
        pub id: String,
        pub email: String,
        pub name: String,
        pub age: u32,
    }

    #[derive(singletable::Item, Debug, Clone)]
    #[item(entity = "Project", pk = "ORG#{org}", sk = "PROJECT#{id}")]
    pub struct Project {
        pub org: String,
        pub id: String,
        pub owner: String,
        pub tags: Vec<String>,
    }

    #[derive(singletable::Item, Debug, Clone)]
    #[item(entity = "Note", pk = "ORG#{org}", sk = "NOTE#{id}")]
    pub struct Note {
        pub org: String,
        pub id: u32,
        pub text: String,
    }
}

mod v2 {
    #[derive(singletable::Item, Debug, Clone)]
    #[item(entity = "User", pk = "TENANT#{org}", sk = "USER#{id}")]
    #[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
    pub struct User {
        pub org: String,
        pub id: String,
        pub email: String,
        pub name: String,
        pub age: u32,
    }

    #[derive(singletable::Item, Debug, Clone)]
    #[item(entity = "Project", pk = "ORG#{org}", sk = "PROJECT#{id}")]
    #[item(index(name = "gsi1", pk = "OWNER#{owner}", sk = "PROJECT#{id}"))]
    pub struct Project {
        pub org: String,
        pub id: String,
        pub owner: String,
        pub tags: Vec<String>,
    }
}

const USERS: usize = 3_700;
const PROJECTS: usize = 1_300;
const NOTES: usize = 60;
const DEFAULT_SEED: u64 = 0x5EED_C4A5_0001;
const DEFAULT_TRIALS: usize = 20;
const DEFAULT_LANES: usize = 2;
/// Kills after the first, per trial, at most.
const MAX_EXTRA_KILLS: usize = 2;
const LEASE_SECONDS: u64 = 2;

type Raw = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn old_design(table: &str) -> TableDesign {
    TableDesign::new(table).entity::<v1::User>().entity::<v1::Project>().entity::<v1::Note>().build().unwrap()
}

fn new_design(table: &str) -> TableDesign {
    TableDesign::new(table).entity::<v2::User>().entity::<v2::Project>().entity::<v1::Note>().build().unwrap()
}

/// One original item in both of its forms.
struct Original {
    entity: &'static str,
    id: String,
    old: Raw,
    new: Raw,
}

fn key_of(item: &Raw) -> (String, String) {
    let text = |a: &str| item.get(a).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
    (text("pk"), text("sk"))
}

/// The items of the old design, and what each must become. The new forms
/// are written out by hand here, not rendered by the toolkit.
fn originals(rng: &mut fastrand::Rng) -> Vec<Original> {
    let word = |rng: &mut fastrand::Rng, max: usize| -> String {
        let len = rng.usize(1..=max);
        (0..len).map(|_| if rng.u8(..10) == 0 { 'é' } else { rng.alphanumeric() }).collect()
    };
    let mut out = Vec::with_capacity(USERS + PROJECTS + NOTES);
    for i in 0..USERS {
        let u = v1::User {
            org: format!("org{}", rng.usize(..40)),
            id: format!("u{i:05}"),
            email: format!("{}.{i}@example.test", word(rng, 8)),
            name: word(rng, 40),
            age: rng.u32(..120),
        };
        let old = u.to_item().unwrap();
        let mut new = old.clone();
        new.insert("pk".into(), s(format!("TENANT#{}", u.org)));
        new.insert("gsi1pk".into(), s(format!("EMAIL#{}", u.email)));
        new.insert("gsi1sk".into(), s("USER"));
        out.push(Original { entity: "User", id: u.id, old, new });
    }
    for i in 0..PROJECTS {
        let p = v1::Project {
            org: format!("org{}", rng.usize(..40)),
            id: format!("p{i:05}"),
            owner: format!("u{:05}", rng.usize(..USERS)),
            tags: (0..rng.usize(0..4)).map(|_| word(rng, 6)).collect(),
        };
        let old = p.to_item().unwrap();
        let mut new = old.clone();
        new.insert("gsi1pk".into(), s(format!("OWNER#{}", p.owner)));
        new.insert("gsi1sk".into(), s(format!("PROJECT#{}", p.id)));
        out.push(Original { entity: "Project", id: p.id, old, new });
    }
    for i in 0..NOTES {
        let n = v1::Note { org: format!("org{}", rng.usize(..40)), id: i as u32, text: word(rng, 80) };
        let old = n.to_item().unwrap();
        out.push(Original { entity: "Note", id: n.id.to_string(), new: old.clone(), old });
    }
    out
}

/// A fresh table in the old design holding every original, the old
/// design recorded.
async fn seed(client: &Client, originals: &[Original]) -> String {
    let name = unique_table_name("crash");
    Table::new(client.clone(), old_design(&name)).create_table().await.unwrap();
    let chunks: Vec<Vec<WriteRequest>> = originals
        .chunks(25)
        .map(|c| {
            c.iter()
                .map(|o| WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(o.old.clone())).build().unwrap()).build())
                .collect()
        })
        .collect();
    futures::stream::iter(chunks)
        .map(|mut pending| {
            let (client, name) = (client.clone(), name.clone());
            async move {
                while !pending.is_empty() {
                    let out = client.batch_write_item().request_items(&name, pending).send().await.unwrap();
                    pending = out.unprocessed_items.and_then(|mut m| m.remove(&name)).unwrap_or_default();
                }
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    record_design(client, &old_design(&name), &name).await.unwrap();
    name
}

async fn scan_all(client: &Client, table: &str) -> Vec<Raw> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = client.scan().table_name(table).consistent_read(true).set_exclusive_start_key(start).send().await.unwrap();
        out.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            return out;
        }
    }
}

/// What the table holds, checked against the originals.
#[derive(Debug, Default)]
struct State {
    /// Users in their old form / new form / both at once.
    users_old: usize,
    users_new: usize,
    users_both: usize,
    /// Projects with their new index keys.
    projects_new: usize,
    lock: bool,
    checkpoints: usize,
    checkpoints_done: usize,
    recorded_new: bool,
    index: bool,
    /// Violations: an item lost, altered, unexpected or (when `final`)
    /// present in an old form or twice.
    problems: Vec<String>,
}

impl State {
    fn phase(&self) -> &'static str {
        if self.recorded_new {
            if self.checkpoints > 0 {
                "design recorded, checkpoints not cleared yet"
            } else if self.lock {
                "checkpoints cleared, lock not released yet"
            } else {
                "finished (lock released)"
            }
        } else if !self.index {
            "before the index exists (planning)"
        } else if self.checkpoints == 0 && self.users_new == 0 && self.projects_new == 0 {
            "index created, backfill not started"
        } else if self.users_old > 0 || self.projects_new < PROJECTS {
            "backfill"
        } else {
            "backfill done (verification)"
        }
    }

    fn line(&self) -> String {
        format!(
            "{}: users old {} / new {} / both {}, projects indexed {}, checkpoints {} ({} done), lock {}",
            self.phase(),
            self.users_old,
            self.users_new,
            self.users_both,
            self.projects_new,
            self.checkpoints,
            self.checkpoints_done,
            self.lock
        )
    }
}

async fn inspect(client: &Client, table: &str, originals: &[Original], new: &TableDesign, last: bool) -> State {
    // Every form of every original, by its table key.
    let mut forms: HashMap<(String, String), Vec<(usize, bool)>> = HashMap::new();
    for (i, o) in originals.iter().enumerate() {
        forms.entry(key_of(&o.new)).or_default().push((i, true));
        if o.old != o.new {
            forms.entry(key_of(&o.old)).or_default().push((i, false));
        }
    }
    let mut seen = vec![(0usize, 0usize); originals.len()];
    let mut state = State::default();
    let live = singletable_migrate::describe(client, table).await.unwrap();
    state.index = live.indexes.iter().any(|i| i.name == "gsi1");
    state.recorded_new = read_recorded_design(client, table, "pk", "sk").await.unwrap().as_ref() == Some(new);
    for item in scan_all(client, table).await {
        let key = key_of(&item);
        if key.0 == RESERVED_PK {
            if key.1 == LOCK_SK {
                state.lock = true;
            } else if key.1.starts_with(CHECKPOINT_PREFIX) {
                state.checkpoints += 1;
                if item.get("done") == Some(&AttributeValue::Bool(true)) {
                    state.checkpoints_done += 1;
                }
            }
            continue;
        }
        let Some(candidates) = forms.get(&key) else {
            state.problems.push(format!("unexpected item {key:?}: {item:?}"));
            continue;
        };
        let matched = candidates.iter().find(|(i, is_new)| {
            let o = &originals[*i];
            item == if *is_new { o.new.clone() } else { o.old.clone() }
        });
        match matched {
            Some(&(i, true)) => seen[i].1 += 1,
            Some(&(i, false)) => seen[i].0 += 1,
            None => state.problems.push(format!("item {key:?} is neither form of its original: {item:?}")),
        }
    }
    for (o, &(old, new)) in originals.iter().zip(&seen) {
        match o.entity {
            "User" => {
                state.users_old += old;
                state.users_new += new;
                state.users_both += (old > 0 && new > 0) as usize;
            }
            "Project" => state.projects_new += new,
            _ => {}
        }
        let (what, bad) = if last {
            ("exactly once in its new form", old != 0 || new != 1)
        } else {
            ("in its old form, its new form or both", old + new == 0)
        };
        if bad && state.problems.len() < 50 {
            state.problems.push(format!("{} {} is not {what} (old form {old}, new form {new})", o.entity, o.id));
        }
    }
    state
}

struct Ctx {
    client: Client,
    endpoint: String,
    design_file: PathBuf,
    originals: Vec<Original>,
    logs: PathBuf,
    /// How long applies that ran from start to end without a kill took.
    full_runs: std::sync::Mutex<Vec<Duration>>,
}

impl Ctx {
    /// The median duration of a full apply so far, under the load of the
    /// trials running side by side: the scale of kill delays.
    fn full_apply(&self) -> Duration {
        let mut d = self.full_runs.lock().unwrap().clone();
        d.sort();
        d[(d.len() - 1) / 2]
    }
}

/// A running `singletable migrate apply`.
fn spawn_apply(ctx: &Ctx, table: &str, log: &Path) -> tokio::process::Child {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_singletable"))
        .args(["migrate", "apply", "--design"])
        .arg(&ctx.design_file)
        .args(["--table", table, "--auto-approve", "--offline", "--lease-seconds", &LEASE_SECONDS.to_string()])
        .args(["--page-size", "100", "--segments", "4"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .env("AWS_ENDPOINT_URL_DYNAMODB", &ctx.endpoint)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .kill_on_drop(true)
        .spawn()
        .expect("the singletable binary runs")
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Waits until a killed apply's lock has expired; returns how long.
async fn wait_for_lease(client: &Client, table: &str) -> Duration {
    let started = Instant::now();
    let key = singletable_migrate::reserved::reserved_key("pk", "sk", LOCK_SK);
    let lock = client.get_item().table_name(table).set_key(Some(key)).consistent_read(true).send().await.unwrap();
    if let Some(expires) = lock.item.as_ref().and_then(|i| i.get("expires_at_ms")).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok()) {
        // The lock is free once `expires_at_ms < now`.
        let wait = expires.saturating_sub(now_ms()) + 100;
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    started.elapsed()
}

/// How one apply run ended.
enum Ended {
    Killed { after: Duration, state: State },
    Exited { after: Duration, code: Option<i32>, output: String },
}

/// When to kill a run.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    /// This long after it started.
    After(Duration),
    /// This long after every segment's checkpoint says done (the backfill
    /// is over: verification, recording the design, clearing checkpoints
    /// and releasing the lock remain).
    AfterBackfill(Duration),
}

/// Whether the backfill's checkpoints all say done.
async fn backfill_done(client: &Client, table: &str) -> bool {
    let out = client
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :cp)")
        .expression_attribute_values(":pk", s(RESERVED_PK))
        .expression_attribute_values(":cp", s(CHECKPOINT_PREFIX))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.items().iter().filter(|i| i.get("done") == Some(&AttributeValue::Bool(true))).count() == 4
}

/// Runs one apply, killing it with SIGKILL when `kill` says unless it ends
/// first.
async fn run_apply(ctx: &Ctx, table: &str, kill: Option<Trigger>, log: &Path) -> Ended {
    let started = Instant::now();
    let mut child = spawn_apply(ctx, table, log);
    let delay = match kill {
        Some(Trigger::After(d)) => Some(d),
        Some(Trigger::AfterBackfill(d)) => loop {
            if child.try_wait().unwrap().is_some() || backfill_done(&ctx.client, table).await {
                break Some(d);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        },
        None => None,
    };
    let status = match delay {
        Some(delay) => match tokio::time::timeout(delay, child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => {
                // `Child::kill` sends SIGKILL on Unix.
                child.kill().await.unwrap();
                let after = started.elapsed();
                // Requests the process had in flight still land: let them,
                // so that the snapshot below is the state a resume meets.
                tokio::time::sleep(Duration::from_millis(150)).await;
                let state = inspect(&ctx.client, table, &ctx.originals, &new_design(table), false).await;
                return Ended::Killed { after, state };
            }
        },
        None => child.wait().await.unwrap(),
    };
    Ended::Exited { after: started.elapsed(), code: status.code(), output: std::fs::read_to_string(log).unwrap_or_default() }
}

/// `migrate plan` against the migrated table.
async fn plan_says_no_changes(ctx: &Ctx, table: &str) -> Result<(), String> {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_singletable"))
        .args(["migrate", "plan", "--design"])
        .arg(&ctx.design_file)
        .args(["--table", table, "--detailed-exitcode"])
        .env("AWS_ENDPOINT_URL_DYNAMODB", &ctx.endpoint)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(0) && stdout.starts_with("No changes.") {
        Ok(())
    } else {
        Err(format!("`migrate plan` after apply: exit {:?}\n{stdout}{}", out.status.code(), String::from_utf8_lossy(&out.stderr)))
    }
}

/// The random choices of one trial, drawn up front so that running trials
/// side by side does not change them.
#[derive(Debug, Clone)]
struct TrialPlan {
    number: usize,
    /// When to kill each run, until the list runs out.
    kills: Vec<Kill>,
}

#[derive(Debug, Clone, Copy)]
enum Kill {
    /// After this fraction of the duration of an apply (a full one for
    /// the first run, what is left for a resumed one).
    At(f64),
    /// This many milliseconds after the backfill is over.
    AfterBackfill(u64),
}

impl std::fmt::Display for Kill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kill::At(x) => write!(f, "{x:.2}"),
            Kill::AfterBackfill(ms) => write!(f, "backfill+{ms}ms"),
        }
    }
}

#[derive(Debug, Default)]
struct TrialOutcome {
    kills: usize,
    /// When each kill came, ms after its apply started.
    kill_ms: Vec<u128>,
    runs: usize,
    phases: Vec<&'static str>,
    problems: Vec<String>,
    elapsed: Duration,
    lease_waits: Duration,
    /// How long the run that completed took.
    completed_in: Duration,
}

async fn trial(ctx: Arc<Ctx>, plan: TrialPlan) -> TrialOutcome {
    let started = Instant::now();
    let mut outcome = TrialOutcome::default();
    let table = seed(&ctx.client, &ctx.originals).await;
    let new = new_design(&table);
    let mut kills = plan.kills.iter().copied();
    // The share of the items still to rewrite, as of the last kill.
    let mut left = 1.0;
    let tag = format!("trial {:2}", plan.number);
    loop {
        outcome.runs += 1;
        if outcome.runs > plan.kills.len() + 4 {
            outcome.problems.push(format!("{tag}: no apply completed in {} runs", outcome.runs - 1));
            break;
        }
        // The first kill scales with a full apply; a resumed apply's with
        // what is left of the work (it plans and verifies the whole table
        // again, whence the constant part).
        let trigger = kills.next().map(|k| match k {
            Kill::At(f) => Trigger::After(ctx.full_apply().mul_f64(f * (0.15 + 0.85 * left))),
            Kill::AfterBackfill(ms) => Trigger::AfterBackfill(Duration::from_millis(ms)),
        });
        let log = ctx.logs.join(format!("{table}-run{}.log", outcome.runs));
        match run_apply(&ctx, &table, trigger, &log).await {
            Ended::Killed { after, state } => {
                outcome.kills += 1;
                outcome.kill_ms.push(after.as_millis());
                eprintln!("{tag} ({table}): run {} SIGKILLed after {:>5} ms, {}", outcome.runs, after.as_millis(), state.line());
                outcome.phases.push(state.phase());
                left = ((state.users_old - state.users_both) + (PROJECTS - state.projects_new)) as f64 / (USERS + PROJECTS) as f64;
                for p in state.problems.iter().take(10) {
                    outcome.problems.push(format!("{tag}: after kill {}: {p}", outcome.kills));
                }
                outcome.lease_waits += wait_for_lease(&ctx.client, &table).await;
            }
            Ended::Exited { after, code: Some(0), output } => {
                let summary = output.lines().find(|l| l.starts_with("Apply complete") || l.starts_with("No changes")).unwrap_or("?");
                eprintln!("{tag} ({table}): run {} completed in {:>5} ms: {summary}", outcome.runs, after.as_millis());
                outcome.completed_in = after;
                if outcome.runs == 1 {
                    ctx.full_runs.lock().unwrap().push(after);
                }
                break;
            }
            Ended::Exited { after, code, output } => {
                // A resumed apply that fails is a finding in itself; run
                // again to see where the table ends up.
                outcome.problems.push(format!("{tag}: run {} exited {code:?} after {} ms:\n{output}", outcome.runs, after.as_millis()));
                eprintln!("{tag} ({table}): run {} FAILED (exit {code:?}):\n{output}", outcome.runs);
                wait_for_lease(&ctx.client, &table).await;
            }
        }
    }
    let state = inspect(&ctx.client, &table, &ctx.originals, &new, true).await;
    outcome.problems.extend(state.problems.iter().take(20).map(|p| format!("{tag}: at the end: {p}")));
    if !state.recorded_new {
        outcome.problems.push(format!("{tag}: the new design is not recorded"));
    }
    if state.lock || state.checkpoints > 0 {
        outcome.problems.push(format!("{tag}: left behind: lock {}, {} checkpoints", state.lock, state.checkpoints));
    }
    if let Err(e) = plan_says_no_changes(&ctx, &table).await {
        outcome.problems.push(format!("{tag}: {e}"));
    }
    if outcome.problems.is_empty() {
        singletable_tests::delete_table(&ctx.client, &table).await;
    } else {
        eprintln!("{tag}: table {table} kept for inspection; logs in {}", ctx.logs.display());
    }
    outcome.elapsed = started.elapsed();
    outcome
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_then_resume_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|v| v.strip_prefix("0x").map_or_else(|| v.parse().ok(), |h| u64::from_str_radix(h, 16).ok()))
        .unwrap_or(DEFAULT_SEED);
    let trials: usize = env_or("CRASH_TRIALS", DEFAULT_TRIALS);
    let lanes: usize = env_or("CRASH_LANES", DEFAULT_LANES).max(1);
    eprintln!("crash test: seed {seed:#x} (CRASH_SEED to replay), {trials} trials, {lanes} side by side");
    let mut rng = fastrand::Rng::with_seed(seed);

    let logs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("crash-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let design_file = logs.join("new-design.json");
    std::fs::write(&design_file, new_design("crash").to_json()).unwrap();
    let originals = originals(&mut rng);
    assert!(originals.len() >= 5_000);
    let ctx = Arc::new(Ctx { client: client().await, endpoint: endpoint().await, design_file, originals, logs, full_runs: Default::default() });

    // Calibration: full applies on fresh tables, as many side by side as
    // trials will run, checked like any trial. The median of full applies
    // (these, and later any trial's first apply that ends before its kill)
    // sets the scale of the kill delays.
    let calibration: Vec<TrialOutcome> = futures::future::join_all((0..lanes).map(|n| {
        let ctx = ctx.clone();
        async move { trial(ctx, TrialPlan { number: 100 + n, kills: vec![] }).await }
    }))
    .await;
    let mut problems: Vec<String> = calibration.iter().flat_map(|o| o.problems.clone()).collect();
    assert!(problems.is_empty(), "uninterrupted apply:\n{}", problems.join("\n"));
    eprintln!(
        "crash test: a full apply of {} items takes {:?} ms ({} side by side); a trial with seeding and checks {:.1} s",
        ctx.originals.len(),
        calibration.iter().map(|o| o.completed_in.as_millis()).collect::<Vec<_>>(),
        lanes,
        calibration[0].elapsed.as_secs_f64()
    );

    // The first kill of trial i falls in the i-th quantile of the apply's
    // duration; later kills (of the resumed applies) anywhere in it.
    // Every fifth trial's first kill comes instead at a random moment of
    // the apply's last stage, after the backfill.
    let draw = |rng: &mut fastrand::Rng, number: usize, first: Kill| {
        let extra = [0, 0, 0, 1, 1, 2][rng.usize(..6)].min(MAX_EXTRA_KILLS);
        let mut kills = vec![first];
        kills.extend((0..extra).map(|_| Kill::At(rng.f64())));
        TrialPlan { number, kills }
    };
    let late = |i: usize| i % 5 == 4;
    let timed = (0..trials).filter(|&i| !late(i)).count();
    let plans: Vec<TrialPlan> = (0..trials)
        .map(|i| {
            let first = if late(i) {
                Kill::AfterBackfill(rng.u64(..100))
            } else {
                let stratum = (0..i).filter(|&j| !late(j)).count();
                Kill::At((stratum as f64 + rng.f64()) / timed as f64)
            };
            draw(&mut rng, i, first)
        })
        .collect();
    // Spares, for trials whose apply finished before its first kill.
    let mut spares: Vec<TrialPlan> = (0..trials)
        .map(|i| {
            let first = Kill::At(rng.f64() * 0.8);
            draw(&mut rng, trials + i, first)
        })
        .collect();
    let run_all = |plans: Vec<TrialPlan>| {
        let ctx = ctx.clone();
        futures::stream::iter(plans)
            .map(move |p| {
                let ctx = ctx.clone();
                async move { (p.clone(), trial(ctx, p).await) }
            })
            .buffer_unordered(lanes)
            .collect::<Vec<(TrialPlan, TrialOutcome)>>()
    };
    let mut outcomes = run_all(plans).await;
    loop {
        let unkilled = outcomes.iter().filter(|(_, o)| o.kills == 0).count();
        if unkilled == 0 || spares.is_empty() {
            break;
        }
        let next: Vec<TrialPlan> = spares.drain(..unkilled.min(spares.len())).collect();
        outcomes.extend(run_all(next).await);
        if outcomes.iter().filter(|(_, o)| o.kills > 0).count() >= trials {
            break;
        }
    }
    outcomes.sort_by_key(|(p, _)| p.number);

    let mut phases: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut kills, mut killed_trials, mut runs) = (0, 0, 0);
    let mut lease_waits = Duration::ZERO;
    for (p, o) in &outcomes {
        kills += o.kills;
        killed_trials += (o.kills > 0) as usize;
        runs += o.runs;
        lease_waits += o.lease_waits;
        for ph in &o.phases {
            *phases.entry(ph).or_default() += 1;
        }
        eprintln!(
            "trial {:2}: kills planned {:?}, SIGKILLs at {:?} ms, {} runs, {:.1} s",
            p.number,
            p.kills.iter().map(ToString::to_string).collect::<Vec<_>>(),
            o.kill_ms,
            o.runs,
            o.elapsed.as_secs_f64()
        );
        problems.extend(o.problems.iter().cloned());
    }
    eprintln!(
        "crash test: seed {seed:#x}: {trials} trials on {} items, {kills} SIGKILLs in {killed_trials} trials, {runs} apply runs, {:.1} s waiting for leases, {:.1} s in all",
        ctx.originals.len(),
        lease_waits.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    eprintln!("crash test: kills by phase: {phases:?}; median full apply {} ms", ctx.full_apply().as_millis());
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    assert!(killed_trials >= trials, "only {killed_trials} trials were killed at least once; {trials} wanted");
}


/// Sets the cancel flag at the first progress event, like a Ctrl-C.
struct CancelAtFirstPage(Arc<std::sync::atomic::AtomicBool>);

impl singletable_migrate::Observer for CancelAtFirstPage {
    fn event(&self, event: singletable_migrate::Event) {
        if matches!(event, singletable_migrate::Event::Progress { .. }) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// A plan as `migrate plan` makes it.
async fn library_plan(client: &Client, table: &str) -> singletable_migrate::Plan {
    use singletable_migrate::analyze::{analyze, AnalyzeOptions};
    let new = new_design(table);
    let live = singletable_migrate::describe(client, table).await.unwrap();
    let recorded = read_recorded_design(client, table, "pk", "sk").await.unwrap();
    let changes = singletable_migrate::diff(recorded.as_ref(), &new, &live).unwrap();
    let entities = analyze(client, table, recorded.as_ref(), &new, &changes, &AnalyzeOptions::default()).await.unwrap();
    let fingerprint = singletable_migrate::fingerprint::fingerprint(&live, recorded.as_ref());
    singletable_migrate::Plan { table: table.into(), from: recorded, to: new, changes, entities, fingerprint, defaults: vec![] }
}

/// Checkpoints that claim a finished backfill the table does not reflect
/// (left by an earlier run of the same migration: a kill between
/// recording the design and clearing them, then a migration back and
/// forth; or a verification that failed after the backfill) make the
/// backfill skip everything. Verification catches it; the apply after
/// that must not be stuck on the same checkpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_checkpoints_that_lie_cost_one_failed_apply_not_a_stuck_table() {
    use singletable_migrate::{ApplyOptions, MigrateError, Migrator, Quiet};
    let client = client().await;
    let mut rng = fastrand::Rng::with_seed(7);
    let originals: Vec<Original> = originals(&mut rng).into_iter().filter(|o| o.id.ends_with('7')).collect();
    let table = seed(&client, &originals).await;
    let migrator = Migrator::new(client.clone());

    // An apply stopped at its first page leaves this migration's
    // checkpoints; mark them all done, as a finished backfill would.
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let opts = ApplyOptions { page_size: Some(10), cancel: cancel.clone(), ..ApplyOptions::default() };
    let err = migrator.apply(&library_plan(&client, &table).await, &opts, Arc::new(CancelAtFirstPage(cancel))).await.unwrap_err();
    assert!(matches!(err, MigrateError::Interrupted { .. }), "{err}");
    let reserved = client
        .query()
        .table_name(&table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :cp)")
        .expression_attribute_values(":pk", s(RESERVED_PK))
        .expression_attribute_values(":cp", s(CHECKPOINT_PREFIX))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    // The segments' checkpoints (the layout mark, which says they all
    // exist, has no segment).
    let segments: Vec<_> = reserved.items().iter().filter(|i| i.contains_key("segment")).cloned().collect();
    assert_eq!(segments.len(), 4, "one checkpoint per segment");
    for mut checkpoint in segments {
        checkpoint.insert("done".into(), AttributeValue::Bool(true));
        checkpoint.remove("resume_from");
        client.put_item().table_name(&table).set_item(Some(checkpoint)).send().await.unwrap();
    }

    // The table is mostly in the old form: verification refuses to record
    // the new design ...
    let err = migrator.apply(&library_plan(&client, &table).await, &ApplyOptions::default(), Arc::new(Quiet)).await.unwrap_err();
    assert!(matches!(err, MigrateError::Verification { .. }), "{err}");
    // ... and the next apply does the backfill instead of trusting the
    // checkpoints again.
    let report = migrator
        .apply(&library_plan(&client, &table).await, &ApplyOptions::default(), Arc::new(Quiet))
        .await
        .unwrap_or_else(|e| panic!("the apply after a failed verification: {e}"));
    assert!(report.moved > 0, "{report:?}");
    let state = inspect(&client, &table, &originals, &new_design(&table), true).await;
    assert!(state.problems.is_empty(), "{:#?}", state.problems);
    assert!(state.recorded_new && !state.lock && state.checkpoints == 0, "{}", state.line());
    singletable_tests::delete_table(&client, &table).await;
}
