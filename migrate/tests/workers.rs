//! Workers (issue 12): several `singletable migrate apply --worker`
//! processes share one migration's scan segments through leases in the
//! table, while the apply that holds the lock coordinates. Real processes
//! against DynamoDB Local, killed with SIGKILL and frozen with SIGSTOP.
//!
//! - `worker_processes_share_an_offline_apply_through_kills`: 20,000
//!   items, a coordinator and 3 worker processes, 5 SIGKILLs at seeded
//!   points (restarted each time; one of them hits the coordinator).
//! - `worker_processes_share_an_online_apply_with_writers_through_kills`:
//!   20,000 items, the online apply in this process (so the test drives
//!   cut-over) with 4 writers keeping an exact ledger, and 3 worker
//!   processes, 5 SIGKILLs at seeded points.
//! - `a_frozen_worker_writes_nothing_after_losing_its_segments`: a worker
//!   stopped with SIGSTOP past its lease, continued with SIGCONT: its
//!   checkpoint writes are refused (the fencing token), and the migration
//!   ends verified.
//! - `a_frozen_online_worker_writes_no_data_item_after_losing_its_segments`:
//!   the same during an online apply with writers: after waking, no copy
//!   fenced by a lease it lost goes through (its requests are journaled
//!   by a proxy), and the table ends equal to the ledger.
//!
//! Each ends with the table against the seed (or the ledger): every item
//! in its new form once, with the acknowledged value, no old form, and
//! no lease, checkpoint or lock left.

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
use singletable_migrate::{ApplyOptions, Migrator, Plan};

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

fn old_design(table: &str) -> TableDesign {
    TableDesign::new(table).entity::<v1::User>().build().unwrap()
}

fn new_design(table: &str) -> TableDesign {
    TableDesign::new(table).entity::<v2::User>().build().unwrap()
}

fn org(i: usize) -> String {
    format!("o{}", i % 40)
}

async fn within<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f).await.unwrap_or_else(|_| panic!("{what} did not finish within {secs} s"))
}

