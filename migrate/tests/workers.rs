//! Workers (issue 12): several `singletable migrate apply --worker`
//! processes share one migration's scan segments through leases in the
//! table, while the apply that holds the lock coordinates. Real processes
//! against DynamoDB Local, killed with SIGKILL and frozen with SIGSTOP.
//!
//! - `offline_trials_with_worker_kills`: one table of 20,000 items and a
//!   chain of 5 migrations on it (v1 -> v2 -> v1 -> ..., the key design
//!   flipping between `ORG#` and `TENANT#`), each one trial: a coordinator
//!   process (`--offline`) and 3 worker processes, 1 or 2 SIGKILLs at
//!   seeded points (each killed process started again; in trials 2 and 4
//!   the first kill hits the coordinator, started again once its lease ran
//!   out).
//! - `online_trials_with_writers_and_worker_kills`: the same chain of 5
//!   migrations applied online, with the apply in this process (so the test
//!   drives cut-over), 4 writers of the trial's old design keeping an exact
//!   ledger (carried from trial to trial), and 3 worker processes, 1 or 2
//!   SIGKILLs of worker processes at seeded points per trial; in trials 2
//!   and 4 the coordinator also crashes (its tasks stop, its lock and
//!   leases stay) and resumes once its lock ran out, and the workers take
//!   the stream's shard over meanwhile (shared replay, `online/shards.rs`).
//! - `a_frozen_worker_writes_nothing_after_losing_its_segments`: a worker
//!   stopped with SIGSTOP past its lease, continued with SIGCONT: its
//!   checkpoint writes are refused (the fencing token), and the migration
//!   ends verified.
//! - `a_worker_replays_the_stream_when_its_holder_dies_and_writes_nothing_once_frozen_past_its_lease`:
//!   the stream shard passes to a worker process when the coordinator
//!   crashes, and back when the worker is frozen; after SIGCONT nothing
//!   under its old shard lease goes through (a proxy journal).
//! - `a_frozen_online_worker_writes_no_data_item_after_losing_its_segments`:
//!   the same during an online apply with writers: after waking, no copy
//!   fenced by a lease it lost goes through (its requests are journaled
//!   by a proxy), and the table ends equal to the ledger.
//!
//! Each migration (each trial of the first two) ends with the table
//! against the seed (or the ledger): every item in its new form once, with
//! the acknowledged value, no old form, nothing deleted brought back, and
//! no lease, checkpoint, lock or online state left (nothing in the
//! reserved partition but the recorded design). Every worker process of a
//! trial has exited before the next trial starts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use singletable::{Table, TableDesign};
use singletable_migrate::planner::{make_plan, PlanRequest};
use singletable_migrate::reserved::record_design;
use singletable_migrate::{ApplyOptions, Migrator, Plan, Quiet};

mod v1 {
    #[derive(singletable::Item, Debug, Clone, PartialEq)]
    #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
    pub struct User {
        pub org: String,
        pub id: String,
        pub n: u64,
    }
}

mod v2 {
    #[derive(singletable::Item, Debug, Clone, PartialEq)]
    #[item(entity = "User", pk = "TENANT#{org}", sk = "USER#{id}")]
    pub struct User {
        pub org: String,
        pub id: String,
        pub n: u64,
    }
}

const ITEMS: usize = 20_000;
const LEASE_SECONDS: u64 = 2;
/// Enough for a worker to hold segments a while at the coordinator's
/// budget, few enough to keep the test short.
const FROZEN_ITEMS: usize = 6_000;
/// Enough for the replay to have rounds to write while the backfill runs.
const SHARD_ITEMS: usize = 3_000;
/// Migrations (trials) in each chain of the kill tests.
const TRIALS: usize = 5;
/// The writers' pause between two writes: in the kill trials, and in the
/// frozen online worker's test.
const TRIAL_WRITER_PAUSE: Duration = Duration::from_millis(10);
const FROZEN_WRITER_PAUSE: Duration = Duration::from_millis(3);

/// The two key designs a chain of migrations flips between.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Version {
    V1,
    V2,
}

impl Version {
    fn design(self, table: &str) -> TableDesign {
        match self {
            Version::V1 => TableDesign::new(table).entity::<v1::User>().build().unwrap(),
            Version::V2 => TableDesign::new(table).entity::<v2::User>().build().unwrap(),
        }
    }

    /// The partition key prefix of its items.
    fn prefix(self) -> &'static str {
        match self {
            Version::V1 => "ORG#",
            Version::V2 => "TENANT#",
        }
    }

    /// Trial `trial` (from 1) of a chain starting at v1: (old, new).
    fn trial(trial: usize) -> (Version, Version) {
        if trial % 2 == 1 {
            (Version::V1, Version::V2)
        } else {
            (Version::V2, Version::V1)
        }
    }

    /// An application write of user `i` in this design.
    async fn put(self, t: &Table, i: usize, n: u64) {
        let (org, id) = (org(i), format!("u{i}"));
        match self {
            Version::V1 => {
                let user = v1::User { org, id, n };
                singletable_tests::local_retry(|| t.put(&user)).await;
            }
            Version::V2 => {
                let user = v2::User { org, id, n };
                singletable_tests::local_retry(|| t.put(&user)).await;
            }
        }
    }

    /// An application delete of user `i` in this design.
    async fn delete(self, t: &Table, i: usize) {
        let key = (org(i), format!("u{i}"));
        match self {
            Version::V1 => singletable_tests::local_retry(|| t.delete::<v1::User>(&key)).await,
            Version::V2 => singletable_tests::local_retry(|| t.delete::<v2::User>(&key)).await,
        }
    }
}

