//! Chaos test of migrations under load, with an exact ledger (issue 10,
//! "Tests and figures").
//!
//! A table of 5,000 `User`s in the old design (`v1`), 4 writer tasks
//! playing the application for the whole migration, each owning its own
//! users (the seed users round-robin, and every user it creates), doing
//! at random: a conditional increment of `n` (UpdateItem,
//! `attribute_exists(pk)`), a rename (of `name`, or of `email` where the
//! changed index is built from it), a delete, a create-only put of a new
//! user, and a read-modify-write through the library (`get`, then
//! `put`). Only acknowledged writes enter the ledger; see
//! [`chaos/ledger.rs`](ledger). Each writer plays the old version (the v1
//! `Table`) until the migration driver switches it to the new one (a
//! `Table` of the new design); the driver can also pause every old
//! writer (the cut-over).
//!
//! Scenarios (the new design of each):
//! - (a) `key_move`: `pk = "TENANT#{org}"` instead of `ORG#{org}`;
//! - (b) `index_template`: gsi1 `pk = "MAIL#{email}"` instead of `EMAIL#`;
//! - (c) `new_index`: a new index gsi2 `NAME#{name}` / `USER#{id}`.
//!
//! After the driver returns the writers stop, the whole table is scanned
//! and compared with the ledger; see [`ledger::check`].
//!
//! # Drivers
//!
//! A driver is `async fn(Arc<Harness>) -> DriverOutcome`, called once the
//! table is seeded, the plan made and the writers running (all in the old
//! version). It migrates, switches the writers to the new version
//! (`Harness::switch_to_new`, `roll_to_new`), pauses the old ones for a
//! cut-over if it needs to (`pause_old`), and returns when the writers may
//! stop. [`quiet_apply`] is `Migrator::apply` (the quiet mode), run while
//! the old version writes, as issue 10 measured it; it is expected to
//! fail, so its tests are `#[ignore]`d (run them with `--ignored`).
//! [`online_apply`] is the online apply; its three scenarios run in CI.
//!
//! On DynamoDB Local these tests need the stream indexes that
//! `scripts/dynamodb-local.sh` adds (see `scripts/dynamodb-local-indexes.py`):
//! without them each write to a streamed table scans every stream record
//! the server holds, and the second online scenario of a run stalled the
//! server for minutes.
//!
//! `control_no_migration` runs the same load with no migration and checks
//! the table against the old design: it shows the ledger is exact (all
//! zeros when nothing interferes).
//!
//! Knobs (environment): `CHAOS_ITEMS` (5000), `CHAOS_WRITERS` (4),
//! `CHAOS_SEED`, `CHAOS_PACE_MS` (0: flat out), `CHAOS_MAX_WRITE_S` (60),
//! `RUST_LOG` (the apply's tracing, e.g. `singletable_migrate=debug`).

#[path = "chaos/entities.rs"]
mod entities;
#[path = "chaos/harness.rs"]
mod harness;
#[path = "chaos/ledger.rs"]
mod ledger;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use singletable::{Table, TableDesign};
use singletable_migrate::reserved::record_design;
use singletable_migrate::{ApplyOptions, Event, MigrateError, Migrator, Observer};

use entities::{index_template, key_move, new_index, v1, UserForm, UserState};
use harness::{Config, Harness, Rename};
use ledger::{CheckReport, Forms};

/// The migrations under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// (a) the table pk moves.
    KeyMove,
    /// (b) gsi1's pk template changes.
    IndexTemplate,
    /// (c) a new index gsi2.
    NewIndex,
    /// No migration at all (new design = old design): the harness's own
    /// check.
    Control,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::KeyMove => "key move",
            Scenario::IndexTemplate => "index template change",
            Scenario::NewIndex => "new index",
            Scenario::Control => "control (no migration)",
        }
    }

    fn old_design(self, table: &str) -> TableDesign {
        TableDesign::new(table).entity::<v1::User>().build().unwrap()
    }

    fn new_design(self, table: &str) -> TableDesign {
        let d = TableDesign::new(table);
        match self {
            Scenario::KeyMove => d.entity::<key_move::User>(),
            Scenario::IndexTemplate => d.entity::<index_template::User>(),
            Scenario::NewIndex => d.entity::<new_index::User>(),
            Scenario::Control => d.entity::<v1::User>(),
        }
        .build()
        .unwrap()
    }

    fn rename(self) -> Rename {
        match self {
            Scenario::IndexTemplate => Rename::Email,
            _ => Rename::Name,
        }
    }

    fn key_moved(self) -> bool {
        self == Scenario::KeyMove
    }
}

