//! `Migrator::apply` against DynamoDB Local: moves, index backfills,
//! removals with export and restore, resume after interruption, the lock,
//! stale plans and idempotence.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::config::interceptors::{BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemInput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use singletable::{Item, KeyParts, Table, TableDesign};
use singletable_migrate::analyze::{analyze, AnalyzeOptions};
use singletable_migrate::fingerprint::fingerprint;
use singletable_migrate::reserved::{read_recorded_design, record_design};
use singletable_migrate::{describe, diff, ApplyOptions, Event, MigrateError, Migrator, Observer, Plan, Quiet};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

mod v1 {
    #[derive(singletable::Item, Debug, Clone, PartialEq)]
    #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
    pub struct User {
        pub org: String,
        pub id: String,
        pub email: String,
        pub bio: String,
    }

    #[derive(singletable::Item, Debug, Clone, PartialEq)]
    #[item(entity = "Note", pk = "ORG#{org}", sk = "NOTE#{id}")]
    pub struct Note {
        pub org: String,
        pub id: u32,
    }
}

mod v2 {
    /// Tenant-scoped partition and a new e-mail index.
    #[derive(singletable::Item, Debug, Clone, PartialEq)]
    #[item(entity = "User", pk = "TENANT#{org}", sk = "USER#{id}")]
    #[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
    pub struct User {
        pub org: String,
        pub id: String,
        pub email: String,
        pub bio: String,
    }

    #[derive(singletable::Item, Debug, Clone, PartialEq)]
    #[item(entity = "Note", pk = "ORG#{org}", sk = "NOTE#{id}")]
    pub struct Note {
        pub org: String,
        pub id: u32,
    }
}

fn old_design(table: &str) -> TableDesign {
    TableDesign::new(table).entity::<v1::User>().entity::<v1::Note>().build().unwrap()
}

fn new_design(table: &str) -> TableDesign {
    TableDesign::new(table).entity::<v2::User>().entity::<v2::Note>().build().unwrap()
}

fn user(i: usize) -> v1::User {
    v1::User { org: format!("org{}", i % 7), id: format!("u{i}"), email: format!("u{i}@x.test"), bio: "b".repeat(i % 50) }
}

/// A table in the old design holding `n` users and a few notes, with the
/// old design recorded.
async fn seeded(client: &Client, n: usize) -> (String, Vec<v1::User>) {
    seeded_with(client, (0..n).map(user).collect()).await
}

async fn seeded_with(client: &Client, users: Vec<v1::User>) -> (String, Vec<v1::User>) {
    let name = singletable_tests::unique_table_name("apply");
    let table = Table::new(client.clone(), old_design(&name));
    table.create_table().await.unwrap();
    for chunk in users.chunks(50) {
        futures::future::try_join_all(chunk.iter().map(|u| table.put(u))).await.unwrap();
    }
    for id in 0..3 {
        table.put(&v1::Note { org: "org0".into(), id }).await.unwrap();
    }
    record_design(client, &old_design(&name), &name).await.unwrap();
    (name, users)
}