fn org(i: usize) -> String {
    format!("o{}", i % 40)
}

async fn within<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f).await.unwrap_or_else(|_| panic!("{what} did not finish within {secs} s"))
}

/// A table of `items` v1 users (n = 0), v1 recorded as its design.
async fn seed_table(client: &Client, items: usize) -> String {
    let name = singletable_tests::unique_table_name("workers");
    let table = Table::new(client.clone(), Version::V1.design(&name));
    table.create_table().await.unwrap();
    let users: Vec<v1::User> = (0..items).map(|i| v1::User { org: org(i), id: format!("u{i}"), n: 0 }).collect();
    table.batch_write().put_all(&users).send().await.unwrap();
    record_design(client, &Version::V1.design(&name), &name).await.unwrap();
    name
}

/// The plan from the design `table` records to `to`, saved to a file (named
/// by `tag`) as a user saves it.
async fn plan_to(client: &Client, dir: &Path, table: &str, to: Version, tag: &str) -> (Plan, PathBuf) {
    let plan = make_plan(client, &PlanRequest::new(to.design(table)).table(table)).await.unwrap().plan;
    assert!(plan.blocking_errors().is_empty(), "{:?}", plan.blocking_errors());
    let file = dir.join(format!("{table}-{tag}-plan.json"));
    std::fs::write(&file, serde_json::to_string_pretty(&plan).unwrap()).unwrap();
    (plan, file)
}

/// A seeded table and its plan to v2, saved to a file as a user saves it.
async fn seeded(client: &Client, dir: &Path, items: usize) -> (String, Plan, PathBuf) {
    let name = seed_table(client, items).await;
    let (plan, file) = plan_to(client, dir, &name, Version::V2, "v2").await;
    (name, plan, file)
}