/// The new forms, written by hand.
impl Forms for Scenario {
    fn old_pk(&self, org: &str) -> String {
        format!("ORG#{org}")
    }

    fn new_pk(&self, org: &str) -> String {
        match self {
            Scenario::KeyMove => format!("TENANT#{org}"),
            _ => format!("ORG#{org}"),
        }
    }

    fn new_index_attrs(&self, _org: &str, id: &str, s: &UserState) -> Vec<(&'static str, String)> {
        let mut v = vec![("gsi1sk", "USER".to_string())];
        match self {
            Scenario::IndexTemplate => v.push(("gsi1pk", format!("MAIL#{}", s.email))),
            _ => v.push(("gsi1pk", format!("EMAIL#{}", s.email))),
        }
        if *self == Scenario::NewIndex {
            v.push(("gsi2pk", format!("NAME#{}", s.name)));
            v.push(("gsi2sk", format!("USER#{id}")));
        }
        v
    }
}

/// What a driver reports back: what the migration said, and anything
/// worth printing.
#[derive(Debug, Default)]
pub struct DriverOutcome {
    /// What the migration API returned (one line per call).
    pub migration: Vec<String>,
    pub notes: Vec<String>,
}

/// Everything a run measured.
#[derive(Debug)]
pub struct RunReport {
    pub scenario: Scenario,
    pub check: CheckReport,
    pub ledger: ledger::Ledger,
    pub driver: DriverOutcome,
    pub seed_time: Duration,
    pub driver_time: Duration,
    pub writing_time: Duration,
    pub check_time: Duration,
    pub total: Duration,
}

