//! The online apply against DynamoDB Local: the phases, resume, and what
//! contract leaves alone. (The heavy concurrent ledger runs are in
//! `chaos.rs`.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use singletable::{Table, TableDesign};
use singletable_migrate::planner::{make_plan, PlanRequest};
use singletable_migrate::reserved::record_design;
use singletable_migrate::{ApplyOptions, Migrator, Phase, Plan};

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
    #[item(index(name = "gsi1", pk = "N#{org}", sk = "USER#{id}"))]
    pub struct User {
        pub org: String,
        pub id: String,
        pub n: u64,
    }
}

fn old_design(table: &str) -> TableDesign {
    TableDesign::new(table).entity::<v1::User>().build().unwrap()
}

fn new_design(table: &str) -> TableDesign {
    TableDesign::new(table).entity::<v2::User>().build().unwrap()
}


/// Every phase is bounded: a hang fails the test instead of the suite.
async fn within<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f).await.unwrap_or_else(|_| panic!("{what} did not finish within {secs} s"))
}

struct Print;

impl singletable_migrate::Observer for Print {
    fn event(&self, event: singletable_migrate::Event) {
        eprintln!("{event:?}");
    }
}

async fn seeded(client: &Client, n: usize) -> String {
    let name = singletable_tests::unique_table_name("online");
    let table = Table::new(client.clone(), old_design(&name));
    table.create_table().await.unwrap();
    let users: Vec<v1::User> = (0..n).map(|i| v1::User { org: format!("o{}", i % 5), id: format!("u{i}"), n: 0 }).collect();
    table.batch_write().put_all(&users).send().await.unwrap();
    record_design(client, &old_design(&name), &name).await.unwrap();
    name
}

async fn plan(client: &Client, table: &str) -> Plan {
    make_plan(client, &PlanRequest::new(new_design(table)).table(table)).await.unwrap().plan
}

async fn scan_all(client: &Client, table: &str) -> Vec<HashMap<String, AttributeValue>> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = client.scan().table_name(table).consistent_read(true).set_exclusive_start_key(start).send().await.unwrap();
        out.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            return out;
        }
    }
}

