//! Stream shards shared among workers (issue 12): the replay of an online
//! apply runs in whichever worker holds a shard's lease, and a worker
//! that lost it writes nothing for it. A real worker process against
//! DynamoDB Local, frozen with SIGSTOP; the coordinator in this process.
//!
//! `a_worker_replays_the_stream_when_its_holder_dies_and_writes_nothing_once_frozen_past_its_lease`:
//! 1. The coordinator holds the stream's shard (DynamoDB Local has one)
//!    and crashes: its tasks stop where they are and its leases stay, as
//!    after a SIGKILL. The worker takes the shard once the lease runs out
//!    and replays it: the shard's saved position moves on under its
//!    ownership while writers keep writing.
//! 2. The worker is frozen (SIGSTOP) holding the shard; the coordinator
//!    is started again (resuming) and takes the shard once the frozen
//!    worker's lease runs out; SIGCONT wakes the worker. Its requests go
//!    through a proxy that keeps a journal: after it wakes, no replay
//!    transaction fenced by the lease it held and no update of the
//!    shard's checkpoint under that lease goes through.
//! 3. Cut-over drains the stream, contract completes, the worker exits by
//!    itself, and the table equals the writers' exact ledger: every item
//!    in its new form once with the acknowledged value, none resurrected,
//!    no old form, lease, checkpoint or lock left.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use singletable::{Table, TableDesign};
use singletable_migrate::planner::{make_plan, PlanRequest};
use singletable_migrate::reserved::record_design;
use singletable_migrate::{ApplyOptions, Migrator, Quiet};

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

const ITEMS: usize = 3_000;
const LEASE_SECONDS: u64 = 2;

fn org(i: usize) -> String {
    format!("o{}", i % 20)
}

async fn within<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f).await.unwrap_or_else(|_| panic!("{what} did not finish within {secs} s"))
}

fn s(item: &HashMap<String, AttributeValue>, a: &str) -> String {
    item.get(a).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: a plain kill(2) of our own child.
    unsafe { libc_kill(pid as i32, sig) };
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// `singletable migrate apply <plan> --worker` against `endpoint`, logging
/// at info to `log`.
fn worker(endpoint: &str, plan: &Path, log: &Path) -> tokio::process::Child {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let err = out.try_clone().unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_singletable"))
        .args(["migrate", "apply"])
        .arg(plan)
        .args(["--worker", "--lease-seconds", &LEASE_SECONDS.to_string(), "--page-size", "100", "--segments", "8"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .env("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "singletable_migrate=info")
        .env_remove("AWS_ENDPOINT_URL_DYNAMODB_STREAMS")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .kill_on_drop(true)
        .spawn()
        .expect("the singletable binary runs")
}

/// The old version's writes to users `k, k+2, ...`: updates, deletes and
/// re-creates, each acknowledged one in the ledger (id -> value, None:
/// deleted).
async fn old_writer(client: Client, table: String, stop: Arc<AtomicBool>, k: usize) -> HashMap<String, Option<u64>> {
    let t = Table::new(client, TableDesign::new(&table).entity::<v1::User>().build().unwrap());
    let mine: Vec<usize> = (0..ITEMS).filter(|i| i % 2 == k).collect();
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
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ledger
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

/// The table against the ledger: the differences, named.
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
        if found.insert(id.clone(), item["n"].as_n().unwrap().parse().unwrap()).is_some() {
            problems.push(format!("duplicate {id}"));
        }
    }
    for (id, want) in ledger {
        if found.get(id).copied() != *want {
            problems.push(format!("{id}: ledger {want:?}, table {:?}", found.get(id)));
        }
    }
    problems.extend(found.keys().filter(|id| !ledger.contains_key(*id)).map(|id| format!("{id}: in the table, not in the ledger (resurrected?)")));
    problems
}

fn logs_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("singletable-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_replays_the_stream_when_its_holder_dies_and_writes_nothing_once_frozen_past_its_lease() {
    let client = singletable_tests::client().await;
    let name = singletable_tests::unique_table_name("shards");
    let old = TableDesign::new(&name).entity::<v1::User>().build().unwrap();
    let table = Table::new(client.clone(), old.clone());
    table.create_table().await.unwrap();
    let users: Vec<v1::User> = (0..ITEMS).map(|i| v1::User { org: org(i), id: format!("u{i}"), n: 0 }).collect();
    table.batch_write().put_all(&users).send().await.unwrap();
    record_design(&client, &old, &name).await.unwrap();
    let plan = make_plan(&client, &PlanRequest::new(TableDesign::new(&name).entity::<v2::User>().build().unwrap()).table(&name)).await.unwrap().plan;
    let dir = logs_dir();
    let plan_file = dir.join(format!("{name}-plan.json"));
    std::fs::write(&plan_file, serde_json::to_string_pretty(&plan).unwrap()).unwrap();
    let log = dir.join(format!("{name}-worker.log"));

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2).map(|k| tokio::spawn(old_writer(client.clone(), name.clone(), stop.clone(), k))).collect();
    let migrator = Migrator::new(client.clone()).with_streams(singletable_tests::streams_client().await);
    let opts = ApplyOptions { segments: 8, page_size: Some(100), lease: Duration::from_secs(LEASE_SECONDS), max_wcu: Some(300.0), ..ApplyOptions::default() };
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
    signal(pid, 19); // SIGSTOP
    let frozen_epoch = shard_leases(&client, &name).await.into_iter().find(|l| l.0 == sk && l.1.contains(&mine)).map(|l| l.2).unwrap_or(epoch);
    tokio::time::sleep(Duration::from_secs(LEASE_SECONDS + 1)).await;
    let mut online = within(60, "the coordinator resuming", migrator.start_online(&plan, &opts, Arc::new(Quiet))).await.unwrap();
    let now = within(30, "the coordinator taking the shard back", until_held(&client, &name, pid, false)).await;
    eprintln!("the coordinator took the shard back: {now:?}");
    let woke = Instant::now();
    signal(pid, 18); // SIGCONT
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

    let problems = differences(&client, &name, &ledger).await;
    assert!(problems.is_empty(), "{} problems, e.g. {:?}", problems.len(), &problems[..problems.len().min(8)]);
    singletable_tests::delete_table(&client, &name).await;
}