impl RunReport {
    fn print(&self) {
        let s = &self.ledger.stats;
        eprintln!("==== chaos: {} ====", self.scenario.name());
        for m in &self.driver.migration {
            eprintln!("  migration: {m}");
        }
        for n in &self.driver.notes {
            eprintln!("  note: {n}");
        }
        eprintln!(
            "  writes acknowledged {} in {:.1} s ({:.0}/s): {}",
            s.total_acked(),
            self.writing_time.as_secs_f64(),
            s.total_acked() as f64 / self.writing_time.as_secs_f64(),
            harness::acked_line(s)
        );
        eprintln!(
            "  not written (condition refused) {}, rmw read found nothing {}, stale reads/results seen by writers {}, unknown outcomes {}, refused by the library {}, read errors {}",
            s.condition_failed, s.read_found_nothing, s.stale_observations, s.unknown_outcomes, s.refused, s.read_errors
        );
        for e in &s.errors {
            eprintln!("  writer error: {e}");
        }
        eprint!("{}", self.check);
        eprintln!(
            "  timings: seed+plan {:.1} s, driver {:.1} s, writers {:.1} s, check {:.1} s, total {:.1} s",
            self.seed_time.as_secs_f64(),
            self.driver_time.as_secs_f64(),
            self.writing_time.as_secs_f64(),
            self.check_time.as_secs_f64(),
            self.total.as_secs_f64()
        );
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn config(scenario: Scenario) -> Config {
    Config {
        seed_items: env_or("CHAOS_ITEMS", 5_000),
        writers: env_or("CHAOS_WRITERS", 4),
        orgs: 40,
        max_writing: Duration::from_secs(env_or("CHAOS_MAX_WRITE_S", 60)),
        pace: Duration::from_millis(env_or("CHAOS_PACE_MS", 0)),
        rename: scenario.rename(),
        rng_seed: env_or("CHAOS_SEED", 0xC4A0_5EED),
    }
}

/// Runs one scenario with `driver`: creates and seeds the table (old
/// design, recorded), makes the plan, starts the writers (old version),
/// calls the driver, stops the writers, checks the table against the
/// ledger, prints the report and deletes the table.
pub async fn run_scenario<F, Fut>(scenario: Scenario, driver: F) -> RunReport
where
    F: FnOnce(Arc<Harness>) -> Fut,
    Fut: Future<Output = DriverOutcome>,
{
    // `RUST_LOG=singletable_migrate=debug` shows the apply's pages, copy
    // cancellations, replay rounds and lock renewals on the timeline.
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_test_writer().try_init();
    let t0 = Instant::now();
    let config = config(scenario);
    let client = singletable_tests::client().await;
    let name = singletable_tests::unique_table_name("chaos");
    let old_design = scenario.old_design(&name);
    let new_design = scenario.new_design(&name);
    let old_table = Table::new(client.clone(), old_design.clone());
    old_table.create_table().await.unwrap();
    let seeded = harness::seed_users(&config);
    let users: Vec<v1::User> = seeded.iter().flatten().map(|((org, id), s)| v1::User::build(org, id, s)).collect();
    old_table.batch_write().put_all(&users).send().await.unwrap();
    record_design(&client, &old_design, &name).await.unwrap();
    let plan = {
        let request = singletable_migrate::PlanRequest::new(new_design.clone()).table(&name).old_design(old_design.clone());
        singletable_migrate::planner::make_plan(&client, &request).await.unwrap().plan
    };
    assert!(plan.blocking_errors().is_empty(), "{:?}", plan.blocking_errors());
    let seed_time = t0.elapsed();

    let h = Arc::new(Harness::new(client.clone(), old_design, new_design, plan, config, seeded));
    h.mark(format!("{}: {} users seeded into {name} in {:.1} s; {} writers start", scenario.name(), users.len(), seed_time.as_secs_f64(), h.writers()));
    let writers: Vec<_> = (0..h.writers())
        .map(|k| {
            let h = h.clone();
            match scenario {
                Scenario::KeyMove => tokio::spawn(harness::writer::<v1::User, key_move::User>(h, k)),
                Scenario::IndexTemplate => tokio::spawn(harness::writer::<v1::User, index_template::User>(h, k)),
                Scenario::NewIndex => tokio::spawn(harness::writer::<v1::User, new_index::User>(h, k)),
                Scenario::Control => tokio::spawn(harness::writer::<v1::User, v1::User>(h, k)),
            }
        })
        .collect();

    let t1 = Instant::now();
    let outcome = driver(h.clone()).await;
    let driver_time = t1.elapsed();
    h.stop();
    for w in writers {
        w.await.expect("writer panicked");
    }
    let writing_time = h.started.elapsed();
    if writing_time >= h.config.max_writing {
        h.mark(format!("the writers stopped at their limit of {:?}, maybe before the driver was done", h.config.max_writing));
    }
    h.mark("writers stopped; checking");

    let t2 = Instant::now();
    let items = harness::scan_all(&client, &name).await;
    let ledger = h.ledger();
    let check = ledger::check(&items, &ledger, &scenario, scenario.key_moved());
    let check_time = t2.elapsed();
    singletable_tests::delete_table(&client, &name).await;
    let report = RunReport { scenario, check, ledger, driver: outcome, seed_time, driver_time, writing_time, check_time, total: t0.elapsed() };
    report.print();
    report
}

fn assert_clean(report: &RunReport) {
    let c = &report.check;
    assert_eq!(
        (c.lost_updates, c.resurrected_deletes, c.missing, c.old_form_orphans, c.duplicates),
        (0, 0, 0, 0, 0),
        "{}: (lost updates, resurrected deletes, missing, old-form orphans, duplicates)",
        report.scenario.name()
    );
    assert_eq!(
        (c.wrong_index_keys, c.missing_index_keys, c.phantoms, c.undecodable),
        (0, 0, 0, 0),
        "{}: (wrong index keys, missing index keys, phantoms, undecodable)",
        report.scenario.name()
    );
    assert_eq!(report.ledger.stats.refused, 0, "the library refused writes of the harness: {:?}", report.ledger.stats.errors);
    assert!(report.ledger.stats.total_acked() > 1_000, "too little load: {}", report.ledger.stats.total_acked());
}

/// Runs scenarios one at a time: each loads the 2 cores fully, and their
/// timings mean something only alone.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------
// Drivers
// ---------------------------------------------------------------------

/// Old writers run this long before the migration starts, and new ones
/// this long after the last switch.
const WARM_UP: Duration = Duration::from_secs(2);
const AFTER: Duration = Duration::from_secs(3);
/// Between two writers' switches to the new version.
const ROLL_GAP: Duration = Duration::from_millis(750);

/// Today's quiet `Migrator::apply`, run while the old version writes, as
/// a user following the README would: plan, apply, then deploy the new
/// version writer by writer, let it write, done. A failed verification is
/// applied once more (with a new plan), as issue 10 saw users do.
///
/// At 4fc5c32 the plan's fingerprint holds the table's item count and
/// size, so under load a plan is stale before apply reads it. After a
/// refusal the driver therefore pauses the (old) writers, refreshes the
/// fingerprint, starts apply and lets the writers go on at apply's first
/// event (its stale-plan check passed): a pause of a few hundred ms per
/// refusal, reported; the writers run through the whole backfill.
async fn quiet_apply(h: Arc<Harness>) -> DriverOutcome {
    let mut out = DriverOutcome::default();
    tokio::time::sleep(WARM_UP).await;
    h.mark("planning");
    let mut plan = h.make_plan().await.expect("plan");
    let (mut stale, mut verification_failures) = (0, 0);
    h.mark("applying");
    let mut paused = Duration::ZERO;
    for attempt in 1..=40 {
        let hold = stale > 0;
        let pause_started = Instant::now();
        if hold {
            h.pause_old().await;
            plan.fingerprint = refreshed_fingerprint(&h).await;
        }
        let t = Instant::now();
        let began = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (client, plan, began) = (h.client.clone(), plan.clone(), began.clone());
            async move { Migrator::new(client).apply(&plan, &ApplyOptions::default(), Arc::new(FirstEvent(began))).await }
        });
        if hold {
            while !began.load(SeqCst) && !task.is_finished() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            h.resume_old();
            paused += pause_started.elapsed();
        }
        let result = task.await.expect("apply panicked");
        let took = t.elapsed().as_secs_f64();
        match result {
            Ok(r) => {
                let v = r.verification.as_ref().map_or("none".to_string(), |v| format!("counts {:?}, problems {}", v.counts, v.problems.len()));
                out.migration.push(format!(
                    "apply {attempt}: Ok in {took:.1} s: scanned {}, moved {}, updated {}, verification: {v}",
                    r.scanned, r.moved, r.updated
                ));
                break;
            }
            Err(MigrateError::StalePlan { .. }) => {
                stale += 1;
                continue;
            }
            Err(e @ MigrateError::Verification { .. }) if verification_failures == 0 => {
                verification_failures += 1;
                out.migration.push(format!("apply {attempt}: failed in {took:.1} s: {}", first_lines(&e.to_string(), 3)));
                h.mark("verification failed; planning and applying again");
                plan = h.make_plan().await.expect("plan");
            }
            Err(e) => {
                out.migration.push(format!("apply {attempt}: failed in {took:.1} s: {}", first_lines(&e.to_string(), 3)));
                break;
            }
        }
    }
    if stale > 0 {
        out.migration.push(format!(
            "refused as a stale plan {stale} times; writers paused {:.2} s in all to get apply past its check",
            paused.as_secs_f64()
        ));
    }
    h.mark("apply done; rolling the writers to the new version");
    h.roll_to_new(ROLL_GAP).await;
    tokio::time::sleep(AFTER).await;
    out
}

