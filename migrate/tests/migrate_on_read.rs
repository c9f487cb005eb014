//! Migrate-on-read (`singletable::MigratingTable`) against DynamoDB Local:
//! the new application version runs through the whole online apply, from
//! before it starts to after contract, with no write pause at cut-over,
//! alongside old-version writers until they stop (a rolling deploy).
//!
//! After the first cut-over it rolls back (the way back), the old version
//! writes again, and it cuts over a second time.
//!
//! Every writer owns its own items and keeps an exact ledger of what was
//! acknowledged; the new-version writers also check every read against
//! their ledger (a read-modify-write), so a read of a stale or missing
//! form fails the test where it happens.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use singletable::{Error, MigrationPhase, Table, TableDesign};
use singletable_migrate::planner::{make_plan, PlanRequest};
use singletable_migrate::reserved::{record_design, WRITE_TOKEN_ATTR};
use singletable_migrate::{ApplyOptions, Migrator, Phase};

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
    #[item(entity = "User", pk = "TENANT#{org}#USER#{id}", sk = "PROFILE")]
    #[item(index(name = "gsi1", pk = "N#{org}", sk = "USER#{id}"))]
    pub struct User {
        pub org: String,
        pub id: String,
        pub n: u64,
    }
}

/// An old key with a field the new key lacks: `region`.
mod v1_regional {
    #[derive(singletable::Item, Debug, Clone, PartialEq)]
    #[item(entity = "User", pk = "ORG#{org}#REGION#{region}", sk = "USER#{id}")]
    pub struct User {
        pub org: String,
        pub region: String,
        pub id: String,
        pub n: u64,
    }
}

/// The same users, partitioned by organisation under a new prefix: a
/// query's partition gives the old one.
mod v2_tenant {
    #[derive(singletable::Item, Debug, Clone, PartialEq)]
    #[item(entity = "User", pk = "TENANT#{org}", sk = "USER#{id}")]
    pub struct User {
        pub org: String,
        pub id: String,
        pub n: u64,
    }
}

/// Partitioned by organisation, sorted by region: the old partition
/// (`ORG#{org}#REGION#{region}`) needs a field of the new sort key.
mod v2_by_region {
    #[derive(singletable::Item, Debug, Clone, PartialEq)]
    #[item(entity = "User", pk = "TENANT#{org}", sk = "R#{region}#USER#{id}")]
    pub struct User {
        pub org: String,
        pub region: String,
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

async fn within<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f).await.unwrap_or_else(|_| panic!("{what} did not finish within {secs} s"))
}

struct Print;

impl singletable_migrate::Observer for Print {
    fn event(&self, event: singletable_migrate::Event) {
        eprintln!("{event:?}");
    }
}

