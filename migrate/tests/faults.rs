//! Migrations under injected faults (issue 12): the quiet apply
//! (`Migrator::apply`) and the online apply with writers
//! (`Migrator::with_streams(..).start_online`, `wait_caught_up`,
//! `cutover`, `complete`), their DynamoDB client sent through
//! [`FaultProxy`] (an HTTP proxy in front of DynamoDB Local) while it
//! throttles, answers 500, adds latency, drops connections (before or
//! after forwarding) and returns batch writes partly unprocessed. The
//! DynamoDB Streams client goes straight to Local.
//!
//! A migration must complete, or fail with a clear error and complete
//! when run again (as a user would: the same plan again; a new plan only
//! if told the plan is stale). The table is then compared with an exact
//! ledger ([`chaos/ledger.rs`](ledger), shared with `chaos.rs`): 0 items
//! lost, duplicated, resurrected, left in the old form or with wrong
//! index keys. Writes of the application whose answer the proxy dropped
//! after DynamoDB applied them (the SDK retries them: an increment may be
//! applied twice, a create reported as existing) are unknown outcomes in
//! the ledger; the migration's own writes get no such allowance.
//!
//! The last two tests inject one lost answer at a chosen request, to pin
//! down what the random runs can only stumble on.

#[path = "chaos/entities.rs"]
#[allow(dead_code)]
mod entities;
#[path = "chaos/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "chaos/ledger.rs"]
#[allow(dead_code)]
mod ledger;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use singletable::{Table, TableDesign};
use singletable_migrate::reserved::{record_design, LOCK_SK, RESERVED_PK};
use singletable_migrate::{ApplyOptions, ApplyReport, Event, MigrateError, Migrator, Observer, OnlineMigration, Phase, Plan};
use singletable_tests::faults::{DroppedWrite, Fault, FaultProxy, Faults, Throttle, Unprocessed};

use entities::{key_move, new_index, v1, UserState};
use harness::{Config, Harness, Rename};
use ledger::{CheckReport, Expected, Forms, Ledger};

/// The migrations exercised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// The table pk moves (`ORG#` -> `TENANT#`): puts, deletes, copies.
    KeyMove,
    /// A new index gsi2: CreateIndex, then updates in place.
    NewIndex,
}

impl Scenario {
    fn new_design(self, table: &str) -> TableDesign {
        let d = TableDesign::new(table);
        match self {
            Scenario::KeyMove => d.entity::<key_move::User>(),
            Scenario::NewIndex => d.entity::<new_index::User>(),
        }
        .build()
        .unwrap()
    }
}

impl Forms for Scenario {
    fn old_pk(&self, org: &str) -> String {
        format!("ORG#{org}")
    }

    fn new_pk(&self, org: &str) -> String {
        match self {
            Scenario::KeyMove => format!("TENANT#{org}"),
            Scenario::NewIndex => format!("ORG#{org}"),
        }
    }

    fn new_index_attrs(&self, _org: &str, id: &str, s: &UserState) -> Vec<(&'static str, String)> {
        let mut v = vec![("gsi1pk", format!("EMAIL#{}", s.email)), ("gsi1sk", "USER".to_string())];
        if *self == Scenario::NewIndex {
            v.push(("gsi2pk", format!("NAME#{}", s.name)));
            v.push(("gsi2sk", format!("USER#{id}")));
        }
        v
    }
}

fn old_design(table: &str) -> TableDesign {
    TableDesign::new(table).entity::<v1::User>().build().unwrap()
}

/// Runs the tests one at a time: each loads both cores, and the SDK's
/// retry token bucket is shared by every client of the process.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().await
}

async fn bounded<T>(secs: u64, what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f).await.unwrap_or_else(|_| panic!("{what} did not finish within {secs} s"))
}


/// Collects the apply's warnings.
#[derive(Default)]
struct Warnings(Mutex<Vec<String>>);

impl Observer for Warnings {
    fn event(&self, event: Event) {
        if let Event::Warning(w) = event {
            self.0.lock().unwrap().push(w);
        }
    }
}

/// The faults of the random runs: each kind on a few percent of requests.
fn mixed_faults() -> Faults {
    Faults::none()
        .throttling(0.08, Throttle::Mixed)
        .server_errors(0.04)
        .drops(0.03, 0.5)
        .latency(0, 3, 0.03, 50, 300)
        .unprocessed(Unprocessed::Partial)
}