/// Sets its flag at the first event of an apply.
struct FirstEvent(Arc<AtomicBool>);

impl Observer for FirstEvent {
    fn event(&self, _: Event) {
        self.0.store(true, SeqCst);
    }
}

/// The fingerprint of the table as it is now (what a plan made this
/// instant would carry).
async fn refreshed_fingerprint(h: &Harness) -> String {
    let live = singletable_migrate::describe(&h.client, &h.table).await.expect("describe");
    let recorded = singletable_migrate::reserved::read_recorded_design(&h.client, &h.table, "pk", "sk").await.expect("recorded design");
    singletable_migrate::fingerprint::fingerprint(&live, recorded.as_ref())
}

fn first_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let mut out = lines.iter().take(n).copied().collect::<Vec<_>>().join(" / ");
    if lines.len() > n {
        out.push_str(&format!(" / ... ({} lines)", lines.len()));
    }
    out
}

/// The online apply: expand and catch up while the old version writes
/// flat out, cut over once the old writers are paused (the write pause is
/// from `pause_old` to the end of `cutover`), then the new version writes
/// through contract. (No rolling overlap: the new version writes the new
/// form, so it starts after cut-over.)
async fn online_apply(h: Arc<Harness>) -> DriverOutcome {
    let mut out = DriverOutcome::default();
    tokio::time::sleep(WARM_UP).await;
    h.mark("starting the online apply");
    let migrator = Migrator::new(h.client.clone()).with_streams(singletable_tests::streams_client().await);
    let opts = ApplyOptions { page_size: Some(500), ..ApplyOptions::default() };
    let t = Instant::now();
    // The bounds add up to 3 minutes: a stalled phase fails the test, not
    // the suite's time budget.
    let mut online = bounded(20, "start", migrator.start_online(&h.plan, &opts, Arc::new(Marks(h.clone())))).await.expect("start_online");
    let caught = bounded(90, "catch-up", online.wait_caught_up()).await.expect("wait_caught_up");
    out.migration.push(format!(
        "expand + catch-up under load: {:.1} s, {} stream records replayed",
        t.elapsed().as_secs_f64(),
        caught.records
    ));
    // Writers keep going a little while the replay keeps up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    h.mark("cut-over: pausing the old version");
    let pause = Instant::now();
    h.pause_old().await;
    let cut = bounded(30, "cut-over", online.cutover()).await.expect("cutover");
    h.mark("cut-over done; the new version writes");
    h.roll_to_new(Duration::ZERO).await;
    h.resume_old();
    out.migration.push(format!(
        "cut-over: write pause {:.2} s (drained {} records, compared {} items, {} in place)",
        pause.elapsed().as_secs_f64(),
        cut.drained,
        cut.content.compared,
        cut.content.in_place
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = bounded(40, "contract", online.complete()).await.expect("complete");
    out.migration.push(format!("contract with the new version writing: deleted {} old forms", report.deleted));
    tokio::time::sleep(AFTER).await;
    out
}

/// Puts the apply's steps and warnings (and every 10th progress event) on
/// the run's timeline.
struct Marks(Arc<Harness>);

impl Observer for Marks {
    fn event(&self, event: Event) {
        match event {
            Event::Progress { scanned, written, .. } if scanned % 10 != 0 => {
                let _ = written;
            }
            other => self.0.mark(&format!("{other:?}")),
        }
    }
}

/// A phase that does not finish in time fails the test rather than the
/// whole suite's time budget.
async fn bounded<T>(secs: u64, what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f).await.unwrap_or_else(|_| panic!("{what} did not finish within {secs} s"))
}


/// No migration: the old version writes, then "switches" to the same
/// design. Every number must be 0, so a non-zero one in a scenario is
/// the migration's, not the harness's.
async fn no_migration(h: Arc<Harness>) -> DriverOutcome {
    tokio::time::sleep(Duration::from_secs(4)).await;
    h.switch_to_new(0).await;
    h.pause_old().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.roll_to_new(Duration::from_millis(200)).await;
    h.resume_old();
    tokio::time::sleep(Duration::from_secs(2)).await;
    DriverOutcome { migration: vec!["none".into()], notes: vec![] }
}

// ---------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_no_migration() {
    let _one = one_at_a_time();
    let report = run_scenario(Scenario::Control, no_migration).await;
    assert_clean(&report);
    assert_eq!(report.ledger.stats.condition_failed, 0, "nothing interferes, so every conditional write finds its item");
    assert_eq!(report.ledger.stats.stale_observations, 0);
    assert_eq!(report.ledger.stats.read_found_nothing, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "today's quiet apply loses writes under load (issue 10); kept to show the failure"]
async fn quiet_apply_key_move_under_load() {
    let _one = one_at_a_time();
    assert_clean(&run_scenario(Scenario::KeyMove, quiet_apply).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "today's quiet apply loses writes under load (issue 10); kept to show the failure"]
async fn quiet_apply_index_template_change_under_load() {
    let _one = one_at_a_time();
    assert_clean(&run_scenario(Scenario::IndexTemplate, quiet_apply).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "today's quiet apply loses writes under load (issue 10); kept to show the failure"]
async fn quiet_apply_new_index_under_load() {
    let _one = one_at_a_time();
    assert_clean(&run_scenario(Scenario::NewIndex, quiet_apply).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_apply_key_move_under_load() {
    let _one = one_at_a_time();
    assert_clean(&run_scenario(Scenario::KeyMove, online_apply).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_apply_index_template_change_under_load() {
    let _one = one_at_a_time();
    assert_clean(&run_scenario(Scenario::IndexTemplate, online_apply).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_apply_new_index_under_load() {
    let _one = one_at_a_time();
    assert_clean(&run_scenario(Scenario::NewIndex, online_apply).await);
}