#[test]
fn a_migrating_table_refuses_an_old_key_it_cannot_derive() {
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .build();
    let client = Client::from_conf(conf);
    let old = TableDesign::new("t").entity::<v1_regional::User>().build().unwrap();
    let err = Table::new(client, new_design("t")).migrating_from(old).unwrap_err();
    match &err {
        Error::OldKeyNotDerivable { entity, missing } => {
            assert_eq!(entity, "User");
            assert_eq!(missing, &vec!["region".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("`region`"), "{err}");
}


/// Before cut-over a migrating table answers a query from the old
/// partition (old forms only here: nothing was copied yet) and applies the
/// new sort condition, order and limit itself; from cut-over on it reads
/// the new forms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrating_tables_query_reads_the_old_partition_before_cut_over() {
    use singletable::KeyParts;
    let client = singletable_tests::client().await;
    let name = singletable_tests::unique_table_name("mor-query");
    let old = Table::new(client.clone(), old_design(&name));
    old.create_table().await.unwrap();
    let users: Vec<v1::User> = (0..30).map(|i| v1::User { org: format!("o{}", i % 3), id: format!("u{i:02}"), n: i as u64 }).collect();
    old.batch_write().put_all(&users).send().await.unwrap();
    let new = TableDesign::new(&name).entity::<v2_tenant::User>().build().unwrap();
    let mor = Table::new(client.clone(), new.clone()).migrating_from(old_design(&name)).unwrap().with_phase(MigrationPhase::Expand);
    // Written through the migrating table: both forms.
    mor.put(&v2_tenant::User { org: "o1".into(), id: "u99".into(), n: 99 }).await.unwrap();
    let ids = |users: Vec<v2_tenant::User>| users.into_iter().map(|u| u.id).collect::<Vec<_>>();
    let o1 = || mor.table().query::<v2_tenant::User>().pk(KeyParts::new().set("org", "o1"));
    let expected: Vec<String> = (0..30).filter(|i| i % 3 == 1).map(|i| format!("u{i:02}")).chain(["u99".to_string()]).collect();
    assert_eq!(ids(mor.query_all(o1()).await.unwrap()), expected, "every o1 user, in sort-key order");
    assert_eq!(ids(mor.query_all(o1().sk_begins_with(KeyParts::new().set("id", "u1"))).await.unwrap()), ["u10", "u13", "u16", "u19"]);
    assert_eq!(
        ids(mor.query_all(o1().sk_between(KeyParts::new().set("id", "u04"), KeyParts::new().set("id", "u13"))).await.unwrap()),
        ["u04", "u07", "u10", "u13"]
    );
    assert_eq!(ids(mor.query_all(o1().reverse().limit(3)).await.unwrap()), ["u99", "u28", "u25"]);
    // From cut-over on: the new forms, of which only the migrating
    // table's write exists here.
    let cut = Table::new(client.clone(), new).migrating_from(old_design(&name)).unwrap().with_phase(MigrationPhase::CutOver);
    assert_eq!(ids(cut.query_all(cut.table().query::<v2_tenant::User>().pk(KeyParts::new().set("org", "o1"))).await.unwrap()), ["u99"]);
    // An old partition the query's partition does not give.
    let regional_old = TableDesign::new(&name).entity::<v1_regional::User>().build().unwrap();
    let regional_new = TableDesign::new(&name).entity::<v2_by_region::User>().build().unwrap();
    let regional = Table::new(client.clone(), regional_new).migrating_from(regional_old).unwrap().with_phase(MigrationPhase::Expand);
    let err = regional.query_all(regional.table().query::<v2_by_region::User>().pk(KeyParts::new().set("org", "o1"))).await.unwrap_err();
    match &err {
        Error::OldPartitionNotDerivable { entity, missing } => assert_eq!((entity.as_str(), missing.clone()), ("User", vec!["region".to_string()])),
        other => panic!("{other:?}"),
    }
    singletable_tests::delete_table(&client, &name).await;
}

type Ledger = HashMap<String, Option<u64>>;

fn ids(n: usize, writer: usize, writers: usize) -> Vec<usize> {
    (0..n).filter(|i| i % writers == writer).collect()
}

fn org(i: usize) -> String {
    format!("o{}", i % 5)
}

/// The old version: plain puts, deletes and creates of the old form.
async fn old_writer(client: Client, table: String, stop: Arc<AtomicBool>, mine: Vec<usize>, mut ledger: Ledger, writes: Arc<AtomicU64>) -> Ledger {
    let t = Table::new(client, old_design(&table));
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
                singletable_tests::local_retry(|| t.create(&user)).await;
                ledger.insert(id, Some(100));
            }
            (_, Some(v)) => {
                let user = v1::User { org: org(i), id: id.clone(), n: v + 1 };
                singletable_tests::local_retry(|| t.put(&user)).await;
                ledger.insert(id, Some(v + 1));
            }
        }
        writes.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    ledger
}

/// What a new-version writer saw.
#[derive(Default)]
struct NewReport {
    ledger: Ledger,
    /// Reads that disagreed with the ledger: (phase, id, ledger, read).
    wrong_reads: Vec<String>,
    phases: Vec<MigrationPhase>,
    /// The longest time one write (or read) took.
    longest_ms: u128,
}