/// A seeded table and its plan, saved to a file as a user saves it.
async fn seeded(client: &Client, dir: &Path, items: usize) -> (String, Plan, PathBuf) {
    let name = singletable_tests::unique_table_name("workers");
    let table = Table::new(client.clone(), old_design(&name));
    table.create_table().await.unwrap();
    let users: Vec<v1::User> = (0..items).map(|i| v1::User { org: org(i), id: format!("u{i}"), n: 0 }).collect();
    table.batch_write().put_all(&users).send().await.unwrap();
    record_design(client, &old_design(&name), &name).await.unwrap();
    let plan = make_plan(client, &PlanRequest::new(new_design(&name)).table(&name)).await.unwrap().plan;
    let file = dir.join(format!("{name}-plan.json"));
    std::fs::write(&file, serde_json::to_string_pretty(&plan).unwrap()).unwrap();
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

/// The table against `ledger` (id -> value, or None for deleted): the
/// differences, named.
async fn differences(client: &Client, table: &str, ledger: &HashMap<String, Option<u64>>) -> Vec<String> {
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
        if !pk.starts_with("TENANT#") {
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

/// SIGKILLs one of `procs` (index `which`) and starts it again with
/// `restart`.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_processes_share_an_offline_apply_through_kills() {
    let client = singletable_tests::client().await;
    let endpoint = singletable_tests::endpoint().await;
    let dir = logs_dir();
    let (table, _plan, plan_file) = seeded(&client, &dir, ITEMS).await;
    let log = |who: &str| dir.join(format!("{table}-{who}.log"));
    let coordinator_args = ["--offline"];
    let mut procs: Vec<tokio::process::Child> = vec![spawn(&endpoint, &plan_file, &coordinator_args, &log("coordinator"))];
    for w in 1..4 {
        procs.push(worker(&endpoint, &plan_file, &log(&format!("worker{w}"))));
    }
    let mut rng = fastrand::Rng::with_seed(12);
    let started = Instant::now();
    for k in 0..5 {
        tokio::time::sleep(Duration::from_millis(rng.u64(800..2500))).await;
        // The third kill hits the coordinator; the others a worker.
        let which = if k == 2 { 0 } else { rng.usize(1..4) };
        if procs[which].try_wait().unwrap().is_some() {
            continue;
        }
        kill(&mut procs[which]);
        let _ = procs[which].wait().await;
        eprintln!("kill {k} at {:.1} s: process {which}", started.elapsed().as_secs_f64());
        procs[which] = if which == 0 {
            // A second apply fails fast while the lock is held: the
            // operator waits out the killed one's lease first.
            tokio::time::sleep(Duration::from_secs(LEASE_SECONDS + 1)).await;
            spawn(&endpoint, &plan_file, &coordinator_args, &log("coordinator"))
        } else {
            worker(&endpoint, &plan_file, &log(&format!("worker{which}")))
        };
    }
    let status = wait(&mut procs[0], 240, "the coordinator").await;
    assert!(status.success(), "coordinator: {status}\n{}", tail(&log("coordinator")));
    for (w, p) in procs.iter_mut().enumerate().skip(1) {
        let status = wait(p, 60, "a worker").await;
        // A worker started after the apply finished finds no segments.
        let text = std::fs::read_to_string(log(&format!("worker{w}"))).unwrap_or_default();
        assert!(status.success() || text.contains("no apply of this plan"), "worker {w}: {status}\n{}", tail(&log(&format!("worker{w}"))));
    }
    let took: Vec<usize> = (1..4)
        .map(|w| std::fs::read_to_string(log(&format!("worker{w}"))).unwrap_or_default().matches("segment lease taken").count())
        .collect();
    eprintln!("segments taken by the workers: {took:?}, {:.1} s", started.elapsed().as_secs_f64());
    assert!(took.iter().sum::<usize>() > 0, "no worker took a segment");
    let problems = differences(&client, &table, &seed_ledger(ITEMS)).await;
    assert!(problems.is_empty(), "{} problems, e.g. {:?}", problems.len(), &problems[..problems.len().min(8)]);
    singletable_tests::delete_table(&client, &table).await;
}

struct Print;

impl singletable_migrate::Observer for Print {
    fn event(&self, event: singletable_migrate::Event) {
        if !matches!(event, singletable_migrate::Event::Progress { .. } | singletable_migrate::Event::Verified { .. }) {
            eprintln!("{event:?}");
        }
    }
}


/// The old version: puts, deletes and creates of its own items.
async fn old_writer(client: Client, table: String, stop: Arc<AtomicBool>, k: usize, writes: Arc<AtomicU64>, items: usize) -> HashMap<String, Option<u64>> {
    let t = Table::new(client, old_design(&table));
    let mine: Vec<usize> = (0..items).filter(|i| i % 4 == k).collect();
    let mut ledger: HashMap<String, Option<u64>> = mine.iter().map(|i| (format!("u{i}"), Some(0))).collect();
    let mut step = 0usize;
    while !stop.load(Ordering::SeqCst) {
        step += 1;
        let i = mine[(step * 7919) % mine.len()];
        let id = format!("u{i}");
        match (step % 10, ledger[&id]) {
            (0, Some(_)) => {
                let key = (org(i), id.clone());
                singletable_tests::local_retry(|| t.delete::<v1::User>(&key)).await;
                ledger.insert(id, None);
            }
            (_, None) => {
                let user = v1::User { org: org(i), id: id.clone(), n: 100 };
                singletable_tests::local_retry(|| t.put(&user)).await;
                ledger.insert(id, Some(100));
            }
            (_, Some(v)) => {
                let user = v1::User { org: org(i), id: id.clone(), n: v + 1 };
                singletable_tests::local_retry(|| t.put(&user)).await;
                ledger.insert(id, Some(v + 1));
            }
        }
        writes.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    ledger
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_processes_share_an_online_apply_with_writers_through_kills() {
    let client = singletable_tests::client().await;
    let endpoint = singletable_tests::endpoint().await;
    let dir = logs_dir();
    let (table, plan, plan_file) = seeded(&client, &dir, ITEMS).await;
    let log = |who: &str| dir.join(format!("{table}-{who}.log"));
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4).map(|k| tokio::spawn(old_writer(client.clone(), table.clone(), stop.clone(), k, writes.clone(), ITEMS))).collect();

    // The coordinator is this process: it holds the lock and drives the
    // phases; its backfill is one worker among four.
    let migrator = Migrator::new(client.clone()).with_streams(singletable_tests::streams_client().await);
    let opts = ApplyOptions { segments: 16, page_size: Some(100), lease: Duration::from_secs(LEASE_SECONDS), ..ApplyOptions::default() };
    let mut online = within(60, "start", migrator.start_online(&plan, &opts, Arc::new(Print))).await.unwrap();
    let mut procs: Vec<tokio::process::Child> = (1..4).map(|w| worker(&endpoint, &plan_file, &log(&format!("worker{w}")))).collect();
    let mut rng = fastrand::Rng::with_seed(21);
    let started = Instant::now();
    for k in 0..5 {
        tokio::time::sleep(Duration::from_millis(rng.u64(800..2500))).await;
        let which = rng.usize(0..3);
        if procs[which].try_wait().unwrap().is_some() {
            continue;
        }
        kill(&mut procs[which]);
        let _ = procs[which].wait().await;
        eprintln!("kill {k} at {:.1} s: worker {}", started.elapsed().as_secs_f64(), which + 1);
        procs[which] = worker(&endpoint, &plan_file, &log(&format!("worker{}", which + 1)));
    }
    within(180, "catch-up", online.wait_caught_up()).await.unwrap();
    stop.store(true, Ordering::SeqCst);
    let mut ledger = HashMap::new();
    for w in writers {
        ledger.extend(w.await.unwrap());
    }
    let cut = within(120, "cut-over", online.cutover()).await.unwrap();
    assert!(cut.content.problems.is_empty(), "{:?}", cut.content.problems);
    within(120, "contract", online.complete()).await.unwrap();
    for (w, p) in procs.iter_mut().enumerate() {
        let status = wait(p, 60, "a worker").await;
        let text = std::fs::read_to_string(log(&format!("worker{}", w + 1))).unwrap_or_default();
        assert!(status.success() || text.contains("no apply of this plan"), "worker {}: {status}\n{}", w + 1, tail(&log(&format!("worker{}", w + 1))));
    }
    let took: Vec<usize> = (1..4)
        .map(|w| std::fs::read_to_string(log(&format!("worker{w}"))).unwrap_or_default().matches("segment lease taken").count())
        .collect();
    eprintln!("segments taken by the worker processes: {took:?}; {} acknowledged writes", writes.load(Ordering::Relaxed));
    assert!(took.iter().sum::<usize>() > 0, "no worker took a segment");
    let problems = differences(&client, &table, &ledger).await;
    assert!(problems.is_empty(), "{} problems, e.g. {:?}", problems.len(), &problems[..problems.len().min(8)]);
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
    let problems = differences(&client, &table, &seed_ledger(FROZEN_ITEMS)).await;
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
/// coordinator's take changed. The migration then ends against the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_online_worker_writes_no_data_item_after_losing_its_segments() {
    let client = singletable_tests::client().await;
    let endpoint = singletable_tests::endpoint().await;
    let dir = logs_dir();
    let (table, plan, plan_file) = seeded(&client, &dir, FROZEN_ITEMS).await;
    let log = |who: &str| dir.join(format!("{table}-{who}.log"));
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..2).map(|k| tokio::spawn(old_writer(client.clone(), table.clone(), stop.clone(), k, writes.clone(), FROZEN_ITEMS))).collect();

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
    let mut online = within(60, "start", migrator.start_online(&plan, &opts, Arc::new(Print))).await.unwrap();
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
    let status = wait(&mut frozen, 60, "the frozen worker").await;
    eprintln!("frozen worker ({status}), held {held:?}:\n{}", tail(&log("frozen")));

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
    for h in helpers.iter_mut() {
        let _ = wait(h, 60, "a helper").await;
    }
    let problems = differences(&client, &table, &ledger).await;
    assert!(problems.is_empty(), "{} problems, e.g. {:?}", problems.len(), &problems[..problems.len().min(8)]);
    singletable_tests::delete_table(&client, &table).await;
}