fn logs_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("singletable-workers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `singletable migrate apply <plan> <args>`, logging at info to `log`.
fn spawn(endpoint: &str, plan: &Path, args: &[&str], log: &Path) -> tokio::process::Child {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let err = out.try_clone().unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_singletable"))
        .args(["migrate", "apply"])
        .arg(plan)
        .args(args)
        .args(["--lease-seconds", &LEASE_SECONDS.to_string(), "--page-size", "100", "--segments", "16"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .env("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "singletable_migrate=info")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .kill_on_drop(true)
        .spawn()
        .expect("the singletable binary runs")
}

fn worker(endpoint: &str, plan: &Path, log: &Path) -> tokio::process::Child {
    spawn(endpoint, plan, &["--worker"], log)
}

fn s(item: &HashMap<String, AttributeValue>, a: &str) -> String {
    item.get(a).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

/// The table against `ledger` (id -> value, or None for deleted), every
/// item expected in its new form (partition key starting with
/// `new_prefix`): the differences, named.
async fn differences(client: &Client, table: &str, ledger: &HashMap<String, Option<u64>>, new_prefix: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut found: HashMap<String, u64> = HashMap::new();
    for item in singletable_tests::scan_all(client, table).await {
        let pk = s(&item, "pk");
        if pk == "#SINGLETABLE" {
            if s(&item, "sk") != "#DESIGN" {
                problems.push(format!("left behind: {}", s(&item, "sk")));
            }
            continue;
        }
        if !pk.starts_with(new_prefix) {
            problems.push(format!("old form left: {pk} {}", s(&item, "sk")));
            continue;
        }
        let id = s(&item, "id");
        let v = item["n"].as_n().unwrap().parse().unwrap();
        if found.insert(id.clone(), v).is_some() {
            problems.push(format!("duplicate {id}"));
        }
    }
    for (id, want) in ledger {
        if found.get(id).copied() != *want {
            problems.push(format!("{id}: ledger {want:?}, table {:?}", found.get(id)));
        }
    }
    for id in found.keys() {
        if !ledger.contains_key(id) {
            problems.push(format!("{id}: in the table, not in the ledger (resurrected?)"));
        }
    }
    problems
}

fn seed_ledger(items: usize) -> HashMap<String, Option<u64>> {
    (0..items).map(|i| (format!("u{i}"), Some(0))).collect()
}

/// SIGKILLs a child.
fn kill(child: &mut tokio::process::Child) {
    let pid = child.id().expect("running") as i32;
    // SAFETY: a plain kill(2) of our own child.
    unsafe { libc_kill(pid, 9) };
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Waits for a child, bounded; its exit status.
async fn wait(child: &mut tokio::process::Child, secs: u64, what: &str) -> std::process::ExitStatus {
    within(secs, what, child.wait()).await.unwrap()
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// A process of a kill trial, with a log of its own.
struct Proc {
    /// "coordinator", "worker2", ...
    who: String,
    child: tokio::process::Child,
    log: PathBuf,
}

/// The processes of one trial, and every log they wrote (those of killed
/// processes included).
struct Trial<'a> {
    endpoint: &'a str,
    plan_file: PathBuf,
    dir: &'a Path,
    tag: String,
    logs: Vec<PathBuf>,
}

impl Trial<'_> {
    fn start(&mut self, who: &str, args: &[&str]) -> Proc {
        let log = self.dir.join(format!("{}-{who}-{}.log", self.tag, self.logs.len()));
        self.logs.push(log.clone());
        Proc { who: who.to_string(), child: spawn(self.endpoint, &self.plan_file, args, &log), log }
    }

    /// 1 or 2 SIGKILLs, each after a seeded 0.3–2 s, of the process
    /// `pick(k)` chooses among `procs`, each started again at once (a
    /// coordinator once its lease ran out: a second apply fails fast while
    /// the lock is held, so the operator waits). A process that had
    /// exited is skipped. The kills, described, and how many hit a running
    /// process.
    async fn kill_some(
        &mut self,
        procs: &mut [Proc],
        seed: u64,
        started: Instant,
        coordinator_args: &[&str],
        pick: impl Fn(usize, &mut fastrand::Rng) -> usize,
    ) -> (Vec<String>, usize) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let (mut kills, mut real) = (Vec::new(), 0);
        for k in 0..rng.usize(1..=2) {
            tokio::time::sleep(Duration::from_millis(rng.u64(300..2000))).await;
            let which = pick(k, &mut rng);
            let at = started.elapsed().as_secs_f64();
            let who = procs[which].who.clone();
            if !kill_if_running(&mut procs[which]).await {
                kills.push(format!("{who} at {at:.1} s (had exited: skipped)"));
                continue;
            }
            real += 1;
            kills.push(format!("{who} at {at:.1} s"));
            procs[which] = if who == "coordinator" {
                tokio::time::sleep(Duration::from_secs(LEASE_SECONDS + 1)).await;
                self.start("coordinator", coordinator_args)
            } else {
                self.start(&who, &["--worker"])
            };
        }
        (kills, real)
    }

    /// Stream shard leases the worker processes took, from their logs.
    fn shards_taken_by_workers(&self) -> usize {
        self.logs
            .iter()
            .filter(|l| !l.to_string_lossy().contains("-coordinator-"))
            .map(|l| std::fs::read_to_string(l).unwrap_or_default().matches("stream shard lease taken").count())
            .sum()
    }

    /// The end of a trial: every worker process exits by itself, and the
    /// table holds what `ledger` says, in design `to`. The segment leases
    /// the workers took.
    async fn end(&self, workers: &mut [Proc], trial: usize, client: &Client, table: &str, ledger: &HashMap<String, Option<u64>>, to: Version) -> usize {
        for p in workers.iter_mut() {
            worker_exited(p, 60, trial).await;
        }
        assert_no_differences(&differences(client, table, ledger, to.prefix()).await, trial);
        self.taken_by_workers()
    }

    /// Segment leases the worker processes took, from their logs.
    fn taken_by_workers(&self) -> usize {
        self.logs
            .iter()
            .filter(|l| !l.to_string_lossy().contains("-coordinator-"))
            .map(|l| std::fs::read_to_string(l).unwrap_or_default().matches("segment lease taken").count())
            .sum()
    }
}

/// SIGKILLs `p` if it is still running (and reaps it): whether it was.
async fn kill_if_running(p: &mut Proc) -> bool {
    if p.child.try_wait().unwrap().is_some() {
        return false;
    }
    kill(&mut p.child);
    let _ = p.child.wait().await;
    true
}

/// Waits up to `secs` for a worker process to exit by itself (else kills
/// it and fails): it must have succeeded, or found no apply of its plan,
/// or found the apply already done.
async fn worker_exited(p: &mut Proc, secs: u64, trial: usize) {
    let status = match tokio::time::timeout(Duration::from_secs(secs), p.child.wait()).await {
        Ok(status) => status.unwrap(),
        Err(_) => {
            kill(&mut p.child);
            let _ = p.child.wait().await;
            panic!("trial {trial}: {} did not exit within {secs} s (killed)\n{}", p.who, tail(&p.log));
        }
    };
    let text = std::fs::read_to_string(&p.log).unwrap_or_default();
    assert!(
        status.success() || text.contains("no apply of this plan") || text.contains("already records this plan's design"),
        "trial {trial}: {}: {status}\n{}",
        p.who,
        tail(&p.log)
    );
}

fn assert_no_differences(problems: &[String], trial: usize) {
    assert!(problems.is_empty(), "trial {trial}: {} problems, e.g. {:?}", problems.len(), &problems[..problems.len().min(8)]);
}

/// A chain of offline migrations of one table, each with a coordinator
/// process and 3 worker processes killed at seeded points.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_trials_with_worker_kills() {
    let client = singletable_tests::client().await;
    let endpoint = singletable_tests::endpoint().await;
    let dir = logs_dir();
    let test_started = Instant::now();
    let table = seed_table(&client, ITEMS).await;
    eprintln!("seeded {ITEMS} items in {:.1} s", test_started.elapsed().as_secs_f64());
    let ledger = seed_ledger(ITEMS);
    let coordinator_args = ["--offline"];
    let (mut real_kills, mut taken) = (0usize, 0usize);
    for trial in 1..=TRIALS {
        let (from, to) = Version::trial(trial);
        let tag = format!("{table}-offline-t{trial}");
        let (_plan, plan_file) = plan_to(&client, &dir, &table, to, &format!("offline-t{trial}")).await;
        let mut t = Trial { endpoint: &endpoint, plan_file, dir: &dir, tag, logs: Vec::new() };
        let started = Instant::now();
        let mut procs = vec![t.start("coordinator", &coordinator_args)];
        for w in 1..4 {
            procs.push(t.start(&format!("worker{w}"), &["--worker"]));
        }
        // In trials 2 and 4 the first kill hits the coordinator; the others
        // a worker.
        let (kills, real) =
            t.kill_some(&mut procs, 1200 + trial as u64, started, &coordinator_args, |k, rng| if trial % 2 == 0 && k == 0 { 0 } else { rng.usize(1..4) }).await;
        real_kills += real;
        let status = wait(&mut procs[0].child, 240, "the coordinator").await;
        assert!(status.success(), "trial {trial}: coordinator: {status}\n{}", tail(&procs[0].log));
        let took = t.end(&mut procs[1..], trial, &client, &table, &ledger, to).await;
        taken += took;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "TRIAL {trial} offline {from:?}->{to:?}: kills [{}], {secs:.1} s, 0 acked writes, {took} segment leases taken by worker processes: ok",
            kills.join(", ")
        );
    }
    eprintln!("offline: {TRIALS} trials, {real_kills} kills of running processes, {:.1} s in all", test_started.elapsed().as_secs_f64());
    assert!(real_kills >= TRIALS, "only {real_kills} kills hit a running process in {TRIALS} trials");
    assert!(taken > 0, "no worker took a segment");
    singletable_tests::delete_table(&client, &table).await;
}

/// Prints the apply's events (but progress), with the seconds since it
/// started.
struct Print(Instant);

impl singletable_migrate::Observer for Print {
    fn event(&self, event: singletable_migrate::Event) {
        if !matches!(event, singletable_migrate::Event::Progress { .. } | singletable_migrate::Event::Verified { .. }) {
            eprintln!("[{:.1} s] {event:?}", self.0.elapsed().as_secs_f64());
        }
    }
}

/// The old version, writing design `version`: puts, deletes and creates of
/// its own items (those with index % 4 == k), from the values of `start`
/// (the ledger of every item, id -> value or None for deleted), pausing
/// `pause` between writes. Its share of the ledger once stopped.
#[allow(clippy::too_many_arguments)]
async fn old_writer(
    client: Client,
    table: String,
    version: Version,
    stop: Arc<AtomicBool>,
    k: usize,
    writes: Arc<AtomicU64>,
    start: HashMap<String, Option<u64>>,
    pause: Duration,
) -> HashMap<String, Option<u64>> {
    let t = Table::new(client, version.design(&table));
    let mine: Vec<usize> = (0..start.len()).filter(|i| i % 4 == k).collect();
    let mut ledger: HashMap<String, Option<u64>> = mine.iter().map(|i| (format!("u{i}"), start[&format!("u{i}")])).collect();
    let mut step = 0usize;
    while !stop.load(Ordering::SeqCst) {
        step += 1;
        let i = mine[(step * 7919) % mine.len()];
        let id = format!("u{i}");
        match (step % 10, ledger[&id]) {
            (0, Some(_)) => {
                version.delete(&t, i).await;
                ledger.insert(id, None);
            }
            (_, None) => {
                version.put(&t, i, 100).await;
                ledger.insert(id, Some(100));
            }
            (_, Some(v)) => {
                version.put(&t, i, v + 1).await;
                ledger.insert(id, Some(v + 1));
            }
        }
        writes.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(pause).await;
    }
    ledger
}

/// A chain of online migrations of one table, the apply in this process,
/// 4 writers of each trial's old design keeping the ledger, and 3 worker
/// processes killed at seeded points.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_trials_with_writers_and_worker_kills() {
    let client = singletable_tests::client().await;
    let endpoint = singletable_tests::endpoint().await;
    let dir = logs_dir();
    let test_started = Instant::now();
    let table = seed_table(&client, ITEMS).await;
    eprintln!("seeded {ITEMS} items in {:.1} s", test_started.elapsed().as_secs_f64());
    // The truth of the items' values, carried from trial to trial.
    let mut ledger = seed_ledger(ITEMS);
    // The coordinator is this process: it holds the lock and drives the
    // phases; its backfill is one worker among four.
    let migrator = Migrator::new(client.clone()).with_streams(singletable_tests::streams_client().await);
    let opts = ApplyOptions { segments: 16, page_size: Some(100), lease: Duration::from_secs(LEASE_SECONDS), ..ApplyOptions::default() };
    let (mut real_kills, mut taken, mut shards_taken) = (0usize, 0usize, 0usize);
    for trial in 1..=TRIALS {
        let (from, to) = Version::trial(trial);
        let tag = format!("{table}-online-t{trial}");
        let (plan, plan_file) = plan_to(&client, &dir, &table, to, &format!("online-t{trial}")).await;
        let mut t = Trial { endpoint: &endpoint, plan_file, dir: &dir, tag, logs: Vec::new() };
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicU64::new(0));
        let writers: Vec<_> = (0..4)
            .map(|k| tokio::spawn(old_writer(client.clone(), table.clone(), from, stop.clone(), k, writes.clone(), ledger.clone(), TRIAL_WRITER_PAUSE)))
            .collect();
        let mut online = within(60, "start", migrator.start_online(&plan, &opts, Arc::new(Print(Instant::now())))).await.unwrap();
        let mut procs: Vec<Proc> = (1..4).map(|w| t.start(&format!("worker{w}"), &["--worker"])).collect();
        let (mut kills, real) = t.kill_some(&mut procs, 2100 + trial as u64, started, &[], |_, rng| rng.usize(0..3)).await;
        real_kills += real;
        // In trials 2 and 4 the coordinator crashes too (its tasks stop
        // where they are; its lock and leases stay, as after a SIGKILL) and
        // is started again once its lock ran out: meanwhile the workers
        // take its segments and the stream's shard over, and replay.
        let mut shard_takers = 0;
        if trial % 2 == 0 {
            let at = started.elapsed().as_secs_f64();
            drop(online);
            tokio::time::sleep(Duration::from_secs(LEASE_SECONDS + 2)).await;
            shard_takers = t.shards_taken_by_workers();
            online = within(60, "the coordinator resuming", migrator.start_online(&plan, &opts, Arc::new(Print(Instant::now())))).await.unwrap();
            kills.push(format!("coordinator at {at:.1} s (crashed, resumed; shard leases taken by workers meanwhile: {shard_takers})"));
        }
        shards_taken += shard_takers;
        within(180, "catch-up", online.wait_caught_up()).await.unwrap();
        let caught_up = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::SeqCst);
        let mut next = HashMap::new();
        for w in writers {
            next.extend(w.await.unwrap());
        }
        assert_eq!(next.len(), ledger.len(), "the writers share every item");
        ledger = next;
        let cut = within(120, "cut-over", online.cutover()).await.unwrap();
        assert!(cut.content.problems.is_empty(), "trial {trial}: {:?}", cut.content.problems);
        let contract_started = Instant::now();
        within(120, "contract", online.complete()).await.unwrap();
        let contract = contract_started.elapsed().as_secs_f64();
        let took = t.end(&mut procs, trial, &client, &table, &ledger, to).await;
        taken += took;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "TRIAL {trial} online {from:?}->{to:?}: kills [{}], {secs:.1} s (caught up at {caught_up:.1} s, cut-over {:.1} s, contract {contract:.1} s), {} acked writes, {took} segment leases taken by worker processes: ok",
            kills.join(", "),
            cut.took.as_secs_f64(),
            writes.load(Ordering::Relaxed)
        );
    }
    eprintln!("online: {TRIALS} trials, {real_kills} kills of running processes, {:.1} s in all", test_started.elapsed().as_secs_f64());
    assert!(real_kills >= TRIALS, "only {real_kills} kills hit a running process in {TRIALS} trials");
    assert!(taken > 0, "no worker took a segment");
    assert!(shards_taken > 0, "no worker took the stream's shard while the coordinator was down");
    singletable_tests::delete_table(&client, &table).await;
}