/// The new version through a migrating table that reads the phase from
/// the table: read-modify-write of its items (each read checked against
/// the ledger), update expressions, deletes and creates.
async fn new_writer(client: Client, table: String, stop: Arc<AtomicBool>, mine: Vec<usize>, writes: Arc<AtomicU64>) -> NewReport {
    let t = Table::new(client, new_design(&table)).migrating_from(old_design(&table)).unwrap();
    let mut report = NewReport { ledger: mine.iter().map(|i| (format!("u{i}"), Some(0))).collect(), ..NewReport::default() };
    let mut step = 0usize;
    while !stop.load(Ordering::SeqCst) {
        step += 1;
        let i = mine[(step * 7919) % mine.len()];
        let id = format!("u{i}");
        let key = (org(i), id.clone());
        let started = Instant::now();
        let phase = singletable_tests::local_retry(|| t.phase()).await;
        if report.phases.last() != Some(&phase) {
            report.phases.push(phase);
        }
        let read = singletable_tests::local_retry(|| t.get::<v2::User>(&key)).await.map(|u| u.n);
        let want = report.ledger[&id];
        if read != want {
            report.wrong_reads.push(format!("{phase:?} {id}: ledger {want:?}, read {read:?}"));
        }
        match (step % 10, want) {
            (0, Some(_)) => {
                singletable_tests::local_retry(|| t.delete::<v2::User>(&key)).await;
                report.ledger.insert(id, None);
            }
            (_, None) => {
                let user = v2::User { org: org(i), id: id.clone(), n: 500 };
                singletable_tests::local_retry(|| t.create(&user)).await;
                report.ledger.insert(id, Some(500));
            }
            (3 | 6, Some(v)) => {
                // An update expression: `n + 1` computed by DynamoDB.
                let f = <v2::User as singletable::Item>::fields();
                let stored = singletable_tests::local_retry(|| t.update(t.table().update::<v2::User>(&key).add(f.n, 1u64))).await;
                if stored.n != v + 1 {
                    report.wrong_reads.push(format!("{phase:?} {id}: update returned {}, ledger {}", stored.n, v + 1));
                }
                report.ledger.insert(id, Some(v + 1));
            }
            (_, Some(v)) => {
                let user = v2::User { org: org(i), id: id.clone(), n: v + 1 };
                singletable_tests::local_retry(|| t.put(&user)).await;
                report.ledger.insert(id, Some(v + 1));
            }
        }
        report.longest_ms = report.longest_ms.max(started.elapsed().as_millis());
        writes.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    report
}


fn s(item: &HashMap<String, AttributeValue>, a: &str) -> String {
    item.get(a).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

/// Waits until `writes` grew by `n` (the writers are making progress).
async fn progress(writes: &AtomicU64, n: u64) {
    let start = writes.load(Ordering::Relaxed);
    while writes.load(Ordering::Relaxed) < start + n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_version_writes_through_the_whole_online_apply_with_no_pause() {
    let client = singletable_tests::client().await;
    let n = 5000;
    let name = singletable_tests::unique_table_name("mor");
    let table = Table::new(client.clone(), old_design(&name));
    table.create_table().await.unwrap();
    let users: Vec<v1::User> = (0..n).map(|i| v1::User { org: org(i), id: format!("u{i}"), n: 0 }).collect();
    table.batch_write().put_all(&users).send().await.unwrap();
    record_design(&client, &old_design(&name), &name).await.unwrap();
    let plan = make_plan(&client, &PlanRequest::new(new_design(&name)).table(&name)).await.unwrap().plan;

    // A rolling deploy: two old-version and two new-version writers, each
    // with its own quarter of the items, all writing before the apply
    // starts.
    let (stop_old, stop_new) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let (old_writes, new_writes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let fresh = |w: usize| -> Ledger { ids(n, w, 4).into_iter().map(|i| (format!("u{i}"), Some(0))).collect() };
    let old: Vec<_> = (0..2)
        .map(|w| tokio::spawn(old_writer(client.clone(), name.clone(), stop_old.clone(), ids(n, w, 4), fresh(w), old_writes.clone())))
        .collect();
    let new: Vec<_> = (2..4)
        .map(|w| tokio::spawn(new_writer(client.clone(), name.clone(), stop_new.clone(), ids(n, w, 4), new_writes.clone())))
        .collect();
    within(30, "writers starting", progress(&new_writes, 200)).await;

    let migrator = Migrator::new(client.clone()).with_streams(singletable_tests::streams_client().await);
    let opts = ApplyOptions { segments: 2, page_size: Some(200), ..ApplyOptions::default() };
    let mut online = within(60, "start", migrator.start_online(&plan, &opts, Arc::new(Print))).await.unwrap();
    within(120, "catch-up", online.wait_caught_up()).await.unwrap();

    // The deploy finishes: the old version stops. The new one goes on
    // writing through cut-over and contract.
    stop_old.store(true, Ordering::SeqCst);
    let mut old_ledgers: Vec<Ledger> = Vec::new();
    for w in old {
        old_ledgers.push(w.await.unwrap());
    }
    let before_cutover = new_writes.load(Ordering::Relaxed);
    let cut = within(90, "cut-over", online.cutover()).await.unwrap();
    assert!(cut.content.problems.is_empty(), "{:?}", cut.content.problems);
    assert_eq!(online.phase(), Phase::CutOver);
    let during_cutover = new_writes.load(Ordering::Relaxed) - before_cutover;
    eprintln!("cut-over took {:?}; the new version made {during_cutover} writes meanwhile", cut.took);
    assert!(during_cutover > 0, "the new version was not writing during cut-over");
    within(30, "writes after cut-over", progress(&new_writes, 200)).await;

    // The way back. A write that reached only the new form (a plain
    // new-version table) would be lost by it: refused, naming the item.
    let plain = Table::new(client.clone(), new_design(&name));
    let extra = v2::User { org: "ox".into(), id: "extra".into(), n: 1 };
    singletable_tests::local_retry(|| plain.create(&extra)).await;
    let refused = within(60, "refused rollback", online.rollback()).await.unwrap_err();
    assert!(refused.to_string().contains("TENANT#ox#USER#extra"), "{refused}");
    assert_eq!(online.phase(), Phase::CutOver);
    let extra_key = ("ox".to_string(), "extra".to_string());
    singletable_tests::local_retry(|| plain.delete::<v2::User>(&extra_key)).await;
    // Rolled back while the new version writes; the old version comes
    // back and writes too, then goes again and cut-over is repeated.
    let rolled = within(60, "rollback", online.rollback()).await.unwrap();
    assert!(rolled.problems.is_empty(), "{:?}", rolled.problems);
    assert_eq!(online.phase(), Phase::Expand);
    stop_old.store(false, Ordering::SeqCst);
    let old: Vec<_> = old_ledgers
        .into_iter()
        .enumerate()
        .map(|(w, l)| tokio::spawn(old_writer(client.clone(), name.clone(), stop_old.clone(), ids(n, w, 4), l, old_writes.clone())))
        .collect();
    within(30, "old writes after rollback", progress(&old_writes, 300)).await;
    within(120, "catch-up after rollback", online.wait_caught_up()).await.unwrap();
    stop_old.store(true, Ordering::SeqCst);
    let mut ledger: Ledger = HashMap::new();
    for w in old {
        ledger.extend(w.await.unwrap());
    }
    let cut = within(90, "second cut-over", online.cutover()).await.unwrap();
    assert!(cut.content.problems.is_empty(), "{:?}", cut.content.problems);
    within(30, "writes after the second cut-over", progress(&new_writes, 200)).await;
    let report = within(90, "contract", online.complete()).await.unwrap();
    assert!(report.verification.unwrap().problems.is_empty());
    // Every writer sees the end (it reads the phase again after
    // PHASE_REFRESH) and writes on.
    tokio::time::sleep(singletable::reserved::PHASE_REFRESH * 2).await;
    within(30, "writes after contract", progress(&new_writes, 200)).await;
    stop_new.store(true, Ordering::SeqCst);
    let mut wrong_reads = Vec::new();
    let mut longest_ms = 0;
    for w in new {
        let r = w.await.unwrap();
        eprintln!("new writer phases: {:?}", r.phases);
        assert_eq!(r.phases.first(), Some(&MigrationPhase::Expand));
        assert_eq!(r.phases.last(), Some(&MigrationPhase::Done));
        assert!(r.phases.windows(2).any(|w| w == [MigrationPhase::CutOver, MigrationPhase::Expand]), "the rollback was not seen: {:?}", r.phases);
        ledger.extend(r.ledger);
        wrong_reads.extend(r.wrong_reads);
        longest_ms = longest_ms.max(r.longest_ms);
    }
    eprintln!(
        "old-version writes {}, new-version writes {}, longest new-version read+write {longest_ms} ms",
        old_writes.load(Ordering::Relaxed),
        new_writes.load(Ordering::Relaxed)
    );
    assert!(wrong_reads.is_empty(), "{} reads disagreed with the ledger, e.g. {:?}", wrong_reads.len(), &wrong_reads[..wrong_reads.len().min(5)]);

    // The table against the ledger: every item in its new form only, with
    // the acknowledged value, no write token left.
    let items = singletable_tests::scan_all(&client, &name).await;
    let mut found: HashMap<String, u64> = HashMap::new();
    for item in items.iter().filter(|i| s(i, "pk") != "#SINGLETABLE") {
        assert!(s(item, "pk").starts_with("TENANT#"), "old form left: {item:?}");
        assert!(!item.contains_key(WRITE_TOKEN_ATTR), "write token left: {item:?}");
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
    assert_eq!(ledger.len(), n);
    singletable_tests::delete_table(&client, &name).await;
}