fn s(item: &HashMap<String, AttributeValue>, a: &str) -> String {
    item.get(a).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

/// Sends a write again while DynamoDB Local answers InternalFailure: on a
/// file-backed database (scripts/dynamodb-local.sh) it does so at times to
/// a write made while the apply turns the stream on. The writes here are
/// whole puts and deletes, so sending one again is harmless; only the
/// acknowledged one enters the ledger.
async fn local_retry<F, Fut>(mut write: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), singletable::Error>>,
{
    for attempt in 1.. {
        match write().await {
            Ok(()) => return,
            Err(e) if attempt < 20 && e.to_string().contains("InternalFailure") => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// One writer on the old form: increments, deletes and creates, keeping a
/// ledger of what was acknowledged (id -> Some(n) or None for deleted).
async fn old_writer(client: Client, table: String, stop: Arc<AtomicBool>, n: usize) -> HashMap<String, Option<u64>> {
    let t = Table::new(client.clone(), old_design(&table));
    let mut ledger: HashMap<String, Option<u64>> = (0..n).map(|i| (format!("u{i}"), Some(0))).collect();
    let mut step = 0usize;
    while !stop.load(Ordering::SeqCst) {
        step += 1;
        let i = (step * 7919) % n;
        let id = format!("u{i}");
        let org = format!("o{}", i % 5);
        match (step % 10, ledger[&id]) {
            (0, Some(_)) => {
                let key = (org, id.clone());
                local_retry(|| t.delete::<v1::User>(&key)).await;
                ledger.insert(id, None);
            }
            (_, None) => {
                let user = v1::User { org, id: id.clone(), n: 100 };
                local_retry(|| t.put(&user)).await;
                ledger.insert(id, Some(100));
            }
            (_, Some(v)) => {
                let user = v1::User { org, id: id.clone(), n: v + 1 };
                local_retry(|| t.put(&user)).await;
                ledger.insert(id, Some(v + 1));
            }
        }
        // About a thousand writes a second at most: a busy application,
        // not a load test of DynamoDB Local.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    ledger
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_move_with_a_writer_loses_nothing() {
    let client = singletable_tests::client().await;
    let n = 1500;
    let table = seeded(&client, n).await;
    let p = plan(&client, &table).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(old_writer(client.clone(), table.clone(), stop.clone(), n));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let migrator = Migrator::new(client.clone()).with_streams(singletable_tests::streams_client().await);
    let opts = ApplyOptions { segments: 2, page_size: Some(200), ..ApplyOptions::default() };
    let mut online = within(60, "start", migrator.start_online(&p, &opts, Arc::new(Print))).await.unwrap();
    let status = within(120, "catch-up", online.wait_caught_up()).await.unwrap();
    assert!(status.caught_up);
    // What `migrate status` shows from another process meanwhile.
    let seen = singletable_migrate::status(&client, &table, "pk", "sk").await.unwrap();
    let lock = seen.lock.as_ref().expect("the lock is held");
    assert!(lock.expires_in_s > 0.0, "{seen}");
    let online_status = seen.online.as_ref().expect("an online apply in progress");
    assert_eq!(online_status.phase, Phase::Expand);
    assert!(!online_status.shards.is_empty(), "the replay saved its position: {seen}");
    assert!(online_status.shards.iter().all(|s| s.saved_ago_s.is_some() && s.lag_s.is_some()), "{seen}");
    let backfill = seen.backfills.first().expect("the backfill's checkpoints");
    assert_eq!((backfill.segments, backfill.segments_done), (2, 2), "{seen}");
    // Cut-over: the old version stops writing first.
    stop.store(true, Ordering::SeqCst);
    let ledger = writer.await.unwrap();
    let cut = within(60, "cut-over", online.cutover()).await.unwrap();
    assert!(cut.content.problems.is_empty(), "{:?}", cut.content.problems);
    assert_eq!(online.phase(), Phase::CutOver);
    let report = within(60, "contract", online.complete()).await.unwrap();
    assert!(report.verification.unwrap().problems.is_empty());

    let items: Vec<_> = scan_all(&client, &table).await.into_iter().filter(|i| !s(i, "pk").starts_with("#SINGLETABLE")).collect();
    let mut found: HashMap<String, u64> = HashMap::new();
    for item in &items {
        assert!(s(item, "pk").starts_with("TENANT#"), "old form left: {item:?}");
        let id = s(item, "id");
        let v = item["n"].as_n().unwrap().parse().unwrap();
        assert!(found.insert(id.clone(), v).is_none(), "duplicate {id}");
    }
    let mut lost = Vec::new();
    for (id, want) in &ledger {
        if found.get(id).copied() != *want {
            lost.push(format!("{id}: ledger {want:?}, table {:?}", found.get(id)));
        }
    }
    assert!(lost.is_empty(), "{} differences, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);
    let reserved: Vec<_> = scan_all(&client, &table).await.into_iter().filter(|i| s(i, "pk").starts_with("#SINGLETABLE")).map(|i| s(&i, "sk")).collect();
    assert_eq!(reserved, vec!["#DESIGN".to_string()], "only the design record stays");
    singletable_tests::delete_table(&client, &table).await;
}

/// An old instance still writing after cut-over writes the old form
/// alone; contract must not delete such a write. Two are written before
/// `complete()` (found in the stream before the deletes) and one while
/// contract's first scan request waits out a throttle (after that read of
/// the stream: contract deletes it, finds it in the stream afterwards and
/// puts it back). A migrating table writing both forms after cut-over is
/// not named, and its items' old forms go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_never_deletes_an_old_form_written_alone_after_cut_over() {
    use singletable::MigrationPhase;
    use singletable_tests::faults::{Fault, FaultProxy};

    let direct = singletable_tests::client().await;
    let table = seeded(&direct, 60).await;
    let plan = plan(&direct, &table).await;
    let proxy = FaultProxy::start(3).await;
    let migrator = Migrator::new(proxy.client("migrator").await).with_streams(singletable_tests::streams_client().await);
    let opts = ApplyOptions { segments: 1, ..ApplyOptions::default() };
    let mut online = within(60, "start", migrator.start_online(&plan, &opts, Arc::new(Print))).await.unwrap();
    within(60, "catch-up", online.wait_caught_up()).await.unwrap();
    within(60, "cut-over", online.cutover()).await.unwrap();

    let old = Table::new(direct.clone(), old_design(&table));
    let straggle = |id: &'static str| {
        let old = old.clone();
        async move {
            let org = format!("o{}", id[1..].parse::<usize>().unwrap() % 5);
            old.put(&v1::User { org, id: id.into(), n: 99 }).await.unwrap();
        }
    };
    straggle("u7").await;
    straggle("u42").await;
    // The new version, as a migrating table: both forms, fresh tokens.
    let mor = Table::new(direct.clone(), new_design(&table)).migrating_from(old_design(&table)).unwrap().with_phase(MigrationPhase::CutOver);
    mor.put(&v2::User { org: "o3".into(), id: "u3".into(), n: 5 }).await.unwrap();
    let f = <v2::User as singletable::Item>::fields();
    mor.update(mor.table().update::<v2::User>(&("o4".to_string(), "u4".to_string())).set(f.n, 6)).await.unwrap();

    // Contract's first scan request is throttled; the third straggler
    // writes while it waits.
    let scanned = Arc::new(AtomicBool::new(false));
    let flag = scanned.clone();
    proxy.script("Scan", 3, Fault::Throttle, move |b| {
        let ours = b["ConsistentRead"].as_bool() == Some(true) && b["TableName"].as_str().is_some();
        flag.store(true, Ordering::SeqCst);
        ours
    });
    let completing = tokio::spawn(within(120, "complete", online.complete()));
    within(60, "contract's first scan", async {
        while !scanned.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    straggle("u11").await;
    let err = completing.await.unwrap().expect_err("three old forms were written alone after cut-over");
    let text = err.to_string();
    eprintln!("{text}");
    for id in ["u7", "u42", "u11"] {
        assert!(text.contains(&format!("USER#{id})")), "{id} is named: {text}");
    }
    for id in ["u3", "u4"] {
        assert!(!text.contains(&format!("USER#{id})")), "{id} (a migrating table's write) is not named: {text}");
    }
    let items = scan_all(&direct, &table).await;
    let mut old_left: Vec<(String, String)> =
        items.iter().filter(|i| s(i, "pk").starts_with("ORG#")).map(|i| (s(i, "sk"), i["n"].as_n().unwrap().clone())).collect();
    old_left.sort();
    let expected: Vec<(String, String)> = ["u11", "u42", "u7"].iter().map(|id| (format!("USER#{id}"), "99".to_string())).collect();
    assert_eq!(old_left, expected, "exactly the three old forms written after cut-over stay, as written");
    let new_n = |id: &str| items.iter().find(|i| s(i, "pk").starts_with("TENANT#") && s(i, "sk") == format!("USER#{id}")).map(|i| i["n"].as_n().unwrap().clone());
    assert_eq!((new_n("u3"), new_n("u4")), (Some("5".into()), Some("6".into())), "the migrating table's writes are in the new forms");
    assert_eq!(items.iter().filter(|i| s(i, "pk").starts_with("TENANT#")).count(), 60, "every new form stays");
    singletable_tests::delete_table(&direct, &table).await;
}