async fn plan(client: &Client, table: &str, new: &TableDesign) -> Plan {
    let live = describe(client, table).await.unwrap();
    let recorded = if live.exists { read_recorded_design(client, table, "pk", "sk").await.unwrap() } else { None };
    let changes = diff(recorded.as_ref(), new, &live).unwrap();
    let entities = analyze(client, table, recorded.as_ref(), new, &changes, &AnalyzeOptions::default()).await.unwrap();
    Plan { table: table.into(), from: recorded.clone(), to: new.clone(), changes, entities, fingerprint: fingerprint(&live, recorded.as_ref()), defaults: vec![] }
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

/// Every user is present exactly once, in its new form, payload intact.
async fn assert_all_moved(client: &Client, table: &str, users: &[v1::User]) {
    let items = scan_all(client, table).await;
    let mut found: Vec<v2::User> = items
        .into_iter()
        .filter(|i| i.get("_et").and_then(|v| v.as_s().ok()).map(String::as_str) == Some("User"))
        .map(|i| v2::User::from_item(i).unwrap())
        .collect();
    found.sort_by(|a, b| a.id.cmp(&b.id));
    let mut expected: Vec<v2::User> =
        users.iter().map(|u| v2::User { org: u.org.clone(), id: u.id.clone(), email: u.email.clone(), bio: u.bio.clone() }).collect();
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(found.len(), expected.len());
    assert_eq!(found, expected);
    let t = Table::new(client.clone(), new_design(table));
    for u in expected.iter().take(5) {
        let got = t.get::<v2::User>(&(u.org.clone(), u.id.clone())).await.unwrap();
        assert_eq!(got.as_ref(), Some(u));
        let by_mail = t.query::<v2::User>().index("gsi1").pk(KeyParts::new().set("email", u.email.as_str())).all().await.unwrap();
        assert_eq!(by_mail, vec![u.clone()]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pk_move_and_a_new_index_apply_verify_and_then_plan_nothing() {
    let client = singletable_tests::client().await;
    let (table, users) = seeded(&client, 300).await;
    let new = new_design(&table);
    let p = plan(&client, &table, &new).await;
    assert!(p.blocking_errors().is_empty(), "{:?}", p.blocking_errors());
    let report = Migrator::new(client.clone()).apply(&p, &ApplyOptions::default(), Arc::new(Quiet)).await.unwrap();
    assert_eq!(report.moved, 300);
    assert_eq!(report.verification.as_ref().unwrap().counts["User"], 300);
    assert_eq!(report.verification.as_ref().unwrap().counts["Note"], 3);
    assert_all_moved(&client, &table, &users).await;
    assert_eq!(read_recorded_design(&client, &table, "pk", "sk").await.unwrap().as_ref(), Some(&new));

    // Applied once: the next plan has nothing to do, and applying the old
    // plan again (a re-run after a kill past its last step looks the same)
    // does nothing and says so.
    let again = plan(&client, &table, &new).await;
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    let report = Migrator::new(client.clone()).apply(&p, &ApplyOptions::default(), Arc::new(Quiet)).await.unwrap();
    assert_eq!((report.moved, report.scanned), (0, 0));
    assert!(report.warnings.iter().any(|w| w.contains("already records this plan's design")), "{:?}", report.warnings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_plan_is_refused_and_nothing_is_written_but_application_writes_do_not_make_it_stale() {
    let client = singletable_tests::client().await;
    let (table, _) = seeded(&client, 20).await;
    let p = plan(&client, &table, &new_design(&table)).await;
    // The table is live: the application writes after the plan was made.
    Table::new(client.clone(), old_design(&table)).put(&user(999)).await.unwrap();
    // Another migration recorded another design since: the plan is stale.
    let other = TableDesign::new(&table).entity::<v1::User>().build().unwrap();
    record_design(&client, &other, &table).await.unwrap();
    let before = scan_all(&client, &table).await;
    let err = Migrator::new(client.clone()).apply(&p, &ApplyOptions::default(), Arc::new(Quiet)).await.unwrap_err();
    assert!(matches!(err, MigrateError::StalePlan { .. }), "{err}");
    let after = scan_all(&client, &table).await;
    assert!(after.len() == before.len() && before.iter().all(|i| after.contains(i)), "nothing written");
    // With the design it was planned against recorded again, the plan
    // applies, the item written after planning included.
    record_design(&client, &old_design(&table), &table).await.unwrap();
    let report = Migrator::new(client.clone()).apply(&p, &ApplyOptions::default(), Arc::new(Quiet)).await.unwrap();
    assert_eq!(report.moved, 21);
}

/// Sets the cancel flag once enough items went by, like Ctrl-C.
struct InterruptAfter {
    after: u64,
    cancel: Arc<AtomicBool>,
    seen: AtomicU64,
}

impl Observer for InterruptAfter {
    fn event(&self, event: Event) {
        if let Event::Progress { scanned, .. } = event {
            self.seen.store(scanned, Ordering::SeqCst);
            if scanned >= self.after {
                self.cancel.store(true, Ordering::SeqCst);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_apply_resumes_from_its_checkpoints() {
    let client = singletable_tests::client().await;
    let (table, users) = seeded(&client, 600).await;
    let new = new_design(&table);
    let p = plan(&client, &table, &new).await;
    let cancel = Arc::new(AtomicBool::new(false));
    let opts = ApplyOptions { page_size: Some(50), segments: 2, cancel: cancel.clone(), ..ApplyOptions::default() };
    let observer = Arc::new(InterruptAfter { after: 150, cancel, seen: AtomicU64::new(0) });
    let err = Migrator::new(client.clone()).apply(&p, &opts, observer).await.unwrap_err();
    assert!(matches!(err, MigrateError::Interrupted { .. }), "{err}");

    // Half done: plan again (the table changed, so the old plan is stale)
    // and apply; the backfill resumes rather than starting over.
    let p2 = plan(&client, &table, &new).await;
    assert!(p2.blocking_errors().is_empty(), "a half-done move is not a collision: {:?}", p2.blocking_errors());
    let opts = ApplyOptions { page_size: Some(50), segments: 4, ..ApplyOptions::default() };
    let report = Migrator::new(client.clone()).apply(&p2, &opts, Arc::new(Quiet)).await.unwrap();
    assert!(report.resumed);
    assert!(report.moved < 600, "resumed, not restarted: moved {}", report.moved);
    assert_all_moved(&client, &table, &users).await;
    assert_eq!(checkpoints_in(&scan_all(&client, &table).await), 0, "checkpoints are cleared after success");
}

fn checkpoints_in(items: &[HashMap<String, AttributeValue>]) -> usize {
    items.iter().filter(|i| i["sk"].as_s().unwrap().starts_with(singletable_migrate::reserved::CHECKPOINT_PREFIX)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_of_an_abandoned_migration_do_not_outlive_a_design_change() {
    // v1 -> v2 interrupted, then the operator goes v1 -> v3 and back to
    // v1 instead. When v1 -> v2 runs again, the table holds every item in
    // v1 form; the first attempt's checkpoints would skip most of them.
    let client = singletable_tests::client().await;
    let (table, users) = seeded(&client, 400).await;
    let cancel = Arc::new(AtomicBool::new(false));
    let opts = ApplyOptions { page_size: Some(50), segments: 2, cancel: cancel.clone(), ..ApplyOptions::default() };
    let observer = Arc::new(InterruptAfter { after: 150, cancel, seen: AtomicU64::new(0) });
    let err = Migrator::new(client.clone()).apply(&plan(&client, &table, &new_design(&table)).await, &opts, observer).await.unwrap_err();
    assert!(matches!(err, MigrateError::Interrupted { .. }), "{err}");
    assert!(checkpoints_in(&scan_all(&client, &table).await) > 0);

    // v3: the users moved elsewhere, as an edited design file says.
    let v3 = TableDesign::from_json(&new_design(&table).to_json().replace("TENANT#", "T#")).unwrap();
    assert_ne!(v3, new_design(&table));
    let to_v3 = plan(&client, &table, &v3).await;
    assert!(to_v3.blocking_errors().is_empty(), "{:?}", to_v3.blocking_errors());
    Migrator::new(client.clone()).apply(&to_v3, &ApplyOptions::default(), Arc::new(Quiet)).await.unwrap();
    assert_eq!(checkpoints_in(&scan_all(&client, &table).await), 0, "a recorded design clears every checkpoint");

    let back = plan(&client, &table, &old_design(&table)).await;
    let destroy = ApplyOptions { allow_destroy: true, ..ApplyOptions::default() };
    Migrator::new(client.clone()).apply(&back, &destroy, Arc::new(Quiet)).await.unwrap();

    let again = plan(&client, &table, &new_design(&table)).await;
    let report = Migrator::new(client.clone()).apply(&again, &ApplyOptions::default(), Arc::new(Quiet)).await.unwrap();
    assert!(!report.resumed);
    assert_eq!(report.moved, 400);
    assert_all_moved(&client, &table, &users).await;
}

/// Waits (up to 4 s) until an apply holds the lock of `table`; returns the
/// lock item's key.
async fn wait_for_lock(client: &Client, table: &str) -> HashMap<String, AttributeValue> {
    let lock_key = singletable_migrate::reserved::reserved_key("pk", "sk", singletable_migrate::reserved::LOCK_SK);
    for _ in 0..200 {
        let held = client.get_item().table_name(table).set_key(Some(lock_key.clone())).consistent_read(true).send().await.unwrap();
        if held.item.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    lock_key
}

/// Collects the warnings an apply reports.
#[derive(Default)]
struct Warnings(std::sync::Mutex<Vec<String>>);

impl Observer for Warnings {
    fn event(&self, event: Event) {
        if let Event::Warning(w) = event {
            self.0.lock().unwrap().push(w);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_with_nothing_to_do_removes_an_expired_lock_and_leaves_a_live_one() {
    // What an apply killed between recording its design and releasing its
    // lock leaves: a finished table and a dead lock that nothing would
    // ever take again.
    let client = singletable_tests::client().await;
    let (table, _) = seeded(&client, 5).await;
    let lock_key = singletable_migrate::reserved::reserved_key("pk", "sk", singletable_migrate::reserved::LOCK_SK);
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let put_lock = |owner: &str, expires: u64| {
        let mut item = lock_key.clone();
        item.insert("owner".into(), AttributeValue::S(owner.into()));
        item.insert("expires_at_ms".into(), AttributeValue::N(expires.to_string()));
        client.put_item().table_name(&table).set_item(Some(item)).send()
    };
    let lock = || client.get_item().table_name(&table).set_key(Some(lock_key.clone())).consistent_read(true).send();

    put_lock("killed", now_ms - 1_000).await.unwrap();
    // Planned with the lock in place, as `migrate apply` plans.
    let same = plan(&client, &table, &old_design(&table)).await;
    assert!(same.changes.is_empty(), "{:?}", same.changes);
    let warnings = Arc::new(Warnings::default());
    Migrator::new(client.clone()).apply(&same, &ApplyOptions::default(), warnings.clone()).await.unwrap();
    assert!(lock().await.unwrap().item.is_none(), "the expired lock is gone");
    let said = warnings.0.lock().unwrap().clone();
    assert!(said.iter().any(|w| w.contains("expired lock") && w.contains("killed")), "{said:?}");

    put_lock("running", now_ms + 600_000).await.unwrap();
    let same = plan(&client, &table, &old_design(&table)).await;
    Migrator::new(client.clone()).apply(&same, &ApplyOptions::default(), Arc::new(Quiet)).await.unwrap();
    let held = lock().await.unwrap().item.expect("a live lock stays");
    assert_eq!(held["owner"].as_s().unwrap(), "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_concurrent_apply_is_refused() {
    let client = singletable_tests::client().await;
    let (table, users) = seeded(&client, 200).await;
    let new = new_design(&table);
    let p = plan(&client, &table, &new).await;
    // The first apply crawls under a small write budget.
    let slow = ApplyOptions { max_wcu: Some(100.0), page_size: Some(25), owner: "first".into(), ..ApplyOptions::default() };
    let first = {
        let (client, p) = (client.clone(), p.clone());
        tokio::spawn(async move { Migrator::new(client).apply(&p, &slow, Arc::new(Quiet)).await })
    };
    // Once the first holds the lock, a second apply fails fast.
    wait_for_lock(&client, &table).await;
    let second = ApplyOptions { owner: "second".into(), ..ApplyOptions::default() };
    let mut p2 = p.clone();
    p2.fingerprint.clear();
    let refused = Migrator::new(client.clone()).apply(&p2, &second, Arc::new(Quiet)).await;
    let refused = match refused {
        Err(e @ MigrateError::Locked { .. }) => Some(e),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a second apply ran while the first held the lock"),
    };
    let refused = refused.expect("the second apply met the lock");
    assert!(refused.to_string().contains("first"), "{refused}");
    first.await.unwrap().unwrap();
    assert_all_moved(&client, &table, &users).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_entity_needs_permission_exports_and_restores() {
    let client = singletable_tests::client().await;
    let (table, _) = seeded(&client, 10).await;
    let new = TableDesign::new(&table).entity::<v1::User>().build().unwrap();
    let p = plan(&client, &table, &new).await;
    let err = Migrator::new(client.clone()).apply(&p, &ApplyOptions::default(), Arc::new(Quiet)).await.unwrap_err();
    assert!(matches!(err, MigrateError::Destructive { .. }), "{err}");

    let dir = std::env::temp_dir().join(format!("st-export-{table}"));
    std::fs::create_dir_all(&dir).unwrap();
    let opts = ApplyOptions { allow_destroy: true, export_dir: dir.clone(), ..ApplyOptions::default() };
    let report = Migrator::new(client.clone()).apply(&p, &opts, Arc::new(Quiet)).await.unwrap();
    assert_eq!(report.deleted, 3);
    let export = &report.exports[0];
    assert_eq!(std::fs::read_to_string(export).unwrap().lines().count(), 3);
    let notes = |items: Vec<HashMap<String, AttributeValue>>| items.into_iter().filter(|i| i.get("_et").and_then(|v| v.as_s().ok()).map(String::as_str) == Some("Note")).count();
    assert_eq!(notes(scan_all(&client, &table).await), 0);

    let restored = Migrator::new(client.clone()).restore(&table, export).await.unwrap();
    assert_eq!(restored, 3);
    assert_eq!(notes(scan_all(&client, &table).await), 3);
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_table_is_created_with_its_settings() {
    let client = singletable_tests::client().await;
    let name = singletable_tests::unique_table_name("apply-new");
    let design = TableDesign::new(&name)
        .entity::<v2::User>()
        .ttl("expires_at")
        .stream(singletable::StreamView::NewAndOldImages)
        .build()
        .unwrap();
    let p = plan(&client, &name, &design).await;
    assert!(matches!(p.changes[0], singletable_migrate::Change::CreateTable { .. }), "{:?}", p.changes);
    Migrator::new(client.clone()).apply(&p, &ApplyOptions::default(), Arc::new(Quiet)).await.unwrap();
    let live = describe(&client, &name).await.unwrap();
    assert_eq!(live.ttl_attribute.as_deref(), Some("expires_at"));
    assert_eq!(live.stream, Some(singletable::StreamView::NewAndOldImages));
    assert_eq!(live.indexes.len(), 1);
    assert!(plan(&client, &name, &design).await.changes.is_empty());
}

/// Counts the requests a client has in flight, and the most ever at once
/// (all operations, and BatchWriteItem alone).
#[derive(Debug, Default)]
struct InFlight {
    now: AtomicU64,
    most: AtomicU64,
    writes_now: AtomicU64,
    writes_most: AtomicU64,
}

#[derive(Debug, Clone)]
struct IsBatchWrite(bool);

impl Storable for IsBatchWrite {
    type Storer = StoreReplace<Self>;
}

#[derive(Debug)]
struct CountInFlight(Arc<InFlight>);

impl Intercept for CountInFlight {
    fn name(&self) -> &'static str {
        "CountInFlight"
    }

    fn read_before_execution(&self, context: &BeforeSerializationInterceptorContextRef<'_>, cfg: &mut ConfigBag) -> Result<(), BoxError> {
        let n = &self.0;
        n.most.fetch_max(n.now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
        let write = context.input().downcast_ref::<BatchWriteItemInput>().is_some();
        if write {
            n.writes_most.fetch_max(n.writes_now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
        }
        cfg.interceptor_state().store_put(IsBatchWrite(write));
        Ok(())
    }

    fn read_after_execution(&self, _: &FinalizerInterceptorContextRef<'_>, _: &RuntimeComponents, cfg: &mut ConfigBag) -> Result<(), BoxError> {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
        if cfg.load::<IsBatchWrite>().is_some_and(|w| w.0) {
            self.0.writes_now.fetch_sub(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_stay_within_concurrency_and_spread_over_a_lopsided_segment() {
    let base = singletable_tests::client().await;
    let counts = Arc::new(InFlight::default());
    let client = Client::from_conf(base.config().to_builder().interceptor(CountInFlight(counts.clone())).build());
    // One partition: one of the four segments holds every user (the notes
    // are elsewhere), as a table of a few big partitions scans.
    let users: Vec<v1::User> = (0..400).map(|i| v1::User { org: "big".into(), ..user(i) }).collect();
    let (table, users) = seeded_with(&client, users).await;
    let new = new_design(&table);
    let p = plan(&client, &table, &new).await;
    counts.most.store(0, Ordering::SeqCst);
    counts.writes_most.store(0, Ordering::SeqCst);

    // A long lease: no heartbeat renewal during the test.
    let opts = ApplyOptions { segments: 4, concurrency: Some(3), lease: std::time::Duration::from_secs(600), ..ApplyOptions::default() };
    let report = Migrator::new(client.clone()).apply(&p, &opts, Arc::new(Quiet)).await.unwrap();
    assert_eq!(report.moved, 400);
    assert_all_moved(&client, &table, &users).await;
    let (most, writes_most) = (counts.most.load(Ordering::SeqCst), counts.writes_most.load(Ordering::SeqCst));
    assert!(most <= 3, "{most} requests were in flight at once; concurrency is 3");
    // One request per segment would have kept this at 1.
    assert!(writes_most >= 2, "the lopsided segment's writes went out one at a time ({writes_most} at most)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_whose_lock_was_taken_stops() {
    let client = singletable_tests::client().await;
    let (table, _) = seeded(&client, 300).await;
    let p = plan(&client, &table, &new_design(&table)).await;
    // Slow (a small write budget: 600 units at 60/s) and a short lease,
    // so the heartbeat (every second) meets the intruder long before the
    // end. Not shorter: on a busy 2-core CI machine one renewal has been
    // seen to go unanswered for 2 s, which ends a 1 s lease for the wrong
    // reason.
    let opts = ApplyOptions {
        max_wcu: Some(60.0),
        page_size: Some(25),
        lease: std::time::Duration::from_secs(3),
        owner: "first".into(),
        ..ApplyOptions::default()
    };
    let first = {
        let (client, p) = (client.clone(), p.clone());
        tokio::spawn(async move { Migrator::new(client).apply(&p, &opts, Arc::new(Quiet)).await })
    };
    let lock_key = wait_for_lock(&client, &table).await;
    // What an operator deleting a "stuck" lock and starting another apply
    // would do: the lock now names someone else.
    let mut intruder = lock_key.clone();
    intruder.insert("owner".into(), AttributeValue::S("intruder".into()));
    intruder.insert("expires_at_ms".into(), AttributeValue::N("9999999999999".into()));
    // DynamoDB Local answers InternalFailure at times to a PutItem on a
    // table whose index was just created; try again.
    for attempt in 1.. {
        match client.put_item().table_name(&table).set_item(Some(intruder.clone())).send().await {
            Ok(_) => break,
            Err(e) if attempt < 20 => {
                eprintln!("intruder lock, attempt {attempt}: {e:?}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    }

    let err = first.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("another apply holds it now"), "{err}");
    let moved = scan_all(&client, &table).await.into_iter().filter(|i| i["pk"].as_s().unwrap().starts_with("TENANT#")).count();
    assert!(moved < 300, "the apply stopped part-way, not after moving all ({moved})");
    let lock = client.get_item().table_name(&table).set_key(Some(lock_key)).consistent_read(true).send().await.unwrap().item.unwrap();
    assert_eq!(lock["owner"].as_s().unwrap(), "intruder", "the stopped apply leaves the other's lock alone");
}

/// Fails the first `fail` lock renewals (the heartbeat's UpdateItem), as
/// a server too busy to answer in time would.
#[derive(Debug)]
struct FailRenewals {
    fail: AtomicU64,
    seen: Arc<AtomicU64>,
}

impl Intercept for FailRenewals {
    fn name(&self) -> &'static str {
        "FailRenewals"
    }

    fn read_before_execution(&self, context: &BeforeSerializationInterceptorContextRef<'_>, _: &mut ConfigBag) -> Result<(), BoxError> {
        let renewal = context.input().downcast_ref::<UpdateItemInput>().and_then(|u| u.update_expression.as_deref()) == Some("SET #exp = :exp");
        if renewal {
            self.seen.fetch_add(1, Ordering::SeqCst);
            if self.fail.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                return Err("injected: the lock renewal got no answer".into());
            }
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_lock_renewals_pause_the_apply_instead_of_ending_it() {
    let base = singletable_tests::client().await;
    let (table, users) = seeded(&base, 300).await;
    let p = plan(&base, &table, &new_design(&table)).await;
    let seen = Arc::new(AtomicU64::new(0));
    let client = Client::from_conf(base.config().to_builder().interceptor(FailRenewals { fail: AtomicU64::new(6), seen: seen.clone() }).build());
    // A 1 s lease renewed every 333 ms: six failed renewals (retried after
    // 50, 100, 150, 166, 166 ms) leave the lease unconfirmed past its
    // last sixth, so the workers wait for the seventh, which succeeds.
    // About 3 s of writes under the budget keep the apply running that long.
    let opts = ApplyOptions { max_wcu: Some(150.0), page_size: Some(25), lease: std::time::Duration::from_secs(1), ..ApplyOptions::default() };
    let report = Migrator::new(client.clone()).apply(&p, &opts, Arc::new(Quiet)).await.unwrap();
    assert_eq!(report.moved, 300);
    assert!(seen.load(Ordering::SeqCst) >= 7, "the heartbeat renewed after the failures ({} renewals)", seen.load(Ordering::SeqCst));
    assert_all_moved(&base, &table, &users).await;
}