/// The owners of the segment leases, from the table.
async fn lease_owners(client: &Client, table: &str) -> Vec<(String, bool)> {
    singletable_tests::scan_all(client, table)
        .await
        .into_iter()
        .filter(|i| s(i, "pk") == "#SINGLETABLE" && s(i, "sk").starts_with("#CHECKPOINT#"))
        .map(|i| (s(&i, "owner"), matches!(i.get("done"), Some(AttributeValue::Bool(true)))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_worker_writes_nothing_after_losing_its_segments() {
    let client = singletable_tests::client().await;
    let endpoint = singletable_tests::endpoint().await;
    let dir = logs_dir();
    let (table, _plan, plan_file) = seeded(&client, &dir, FROZEN_ITEMS).await;
    let log = |who: &str| dir.join(format!("{table}-{who}.log"));
    // The worker starts first, so it holds segments when the coordinator
    // lays them out; the coordinator (throttled) takes the rest.
    let mut frozen = worker(&endpoint, &plan_file, &log("frozen"));
    let mut coordinator = spawn(&endpoint, &plan_file, &["--offline", "--max-wcu", "400"], &log("coordinator"));
    let pid = frozen.id().unwrap();
    let mine = format!("(pid {pid})");
    within(60, "the worker taking segments", async {
        while !lease_owners(&client, &table).await.iter().any(|(o, done)| o.contains(&mine) && !done) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    unsafe { libc_kill(pid as i32, 19) }; // SIGSTOP
    // Past its lease, the coordinator takes its segments over.
    within(60, "the segments taken over", async {
        while lease_owners(&client, &table).await.iter().any(|(o, done)| o.contains(&mine) && !done) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    unsafe { libc_kill(pid as i32, 18) }; // SIGCONT
    let status = wait(&mut coordinator, 240, "the coordinator").await;
    assert!(status.success(), "coordinator: {status}\n{}", tail(&log("coordinator")));
    let status = wait(&mut frozen, 60, "the frozen worker").await;
    let text = std::fs::read_to_string(log("frozen")).unwrap_or_default();
    eprintln!("frozen worker ({status}):\n{}", tail(&log("frozen")));
    // Its renewal or checkpoint after waking was refused: the lease had
    // another owner at another epoch.
    assert!(text.contains("segment lease lost"), "the frozen worker never found its lease lost:\n{}", tail(&log("frozen")));
    let problems = differences(&client, &table, &seed_ledger(FROZEN_ITEMS), Version::V2.prefix()).await;
    assert!(problems.is_empty(), "{} problems, e.g. {:?}", problems.len(), &problems[..problems.len().min(8)]);
    singletable_tests::delete_table(&client, &table).await;
}

/// The segment leases a worker holds, unfinished: (checkpoint key, epoch).
async fn held_by(client: &Client, table: &str, pid: u32) -> Vec<(String, String)> {
    let mine = format!("(pid {pid})");
    singletable_tests::scan_all(client, table)
        .await
        .into_iter()
        .filter(|i| s(i, "pk") == "#SINGLETABLE" && s(i, "sk").starts_with("#CHECKPOINT#") && s(i, "owner").contains(&mine))
        .filter(|i| !matches!(i.get("done"), Some(AttributeValue::Bool(true))))
        .map(|i| (s(&i, "sk"), i.get("epoch").and_then(|v| v.as_n().ok()).cloned().unwrap_or_default()))
        .collect()
}

/// The online apply, with writers: a worker (through a proxy that keeps a
/// journal of its requests) is frozen with SIGSTOP while it holds
/// segments, the others take them over, and SIGCONT wakes it. No
/// copy transaction fenced by a lease it held before the freeze succeeds
/// after it wakes: its copies carry the lease's owner and epoch, which the
/// coordinator's take changed (the journal is read once the worker has
/// exited: an online worker may go on replaying stream shards until
/// cut-over). The migration ends against the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_online_worker_writes_no_data_item_after_losing_its_segments() {
    let client = singletable_tests::client().await;
    let endpoint = singletable_tests::endpoint().await;
    let dir = logs_dir();
    let (table, plan, plan_file) = seeded(&client, &dir, FROZEN_ITEMS).await;
    let log = |who: &str| dir.join(format!("{table}-{who}.log"));
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..2).map(|k| tokio::spawn(old_writer(client.clone(), table.clone(), Version::V1, stop.clone(), k, writes.clone(), seed_ledger(FROZEN_ITEMS), FROZEN_WRITER_PAUSE))).collect();

    let proxy = singletable_tests::faults::FaultProxy::start(12).await;
    proxy.keep_journal();
    // The coordinator is throttled so the worker has segments in hand.
    let migrator = Migrator::new(client.clone()).with_streams(singletable_tests::streams_client().await);
    let opts = ApplyOptions {
        segments: 16,
        page_size: Some(100),
        lease: Duration::from_secs(LEASE_SECONDS),
        max_wcu: Some(400.0),
        ..ApplyOptions::default()
    };
    let mut online = within(60, "start", migrator.start_online(&plan, &opts, Arc::new(Print(Instant::now())))).await.unwrap();
    let mut frozen = worker(proxy.url(), &plan_file, &log("frozen"));
    let pid = frozen.id().unwrap();
    let held = within(60, "the worker holding segments", async {
        loop {
            let held = held_by(&client, &table, pid).await;
            if !held.is_empty() {
                return held;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    unsafe { libc_kill(pid as i32, 19) }; // SIGSTOP
    // Two fresh workers join: they and the coordinator take the frozen
    // worker's segments over once its leases run out, and finish the copy.
    let mut helpers: Vec<_> = (1..3).map(|w| worker(&endpoint, &plan_file, &log(&format!("helper{w}")))).collect();
    let mut held = [held, held_by(&client, &table, pid).await].concat();
    held.sort();
    held.dedup();
    within(60, "the segments taken over", async {
        while !held_by(&client, &table, pid).await.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let woke = Instant::now();
    unsafe { libc_kill(pid as i32, 18) }; // SIGCONT
    // Awake, it finds its leases lost (or exits); an online worker may then
    // go on (replaying stream shards) until cut-over, so its exit is
    // awaited after complete().
    within(60, "the frozen worker waking", async {
        while !std::fs::read_to_string(log("frozen")).unwrap_or_default().contains("segment lease lost") && frozen.try_wait().unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;

    within(240, "catch-up", online.wait_caught_up()).await.unwrap();
    stop.store(true, Ordering::SeqCst);
    let mut ledger = HashMap::new();
    for w in writers {
        ledger.extend(w.await.unwrap());
    }
    // The writers covered half the items; the rest keep their seed value.
    for (id, v) in seed_ledger(FROZEN_ITEMS) {
        ledger.entry(id).or_insert(v);
    }
    let cut = within(120, "cut-over", online.cutover()).await.unwrap();
    assert!(cut.content.problems.is_empty(), "{:?}", cut.content.problems);
    within(120, "contract", online.complete()).await.unwrap();
    let status = wait(&mut frozen, 60, "the frozen worker").await;
    eprintln!("frozen worker ({status}), held {held:?}:\n{}", tail(&log("frozen")));
    for h in helpers.iter_mut() {
        let _ = wait(h, 60, "a helper").await;
    }

    // Its copies after waking, fenced by a lease it held before.
    let fenced_by_old_lease = |body: &serde_json::Value| {
        let Some(check) = body["TransactItems"].as_array().and_then(|a| a.last()).map(|a| &a["ConditionCheck"]) else { return false };
        let (sk, epoch) = (check["Key"]["sk"]["S"].as_str().unwrap_or(""), check["ExpressionAttributeValues"][":e"]["N"].as_str().unwrap_or(""));
        held.iter().any(|(s, e)| s == sk && e == epoch)
    };
    let after: Vec<_> = proxy.journal().into_iter().filter(|x| x.at > woke && x.op == "TransactWriteItems" && fenced_by_old_lease(&x.body)).collect();
    let written = after.iter().filter(|x| x.status == 200).count();
    eprintln!("after waking: {} copy transactions under an old lease, {written} written, {} refused", after.len(), after.len() - written);
    assert_eq!(written, 0, "a copy under a lease lost while frozen went through");
    let text = std::fs::read_to_string(log("frozen")).unwrap_or_default();
    assert!(text.contains("segment lease lost"), "the frozen worker never found its lease lost:\n{}", tail(&log("frozen")));
    let problems = differences(&client, &table, &ledger, Version::V2.prefix()).await;
    assert!(problems.is_empty(), "{} problems, e.g. {:?}", problems.len(), &problems[..problems.len().min(8)]);
    singletable_tests::delete_table(&client, &table).await;
}

/// The stream shard leases: (checkpoint key, owner, epoch, position).
async fn shard_leases(client: &Client, table: &str) -> Vec<(String, String, String, String)> {
    singletable_tests::scan_all(client, table)
        .await
        .into_iter()
        .filter(|i| s(i, "pk") == "#SINGLETABLE" && s(i, "sk").contains("#shard#"))
        .map(|i| (s(&i, "sk"), s(&i, "owner"), i.get("epoch").and_then(|v| v.as_n().ok()).cloned().unwrap_or_default(), s(&i, "position")))
        .collect()
}

/// Waits until a shard lease is held by the worker with `pid` (or, with
/// `held: false`, until none is); returns the leases then.
async fn until_held(client: &Client, table: &str, pid: u32, held: bool) -> Vec<(String, String, String, String)> {
    let mine = format!("(pid {pid})");
    loop {
        let leases = shard_leases(client, table).await;
        if leases.iter().any(|l| l.1.contains(&mine)) == held {
            return leases;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stream shards shared among workers: the replay of an online apply runs
/// in whichever worker holds a shard's lease (`online/shards.rs`), and a
/// worker that lost it writes nothing for it. DynamoDB Local gives the
/// stream one shard, held by the coordinator (this process) from the
/// start:
/// 1. the coordinator crashes (its tasks stop where they are; its lock
///    and leases stay, as after a SIGKILL); the worker process takes the
///    shard once its lease runs out and replays it: the shard's saved
///    position moves on under the worker's lease while writers write;
/// 2. the worker is frozen (SIGSTOP) holding the shard; the coordinator
///    starts again (resuming) and takes the shard once the frozen lease
///    runs out; SIGCONT wakes the worker. Its requests go through a proxy
///    that keeps a journal: after it wakes, no replay transaction fenced
///    by its old lease and no update of the shard's checkpoint under that
///    lease goes through;
/// 3. cut-over drains, contract completes, the worker exits by itself,
///    and the table equals the writers' exact ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_replays_the_stream_when_its_holder_dies_and_writes_nothing_once_frozen_past_its_lease() {
    let client = singletable_tests::client().await;
    let dir = logs_dir();
    let (name, plan, plan_file) = seeded(&client, &dir, SHARD_ITEMS).await;
    let log = dir.join(format!("{name}-shard-worker.log"));

    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let seed = seed_ledger(SHARD_ITEMS);
    let writers: Vec<_> = (0..4)
        .map(|k| tokio::spawn(old_writer(client.clone(), name.clone(), Version::V1, stop.clone(), k, writes.clone(), seed.clone(), TRIAL_WRITER_PAUSE)))
        .collect();
    let migrator = Migrator::new(client.clone()).with_streams(singletable_tests::streams_client().await);
    let opts = ApplyOptions { segments: 16, page_size: Some(100), lease: Duration::from_secs(LEASE_SECONDS), max_wcu: Some(300.0), ..ApplyOptions::default() };
    let online = within(60, "start", migrator.start_online(&plan, &opts, Arc::new(Quiet))).await.unwrap();
    let proxy = singletable_tests::faults::FaultProxy::start(7).await;
    proxy.keep_journal();
    let mut w = worker(proxy.url(), &plan_file, &log);
    let pid = w.id().unwrap();

    // 1. The coordinator holds the shard; it crashes (its tasks stop, its
    // leases and lock stay), and the worker takes the shard over.
    let leases = within(30, "the coordinator holding the shard", async {
        loop {
            let leases = shard_leases(&client, &name).await;
            if leases.iter().any(|l| !l.1.is_empty()) {
                return leases;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    eprintln!("shard leases at the start: {leases:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(online);
    let crashed = Instant::now();
    let taken = within(30, "the worker taking the shard", until_held(&client, &name, pid, true)).await;
    eprintln!("{:.1} s after the crash the worker holds {taken:?}", crashed.elapsed().as_secs_f64());
    let mine = format!("(pid {pid})");
    let (sk, _, epoch, position) = taken.iter().find(|l| l.1.contains(&mine)).cloned().unwrap();
    // It replays: the shard's position moves on under its lease.
    within(30, "the worker's replay moving the shard's position", async {
        loop {
            let now = shard_leases(&client, &name).await;
            if now.iter().any(|l| l.0 == sk && l.1.contains(&mine) && l.2 == epoch && l.3 != position && !l.3.is_empty()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;

    // 2. Frozen while it holds the shard; the coordinator comes back and
    // takes the shard once the frozen worker's lease runs out.
    unsafe { libc_kill(pid as i32, 19) }; // SIGSTOP
    let frozen_epoch = shard_leases(&client, &name).await.into_iter().find(|l| l.0 == sk && l.1.contains(&mine)).map(|l| l.2).unwrap_or(epoch);
    tokio::time::sleep(Duration::from_secs(LEASE_SECONDS + 1)).await;
    let mut online = within(60, "the coordinator resuming", migrator.start_online(&plan, &opts, Arc::new(Quiet))).await.unwrap();
    let now = within(30, "the coordinator taking the shard back", until_held(&client, &name, pid, false)).await;
    eprintln!("the coordinator took the shard back: {now:?}");
    let woke = Instant::now();
    unsafe { libc_kill(pid as i32, 18) }; // SIGCONT
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 3. Cut-over, contract; the worker stops by itself.
    within(120, "catch-up", online.wait_caught_up()).await.unwrap();
    stop.store(true, Ordering::SeqCst);
    let mut ledger = HashMap::new();
    for w in writers {
        ledger.extend(w.await.unwrap());
    }
    let cut = within(90, "cut-over", online.cutover()).await.unwrap();
    assert!(cut.content.problems.is_empty(), "{:?}", cut.content.problems);
    within(90, "contract", online.complete()).await.unwrap();
    let status = within(60, "the worker stopping", w.wait()).await.unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "worker: {status}\n{}", tail(&log));
    assert!(text.contains("stream shard lease taken"), "the worker never took a shard:\n{}", tail(&log));
    assert!(text.contains("stream shard lease lost"), "the worker never found its shard lost:\n{}", tail(&log));

    // Nothing under the lease it held when frozen went through after it woke.
    let under_old_lease = |x: &singletable_tests::faults::Exchange| {
        let b = &x.body;
        match x.op.as_str() {
            "TransactWriteItems" => {
                let Some(check) = b["TransactItems"].as_array().and_then(|a| a.last()).map(|a| &a["ConditionCheck"]) else { return false };
                check["Key"]["sk"]["S"].as_str() == Some(sk.as_str()) && check["ExpressionAttributeValues"][":e"]["N"].as_str() == Some(frozen_epoch.as_str())
            }
            "UpdateItem" => b["Key"]["sk"]["S"].as_str() == Some(sk.as_str()) && b["ExpressionAttributeValues"][":epoch"]["N"].as_str() == Some(frozen_epoch.as_str()),
            _ => false,
        }
    };
    let journal = proxy.journal();
    let before: Vec<_> = journal.iter().filter(|x| x.at <= woke && under_old_lease(x)).collect();
    let after: Vec<_> = journal.iter().filter(|x| x.at > woke && under_old_lease(x)).collect();
    let written = after.iter().filter(|x| x.status == 200).count();
    eprintln!(
        "under the frozen worker's lease (epoch {frozen_epoch}): {} requests before it froze ({} replay transactions), {} after it woke, {written} of them went through",
        before.len(),
        before.iter().filter(|x| x.op == "TransactWriteItems").count(),
        after.len()
    );
    assert!(before.iter().any(|x| x.op == "TransactWriteItems" && x.status == 200), "the worker wrote no replay transaction under its lease");
    assert_eq!(written, 0, "a write under a shard lease lost while frozen went through: {:?}", after.iter().filter(|x| x.status == 200).map(|x| &x.op).collect::<Vec<_>>());

    let problems = differences(&client, &name, &ledger, Version::V2.prefix()).await;
    assert!(problems.is_empty(), "{} problems, e.g. {:?}", problems.len(), &problems[..problems.len().min(8)]);
    singletable_tests::delete_table(&client, &name).await;
}