/// Pages of 300 items; 12 requests in flight, so the SDK's backoffs after
/// injected faults overlap.
fn apply_options() -> ApplyOptions {
    ApplyOptions { page_size: Some(300), concurrency: Some(12), ..ApplyOptions::default() }
}

/// A seeded table in the old design (written directly, not through the
/// proxy), its old design recorded, the ledger of the seed, and a plan.
struct Seeded {
    direct: Client,
    table: String,
    config: Config,
    seeded: Vec<Vec<((String, String), UserState)>>,
    plan: Plan,
}

fn config(items: usize, writers: usize, rename: Rename) -> Config {
    Config {
        seed_items: items,
        writers,
        orgs: 20,
        max_writing: Duration::from_secs(90),
        // A busy application, not a load test of DynamoDB Local: the
        // migration gets its share of the two cores.
        pace: Duration::from_millis(2),
        rename,
        rng_seed: 0xFA17,
    }
}

async fn seed(scenario: Scenario, config: Config) -> Seeded {
    let direct = singletable_tests::client().await;
    let table = singletable_tests::unique_table_name("faults");
    let old = Table::new(direct.clone(), old_design(&table));
    old.create_table().await.unwrap();
    let seeded = harness::seed_users(&config);
    let users: Vec<v1::User> = seeded.iter().flatten().map(|((org, id), s)| <v1::User as entities::UserForm>::build(org, id, s)).collect();
    old.batch_write().put_all(&users).send().await.unwrap();
    record_design(&direct, &old_design(&table), &table).await.unwrap();
    let plan = make_plan(&direct, scenario, &table).await;
    Seeded { direct, table, config, seeded, plan }
}

async fn make_plan(client: &Client, scenario: Scenario, table: &str) -> Plan {
    let request = singletable_migrate::PlanRequest::new(scenario.new_design(table)).table(table).old_design(old_design(table));
    let plan = singletable_migrate::planner::make_plan(client, &request).await.unwrap().plan;
    assert!(plan.blocking_errors().is_empty(), "{:?}", plan.blocking_errors());
    plan
}

/// Only the recorded design is left of the toolkit's own items: no lock,
/// no checkpoint, no online state.
fn reserved_left(items: &[ledger::Raw]) -> Vec<String> {
    items
        .iter()
        .filter(|i| i.get("pk").and_then(|v| v.as_s().ok()).map(String::as_str) == Some(RESERVED_PK))
        .map(|i| i.get("sk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default())
        .collect()
}

fn assert_clean(what: &str, c: &CheckReport) {
    assert_eq!(
        (c.lost_updates, c.resurrected_deletes, c.missing, c.old_form_orphans, c.duplicates),
        (0, 0, 0, 0, 0),
        "{what}: (lost updates, resurrected deletes, missing, old-form orphans, duplicates)\n{c}"
    );
    assert_eq!(
        (c.wrong_index_keys, c.missing_index_keys, c.phantoms, c.undecodable),
        (0, 0, 0, 0),
        "{what}: (wrong index keys, missing index keys, phantoms, undecodable)\n{c}"
    );
}

/// Whether an error says what failed and where: the table, and an
/// operation or reason in words.
fn assert_clear(e: &MigrateError, table: &str) {
    let text = e.to_string();
    assert!(text.contains(table), "an error that does not name the table: {text}");
    assert!(text.len() > table.len() + 20, "an error that says too little: {text}");
}

/// The first two lines of an error (a verification error's first problem
/// is on its second), shortened.
fn first_line(e: &impl std::fmt::Display) -> String {
    let s = e.to_string();
    let line = s.lines().take(2).map(str::trim).collect::<Vec<_>>().join(" ");
    line.chars().take(300).collect()
}

// ---------------------------------------------------------------------------
// The quiet apply

/// Applies `plan` until it succeeds (at most `tries` runs), as a user
/// would: the same plan again after an error, a new plan only after
/// `StalePlan`. Returns the report and the errors met on the way.
async fn apply_until_done(migrator: &Migrator, plan: &mut Plan, scenario: Scenario, direct: &Client, tries: usize) -> (ApplyReport, Vec<String>) {
    let mut errors = Vec::new();
    for _ in 0..tries {
        let observer = Arc::new(Warnings::default());
        let opts = apply_options();
        match migrator.apply(plan, &opts, observer).await {
            Ok(report) => return (report, errors),
            Err(e) => {
                assert_clear(&e, &plan.table);
                errors.push(first_line(&e));
                if let MigrateError::StalePlan { .. } = e {
                    *plan = make_plan(direct, scenario, &plan.table).await;
                }
            }
        }
    }
    panic!("the apply did not complete in {tries} runs: {errors:#?}");
}

async fn quiet_apply_under_faults(scenario: Scenario, seed_rng: u64) {
    let started = Instant::now();
    let s = seed(scenario, config(1_500, 4, Rename::Name)).await;
    let proxy = FaultProxy::start(seed_rng).await;
    let migrator = Migrator::new(proxy.client("migrator").await);
    proxy.set(mixed_faults());
    let mut plan = s.plan.clone();
    let (report, errors) = bounded(150, "the apply", apply_until_done(&migrator, &mut plan, scenario, &s.direct, 8)).await;
    proxy.clear();
    let counts = proxy.counts();

    let items = harness::scan_all(&s.direct, &s.table).await;
    let ledger = Ledger::merge(s.seeded.iter().map(|w| (w.iter().map(|(k, st)| (k.clone(), Expected::Exists(st.clone()))).collect(), Default::default())));
    let check = ledger::check(&items, &ledger, &scenario, scenario == Scenario::KeyMove);
    let verification = report.verification.as_ref().map(|v| v.problems.len());
    eprintln!("==== faults: quiet apply, {scenario:?} ====");
    eprintln!("  proxy: {counts}");
    eprintln!("  by operation: {:?}", counts.by_op);
    eprintln!(
        "  apply: {} run(s); scanned {}, moved {}, updated {}; verification problems {verification:?}",
        errors.len() + 1,
        report.scanned,
        report.moved,
        report.updated
    );
    for e in &errors {
        eprintln!("  failed run: {e}");
    }
    eprint!("{check}");
    eprintln!("  time {:.1} s", started.elapsed().as_secs_f64());

    assert!(counts.injected() > 30, "too few faults: {counts}");
    assert!(counts.max_attempt <= 3, "the SDK made {} attempts of one call", counts.max_attempt);
    assert_eq!(verification, Some(0), "the apply verified the table");
    assert_clean(&format!("quiet apply {scenario:?}"), &check);
    assert_eq!(check.logical_users, 1_500);
    assert_eq!(reserved_left(&items), vec!["#DESIGN".to_string()], "the table ends clean");
    singletable_tests::delete_table(&s.direct, &s.table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_apply_key_move_completes_under_faults() {
    let _one = one_at_a_time().await;
    quiet_apply_under_faults(Scenario::KeyMove, 0x0A11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_apply_new_index_completes_under_faults() {
    let _one = one_at_a_time().await;
    quiet_apply_under_faults(Scenario::NewIndex, 0x0B22).await;
}

// ---------------------------------------------------------------------------
// The online apply with writers

/// Starts (or resumes) the online apply, again after an error.
async fn start(migrator: &Migrator, plan: &Plan, opts: &ApplyOptions, notes: &mut Vec<String>) -> OnlineMigration {
    for _ in 0..6 {
        match migrator.start_online(plan, opts, Arc::new(Warnings::default())).await {
            Ok(online) => return online,
            Err(e) => {
                assert_clear(&e, &plan.table);
                notes.push(format!("start_online failed: {}", first_line(&e)));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    panic!("start_online failed 6 times: {notes:#?}");
}

/// The online apply of `plan`, each phase run again (after resuming the
/// apply) when it fails; the writers switched as `chaos.rs` does.
async fn online_driver(h: Arc<Harness>, migrator: Migrator, plan: Plan) -> Vec<String> {
    let mut notes = Vec::new();
    let opts = apply_options();
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.mark("starting the online apply");
    let mut online = start(&migrator, &plan, &opts, &mut notes).await;
    let mut tries = 0;
    while let Err(e) = online.wait_caught_up().await {
        tries += 1;
        assert!(tries < 6, "catch-up failed 6 times: {notes:#?}");
        assert_clear(&e, &plan.table);
        notes.push(format!("wait_caught_up failed: {}", first_line(&e)));
        drop(online);
        online = start(&migrator, &plan, &opts, &mut notes).await;
    }
    h.mark("caught up");
    tokio::time::sleep(Duration::from_secs(2)).await;
    h.mark("cut-over: pausing the old version");
    h.pause_old().await;
    let pause = Instant::now();
    let mut tries = 0;
    while let Err(e) = online.cutover().await {
        tries += 1;
        assert!(tries < 6, "cut-over failed 6 times: {notes:#?}");
        assert_clear(&e, &plan.table);
        notes.push(format!("cutover failed: {}", first_line(&e)));
        drop(online);
        online = start(&migrator, &plan, &opts, &mut notes).await;
    }
    notes.push(format!("write pause {:.2} s", pause.elapsed().as_secs_f64()));
    assert_eq!(online.phase(), Phase::CutOver);
    h.roll_to_new(Duration::ZERO).await;
    h.resume_old();
    h.mark("cut-over done; the new version writes");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut tries = 0;
    loop {
        match online.complete().await {
            Ok(report) => {
                let problems = report.verification.as_ref().map_or(usize::MAX, |v| v.problems.len());
                assert_eq!(problems, 0, "complete verified the table");
                notes.push(format!("contract deleted {} old forms", report.deleted));
                break;
            }
            Err(e) => {
                tries += 1;
                assert!(tries < 6, "complete failed 6 times: {notes:#?}");
                assert_clear(&e, &plan.table);
                notes.push(format!("complete failed: {}", first_line(&e)));
                online = start(&migrator, &plan, &opts, &mut notes).await;
            }
        }
    }
    h.mark("complete");
    tokio::time::sleep(Duration::from_secs(1)).await;
    notes
}

/// Marks the users whose writes the proxy dropped after DynamoDB applied
/// them as unknown outcomes; returns how many.
fn unknown_from_drops(ledger: &mut Ledger, drops: &[DroppedWrite], access_key: &str) -> usize {
    let mut n = 0;
    for d in drops.iter().filter(|d| d.access_key == access_key) {
        for (pk, sk) in &d.keys {
            let org = pk.strip_prefix("ORG#").or_else(|| pk.strip_prefix("TENANT#"));
            if let (Some(org), Some(id)) = (org, sk.strip_prefix("USER#")) {
                ledger.items.insert((org.to_string(), id.to_string()), Expected::Unknown);
                n += 1;
            }
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_apply_with_writers_completes_under_faults() {
    let _one = one_at_a_time().await;
    let started = Instant::now();
    let scenario = Scenario::KeyMove;
    let s = seed(scenario, config(1_500, 4, Rename::Name)).await;
    let proxy = FaultProxy::start(0x0C33).await;
    let writers_client = proxy.client("writers").await;
    let migrator = Migrator::new(proxy.client("migrator").await).with_streams(singletable_tests::streams_client().await);
    let h = Arc::new(Harness::new(writers_client, old_design(&s.table), scenario.new_design(&s.table), s.plan.clone(), s.config.clone(), s.seeded.clone()));
    proxy.set(mixed_faults());
    let writers: Vec<_> = (0..h.writers()).map(|k| tokio::spawn(harness::writer::<v1::User, key_move::User>(h.clone(), k))).collect();
    let notes = bounded(150, "the online apply", online_driver(h.clone(), migrator, s.plan.clone())).await;
    h.stop();
    for w in writers {
        w.await.expect("writer panicked");
    }
    proxy.clear();
    let counts = proxy.counts();

    let items = harness::scan_all(&s.direct, &s.table).await;
    let mut ledger = h.ledger();
    let drops = proxy.applied_drops();
    let marked = unknown_from_drops(&mut ledger, &drops, "writers");
    let check = ledger::check(&items, &ledger, &scenario, true);
    let st = &ledger.stats;
    eprintln!("==== faults: online apply with writers, {scenario:?} ====");
    eprintln!("  proxy: {counts}");
    eprintln!("  by operation: {:?}", counts.by_op);
    eprintln!(
        "  writers: acknowledged {} ({}); condition refused {}, unknown outcomes {} (+{} users whose applied write lost its answer), refused {}",
        st.total_acked(),
        harness::acked_line(st),
        st.condition_failed,
        st.unknown_outcomes,
        marked,
        st.refused
    );
    for e in st.errors.iter().take(3) {
        eprintln!("  writer error: {}", e.chars().take(240).collect::<String>());
    }
    for n in &notes {
        eprintln!("  migration: {n}");
    }
    eprint!("{check}");
    eprintln!("  time {:.1} s", started.elapsed().as_secs_f64());

    assert!(counts.injected() > 50, "too few faults: {counts}");
    assert!(counts.dropped_applied > 0, "{counts}");
    assert!(counts.max_attempt <= 3, "the SDK made {} attempts of one call", counts.max_attempt);
    assert_eq!(st.refused, 0, "the library refused writes of the harness: {:?}", st.errors);
    assert!(st.total_acked() > 500, "too little load: {}", st.total_acked());
    assert_clean("online apply with writers", &check);
    assert_eq!(reserved_left(&items), vec!["#DESIGN".to_string()], "the table ends clean");
    singletable_tests::delete_table(&s.direct, &s.table).await;
}

// ---------------------------------------------------------------------------
// One lost answer, at a chosen request

fn key_sk(body: &serde_json::Value) -> Option<&str> {
    body["Key"]["sk"]["S"].as_str()
}

/// The quiet apply's last request releases its lock (a conditional
/// DeleteItem). Its answer is lost; the SDK sends it again, and the
/// second attempt finds no lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_whose_lock_release_lost_its_answer_succeeds() {
    let _one = one_at_a_time().await;
    let s = seed(Scenario::KeyMove, config(200, 1, Rename::Name)).await;
    let proxy = FaultProxy::start(1).await;
    let migrator = Migrator::new(proxy.client("migrator").await);
    proxy.script("DeleteItem", 1, Fault::DropApplied, |b| key_sk(b) == Some(LOCK_SK));
    let result = bounded(60, "apply", migrator.apply(&s.plan, &ApplyOptions::default(), Arc::new(Warnings::default()))).await;
    let items = harness::scan_all(&s.direct, &s.table).await;
    eprintln!("apply whose lock release lost its answer: {:?}; proxy: {}", result.as_ref().map(|r| r.moved).map_err(first_line), proxy.counts());
    assert_eq!(proxy.scripted_left(), 0, "the lock's release was hit");
    assert_eq!(reserved_left(&items), vec!["#DESIGN".to_string()], "the apply finished: design recorded, lock gone");
    singletable_tests::delete_table(&s.direct, &s.table).await;
    result.expect("the apply completed: it must not report a failure");
}

/// Contract deletes each old form on the condition that it is unchanged,
/// up to 25 in a transaction. One such transaction is applied, its answer
/// lost; the SDK sends it again, and the second attempt finds no items.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_delete_whose_answer_was_lost_is_not_reported_as_changed() {
    let _one = one_at_a_time().await;
    let s = seed(Scenario::KeyMove, config(200, 1, Rename::Name)).await;
    let proxy = FaultProxy::start(2).await;
    let migrator = Migrator::new(proxy.client("migrator").await).with_streams(singletable_tests::streams_client().await);
    let opts = ApplyOptions::default();
    let mut online = bounded(60, "start", migrator.start_online(&s.plan, &opts, Arc::new(Warnings::default()))).await.unwrap();
    bounded(60, "catch-up", online.wait_caught_up()).await.unwrap();
    bounded(60, "cut-over", online.cutover()).await.unwrap();
    // Contract's deletes compare every attribute: `#a0` is in no other
    // transaction of the apply.
    proxy.script("TransactWriteItems", 1, Fault::DropApplied, |b| {
        let delete = &b["TransactItems"][0]["Delete"];
        delete["ConditionExpression"].as_str().is_some_and(|c| c.contains("#a0")) && key_sk(delete).is_some_and(|sk| sk.starts_with("USER#"))
    });
    let result = bounded(60, "complete", online.complete()).await;
    let items = harness::scan_all(&s.direct, &s.table).await;
    let old_forms = items.iter().filter(|i| i.get("pk").and_then(|v| v.as_s().ok()).is_some_and(|p| p.starts_with("ORG#"))).count();
    eprintln!(
        "complete whose contract delete lost its answer: {:?}; old forms left {old_forms}; proxy: {}",
        result.as_ref().map(|r| r.deleted).map_err(first_line),
        proxy.counts()
    );
    assert_eq!(proxy.scripted_left(), 0, "a transaction of contract deletes was hit");
    assert_eq!(old_forms, 0, "every old form is gone, the one whose answer was lost included");
    singletable_tests::delete_table(&s.direct, &s.table).await;
    result.expect("nothing changed after cut-over: complete must succeed");
}
