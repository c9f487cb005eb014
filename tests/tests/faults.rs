//! Fault injection against `singletable::Table` (issue 12): batch writes,
//! batch gets and transactions sent through [`FaultProxy`] (an HTTP proxy
//! in front of DynamoDB Local) while it throttles, answers 500, adds
//! latency, drops connections or returns batches unprocessed.
//!
//! Every write the library acknowledges goes into an exact ledger; a write
//! whose outcome the library could not know (an error after the request
//! may have been applied) keeps both states as possible. At the end the
//! table is read back directly (not through the proxy) and compared with
//! the ledger: nothing acknowledged may be lost, nothing deleted may come
//! back, nothing never written may appear. Every call must return
//! (bounded by a timeout), either done or with a typed error saying what
//! was not done.
//!
//! The tests run one at a time: they load both cores, and the SDK's retry
//! token bucket is shared by every client of the process.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use singletable::{BatchOp, CancelKind, Error, Item, RetryPolicy, Table, TableDesign, MAX_BATCH_GET, MAX_BATCH_WRITE};
use singletable_tests::faults::{Fault, FaultCounts, FaultProxy, Faults, Throttle, Unprocessed};

#[derive(Item, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[item(entity = "Rec", pk = "REC#{id:05}", sk = "REC")]
struct Rec {
    id: u32,
    round: u32,
    payload: String,
}

#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Account", pk = "ACCOUNT#{id:03}", sk = "ACCOUNT")]
struct Account {
    id: u32,
    balance: i64,
}

#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Transfer", pk = "TRANSFER#{id:07}", sk = "TRANSFER")]
struct Transfer {
    id: u32,
    from: u32,
    to: u32,
    amount: i64,
}

/// Items the batch tests work on.
const ITEMS: u32 = 1_500;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().await
}

/// A test that hangs fails instead of stalling the suite.
async fn bounded<T>(secs: u64, what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f).await.unwrap_or_else(|_| panic!("{what} did not finish within {secs} s"))
}

/// A fresh table (created directly on DynamoDB Local), and a handle on it
/// through the proxy.
async fn tables(prefix: &str, proxy: &FaultProxy, entities: Vec<singletable::EntityDesign>) -> (Table, Table) {
    let name = singletable_tests::unique_table_name(prefix);
    let design = TableDesign::from_entities(name, entities).expect("design");
    let direct = Table::new(singletable_tests::client().await, design.clone());
    direct.create_table().await.expect("create_table");
    let faulty = Table::new(proxy.client("app").await, design);
    (direct, faulty)
}

async fn scan(client: &Client, table: &str) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = client.scan().table_name(table).consistent_read(true).set_exclusive_start_key(start.take()).send().await.expect("scan");
        out.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            return out;
        }
    }
}

// ---------------------------------------------------------------------------
// The ledger of batch writes

/// For every id, the states the table may hold: one when the last write
/// was acknowledged (or refused), several after writes of unknown outcome.
#[derive(Default)]
struct Ledger {
    states: BTreeMap<u32, Vec<Option<Rec>>>,
}

impl Ledger {
    fn possible(&self, id: u32) -> Vec<Option<Rec>> {
        self.states.get(&id).cloned().unwrap_or_else(|| vec![None])
    }

    fn acked(&mut self, id: u32, state: Option<Rec>) {
        self.states.insert(id, vec![state]);
    }

    fn unknown(&mut self, id: u32, state: Option<Rec>) {
        let s = self.states.entry(id).or_insert_with(|| vec![None]);
        if !s.contains(&state) {
            s.push(state);
        }
    }

    /// After a consistent read: the table holds `seen`, so that is the one
    /// possible state (the call that left it unknown has returned: nothing
    /// of it is in flight any more).
    fn observed(&mut self, id: u32, seen: Option<Rec>) -> Result<(), String> {
        let possible = self.possible(id);
        if !possible.contains(&seen) {
            return Err(format!("id {id}: read {seen:?}, possible {possible:?}"));
        }
        self.states.insert(id, vec![seen]);
        Ok(())
    }
}

/// What the final comparison found.
#[derive(Debug, Default)]
struct Check {
    exact: usize,
    unknown: usize,
    lost: usize,
    resurrected: usize,
    phantoms: usize,
    wrong: usize,
    examples: Vec<String>,
}

impl Check {
    fn clean(&self) -> bool {
        self.lost + self.resurrected + self.phantoms + self.wrong == 0
    }
}

async fn check(direct: &Table, ledger: &Ledger) -> Check {
    let mut stored: BTreeMap<u32, Rec> = BTreeMap::new();
    for item in scan(direct.client(), direct.name()).await {
        let rec = Rec::from_item(item).expect("a Rec");
        assert!(stored.insert(rec.id, rec).is_none());
    }
    let ids: BTreeSet<u32> = stored.keys().chain(ledger.states.keys()).copied().collect();
    let mut c = Check::default();
    for id in ids {
        let got = stored.get(&id).cloned();
        let possible = ledger.possible(id);
        if possible.len() > 1 {
            c.unknown += 1;
        } else {
            c.exact += 1;
        }
        if possible.contains(&got) {
            continue;
        }
        let problem = match (&got, possible.as_slice()) {
            (None, _) => {
                c.lost += 1;
                "lost"
            }
            (Some(_), [None]) if ledger.states.contains_key(&id) => {
                c.resurrected += 1;
                "resurrected"
            }
            (Some(_), [None]) => {
                c.phantoms += 1;
                "phantom"
            }
            _ => {
                c.wrong += 1;
                "wrong content"
            }
        };
        if c.examples.len() < 8 {
            c.examples.push(format!("{problem}: id {id}: stored {got:?}, possible {possible:?}"));
        }
    }
    c
}

/// What the library did, summed over a test.
#[derive(Debug, Default)]
struct LibStats {
    writes_ok: u64,
    writes_incomplete: u64,
    gets_ok: u64,
    gets_incomplete: u64,
    acked: u64,
    unknown: u64,
    calls: usize,
    resubmitted: usize,
    slowest: Duration,
    errors: Vec<String>,
}

impl LibStats {
    fn error(&mut self, e: &Error) {
        if self.errors.len() < 3 {
            let text = e.to_string();
            self.errors.push(text.chars().take(300).collect());
        }
    }
}

fn rec(id: u32, round: u32, rng: &mut fastrand::Rng) -> Rec {
    let len = rng.usize(10..200);
    Rec { id, round, payload: format!("r{round}:{}", "x".repeat(len)) }
}

/// One batch write of `n` random ids through `table`: puts of a new
/// state, or (one in five) deletes. Everything it acknowledges, and every
/// request it names as not done, goes into the ledger.
async fn write_round(table: &Table, ledger: &mut Ledger, stats: &mut LibStats, rng: &mut fastrand::Rng, round: u32, n: usize) {
    let mut ids: Vec<u32> = (0..ITEMS).collect();
    rng.shuffle(&mut ids);
    ids.truncate(n);
    let mut batch = table.batch_write();
    let mut planned: Vec<(u32, Option<Rec>)> = Vec::new();
    for &id in &ids {
        if rng.u32(..5) == 0 {
            batch = batch.delete::<Rec>(&(id,));
            planned.push((id, None));
        } else {
            let r = rec(id, round, rng);
            batch = batch.put(&r);
            planned.push((id, Some(r)));
        }
    }
    let t = Instant::now();
    let result = batch.send().await;
    stats.slowest = stats.slowest.max(t.elapsed());
    match result {
        Ok(summary) => {
            stats.writes_ok += 1;
            stats.calls += summary.calls;
            stats.resubmitted += summary.resubmitted;
            assert_eq!(summary.requests, planned.len());
            for (id, state) in planned {
                ledger.acked(id, state);
                stats.acked += 1;
            }
        }
        Err(e) => {
            let Error::BatchIncomplete { operation, total, failed, .. } = &e else { panic!("a batch write failed with an untyped error: {e}") };
            assert_eq!((*operation, *total), ("BatchWriteItem", planned.len()));
            assert!(!failed.is_empty() && failed.len() <= *total, "{e}");
            stats.writes_incomplete += 1;
            stats.error(&e);
            let not_done: BTreeSet<usize> = failed.iter().map(|f| f.index).collect();
            for f in failed {
                let (id, state) = &planned[f.index];
                assert_eq!(f.op, if state.is_some() { BatchOp::Put } else { BatchOp::Delete });
                assert_eq!(f.key.pk, format!("REC#{id:05}"), "the failure names the request's key");
            }
            for (i, (id, state)) in planned.into_iter().enumerate() {
                if not_done.contains(&i) {
                    ledger.unknown(id, state);
                    stats.unknown += 1;
                } else {
                    ledger.acked(id, state);
                    stats.acked += 1;
                }
            }
        }
    }
}

/// A consistent batch read of `n` random ids through `table`; what it
/// returns must be a possible state of each.
async fn read_round(table: &Table, ledger: &mut Ledger, stats: &mut LibStats, rng: &mut fastrand::Rng, n: usize) {
    let mut ids: Vec<u32> = (0..ITEMS).collect();
    rng.shuffle(&mut ids);
    ids.truncate(n);
    let keys: Vec<(u32,)> = ids.iter().map(|&id| (id,)).collect();
    let t = Instant::now();
    let result = table.batch_get::<Rec>(&keys).consistent(true).send_with_summary().await;
    stats.slowest = stats.slowest.max(t.elapsed());
    match result {
        Ok((items, summary)) => {
            stats.gets_ok += 1;
            stats.calls += summary.calls;
            stats.resubmitted += summary.resubmitted;
            assert_eq!(items.len(), ids.len());
            for (id, got) in ids.iter().zip(items) {
                if let Some(r) = &got {
                    assert_eq!(r.id, *id, "a read returned another item than asked for");
                }
                ledger.observed(*id, got).unwrap_or_else(|e| panic!("a batch get returned a state never written: {e}"));
            }
        }
        Err(e) => {
            let Error::BatchIncomplete { operation, failed, .. } = &e else { panic!("a batch get failed with an untyped error: {e}") };
            assert_eq!(*operation, "BatchGetItem");
            assert!(failed.iter().all(|f| f.op == BatchOp::Get));
            stats.gets_incomplete += 1;
            stats.error(&e);
        }
    }
}

fn print(name: &str, started: Instant, faults: &FaultCounts, stats: &LibStats, check: &Check) {
    eprintln!("==== faults: {name} ====");
    eprintln!("  proxy: {faults}");
    eprintln!("  by operation: {:?}", faults.by_op);
    eprintln!(
        "  library: batch writes ok {} / incomplete {}, batch gets ok {} / incomplete {}; requests acknowledged {}, unknown outcome {}; \
         calls {}, resubmitted unprocessed {}; slowest call {:.2} s",
        stats.writes_ok,
        stats.writes_incomplete,
        stats.gets_ok,
        stats.gets_incomplete,
        stats.acked,
        stats.unknown,
        stats.calls,
        stats.resubmitted,
        stats.slowest.as_secs_f64()
    );
    for e in &stats.errors {
        eprintln!("  e.g. error: {e}");
    }
    eprintln!(
        "  check: {} items exact, {} of unknown outcome; lost {}, resurrected {}, phantoms {}, wrong content {}",
        check.exact, check.unknown, check.lost, check.resurrected, check.phantoms, check.wrong
    );
    for e in &check.examples {
        eprintln!("    {e}");
    }
    eprintln!("  time {:.1} s", started.elapsed().as_secs_f64());
}

/// Seeds the table (directly), then runs write and read rounds through
/// the proxy while `faults` are on for `storm`, then one more round of
/// each with the faults off, then compares the table with the ledger.
async fn batch_run(name: &str, seed: u64, faults: Faults, storm: Duration) -> (FaultCounts, LibStats, Check) {
    let started = Instant::now();
    let proxy = FaultProxy::start(seed).await;
    let (direct, faulty) = tables(name, &proxy, vec![Rec::DESIGN.clone()]).await;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut ledger = Ledger::default();
    let seed_items: Vec<Rec> = (0..ITEMS).map(|id| rec(id, 0, &mut rng)).collect();
    direct.batch_write().put_all(&seed_items).send().await.expect("seeding");
    for r in seed_items {
        ledger.acked(r.id, Some(r));
    }

    let mut stats = LibStats::default();
    proxy.set_for(faults, storm);
    let mut round = 1;
    while proxy.active() {
        write_round(&faulty, &mut ledger, &mut stats, &mut rng, round, 300).await;
        read_round(&faulty, &mut ledger, &mut stats, &mut rng, 250).await;
        round += 1;
    }
    let during = proxy.counts();
    // Calm again: everything goes through.
    let before = stats.writes_incomplete + stats.gets_incomplete;
    write_round(&faulty, &mut ledger, &mut stats, &mut rng, round, 300).await;
    read_round(&faulty, &mut ledger, &mut stats, &mut rng, ITEMS as usize).await;
    assert_eq!(stats.writes_incomplete + stats.gets_incomplete, before, "without faults every call completes: {:?}", stats.errors);

    let check = check(&direct, &ledger).await;
    print(name, started, &proxy.counts(), &stats, &check);
    singletable_tests::delete_table(direct.client(), direct.name()).await;
    (during, stats, check)
}

/// What every batch test asserts: faults were injected, the calls were
/// made, the SDK's retries stayed within its bound (3 attempts, standard
/// mode), no call took long, and the table matches the ledger.
fn assert_survived(faults: &FaultCounts, stats: &LibStats, check: &Check) {
    assert!(faults.injected() > 0, "no fault was injected: {faults}");
    assert!(stats.writes_ok + stats.writes_incomplete >= 3, "too few rounds: {stats:?}");
    assert!(faults.max_attempt <= 3, "the SDK made {} attempts of one call", faults.max_attempt);
    assert!(stats.slowest < Duration::from_secs(45), "a batch call took {:?}", stats.slowest);
    assert!(check.clean(), "the table differs from the ledger: {check:?}");
    assert!(check.exact >= ITEMS as usize / 2, "too few items checked exactly: {check:?}");
}

// ---------------------------------------------------------------------------
// Tests: batches

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_ride_out_a_throttling_storm() {
    let _one = one_at_a_time().await;
    let faults = Faults::none().throttling(0.30, Throttle::Mixed);
    let (during, stats, check) = bounded(120, "the run", batch_run("faults_throttle", 0x7A11, faults, Duration::from_secs(10))).await;
    assert_survived(&during, &stats, &check);
    assert!(during.throttled >= 20, "a storm of 30% throttling: {during}");
    assert!(during.sdk_retries > 0, "the SDK retried throttled calls: {during}");
    // The share throttled is the one asked for, give or take (of the
    // requests sent while the storm lasted).
    let share = during.throttled as f64 / during.eligible as f64;
    assert!((0.15..0.45).contains(&share), "throttled {share:.2} of the requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_ride_out_server_errors_and_latency_spikes() {
    let _one = one_at_a_time().await;
    let faults = Faults::none().server_errors(0.15).latency(0, 4, 0.10, 100, 400);
    let (during, stats, check) = bounded(120, "the run", batch_run("faults_500", 0x5E4, faults, Duration::from_secs(8))).await;
    assert_survived(&during, &stats, &check);
    assert!(during.server_errors >= 8 && during.spikes >= 4, "{during}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_lose_no_acknowledged_write_when_connections_drop() {
    let _one = one_at_a_time().await;
    // Half the dropped requests were applied before the connection closed.
    let faults = Faults::none().drops(0.15, 0.5);
    let (during, stats, check) = bounded(120, "the run", batch_run("faults_drop", 0xD209, faults, Duration::from_secs(8))).await;
    assert_survived(&during, &stats, &check);
    assert!(during.dropped_applied >= 3 && during.dropped_unsent >= 3, "{during}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_complete_when_every_call_leaves_requests_unprocessed() {
    let _one = one_at_a_time().await;
    for (mode, seed) in [(Unprocessed::Partial, 0x9A27), (Unprocessed::FirstTry, 0xF125)] {
        let faults = Faults::none().unprocessed(mode).only_ops(&["BatchWriteItem", "BatchGetItem"]);
        let (during, stats, check) = bounded(120, "the run", batch_run(&format!("faults_unprocessed_{mode:?}"), seed, faults, Duration::from_secs(4))).await;
        assert_survived(&during, &stats, &check);
        // Nothing else goes wrong: every call completes, nothing unknown.
        assert_eq!((stats.writes_incomplete, stats.gets_incomplete, check.unknown), (0, 0, 0), "{mode:?}: {:?}", stats.errors);
        assert!(stats.resubmitted > 0 && during.unprocessed_requests > 0, "{mode:?}: {during}");
        let chunks = stats.writes_ok as usize * 300usize.div_ceil(MAX_BATCH_WRITE) + stats.gets_ok as usize * 250usize.div_ceil(MAX_BATCH_GET) + ITEMS as usize / MAX_BATCH_GET;
        match mode {
            // Every call processes at least half of what it is sent (and a
            // single request goes through on its second try): a chunk of
            // 25 takes at most 6 calls, one of 100 keys at most 8.
            Unprocessed::Partial => assert!(stats.calls <= chunks * 8, "{} calls for {chunks} chunks", stats.calls),
            // Exactly one resubmission of each chunk (while the faults were on).
            _ => assert!(stats.calls <= 2 * chunks, "{} calls for {chunks} chunks", stats.calls),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_never_processed_stop_at_the_retry_bound_naming_every_request() {
    let _one = one_at_a_time().await;
    let started = Instant::now();
    let proxy = FaultProxy::start(0xA1).await;
    let (direct, faulty) = tables("faults_always", &proxy, vec![Rec::DESIGN.clone()]).await;
    let mut rng = fastrand::Rng::with_seed(0xA1);
    let recs: Vec<Rec> = (0..100).map(|id| rec(id, 1, &mut rng)).collect();
    proxy.set(Faults::none().unprocessed(Unprocessed::Always));
    let policy = RetryPolicy { max_attempts: 4, base_delay: Duration::from_millis(1), max_delay: Duration::from_millis(20) };

    let t = Instant::now();
    let err = bounded(30, "batch write", faulty.batch_write().put_all(&recs).retry(policy).send()).await.expect_err("nothing can be written");
    let write_took = t.elapsed();
    let write_error: String = err.to_string().chars().take(160).collect();
    let Error::BatchIncomplete { operation, total, failed, reason, .. } = &err else { panic!("untyped error: {err}") };
    assert_eq!((*operation, *total, failed.len()), ("BatchWriteItem", 100, 100), "{err}");
    assert_eq!(failed.iter().map(|f| f.index).collect::<Vec<_>>(), (0..100).collect::<Vec<_>>(), "every request named, in order");
    assert!(reason.contains("without progress"), "{reason}");
    let writes = proxy.counts().by_op.get("BatchWriteItem").copied().unwrap_or(0);
    assert_eq!(writes, 4 * 4, "4 chunks of 25, each sent max_attempts = 4 times");

    let keys: Vec<(u32,)> = (0..100).map(|id| (id,)).collect();
    let err = bounded(30, "batch get", faulty.batch_get::<Rec>(&keys).retry(policy).send()).await.expect_err("nothing can be read");
    let Error::BatchIncomplete { operation, failed, .. } = &err else { panic!("untyped error: {err}") };
    assert_eq!((*operation, failed.len()), ("BatchGetItem", 100), "{err}");
    assert_eq!(proxy.counts().by_op.get("BatchGetItem").copied(), Some(4), "1 chunk of 100, sent 4 times");

    proxy.clear();
    assert!(scan(direct.client(), direct.name()).await.is_empty(), "nothing was written");
    // With the faults gone the same batch goes through.
    faulty.batch_write().put_all(&recs).send().await.expect("no faults");
    assert_eq!(scan(direct.client(), direct.name()).await.len(), 100);
    let counts = proxy.counts();
    eprintln!("==== faults: always unprocessed ====\n  proxy: {counts}\n  by operation: {:?}\n  write gave up after {:.2} s: {write_error}\n  time {:.1} s", counts.by_op, write_took.as_secs_f64(), started.elapsed().as_secs_f64());
    singletable_tests::delete_table(direct.client(), direct.name()).await;
}

// ---------------------------------------------------------------------------
// Tests: transactions

/// What became of each transfer.
#[derive(Debug, Default)]
struct TxLedger {
    acked: BTreeSet<u32>,
    /// Cancelled by DynamoDB: "nothing written".
    cancelled: BTreeMap<u32, String>,
    unknown: BTreeSet<u32>,
    errors: Vec<String>,
}

const ACCOUNTS: u32 = 12;
const OPENING: i64 = 1_000;

async fn transfers(table: Table, k: u32, until: Instant, ledger: Arc<Mutex<TxLedger>>) -> Duration {
    let mut rng = fastrand::Rng::with_seed(0x7A5 + u64::from(k));
    let a = Account::fields();
    let mut slowest = Duration::ZERO;
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let id = k * 1_000_000 + n;
        let from = rng.u32(..ACCOUNTS);
        let to = (from + rng.u32(1..ACCOUNTS)) % ACCOUNTS;
        let amount = rng.i64(1..=60);
        let t = Instant::now();
        let result = table
            .transaction()
            .update(table.update::<Account>(&(from,)).subtract(a.balance, amount).condition(a.balance.ge(amount)))
            .update(table.update::<Account>(&(to,)).add(a.balance, amount))
            .create(&Transfer { id, from, to, amount })
            .send()
            .await;
        slowest = slowest.max(t.elapsed());
        let mut l = ledger.lock().unwrap();
        match result {
            Ok(()) => {
                l.acked.insert(id);
            }
            Err(Error::TransactionCanceled { reasons, .. }) => {
                let why = reasons.iter().map(|r| format!("{:?}", r.kind)).collect::<Vec<_>>().join(", ");
                l.cancelled.insert(id, why);
            }
            Err(e @ Error::Dynamo { .. }) => {
                l.unknown.insert(id);
                if l.errors.len() < 3 {
                    l.errors.push(e.to_string().chars().take(300).collect());
                }
            }
            Err(e) => panic!("a transaction failed with an unexpected error: {e}"),
        }
    }
    slowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_stay_all_or_nothing_under_faults() {
    let _one = one_at_a_time().await;
    let started = Instant::now();
    let proxy = FaultProxy::start(0x7A).await;
    let (direct, faulty) = tables("faults_tx", &proxy, vec![Account::DESIGN.clone(), Transfer::DESIGN.clone()]).await;
    for id in 0..ACCOUNTS {
        direct.put(&Account { id, balance: OPENING }).await.unwrap();
    }
    let faults = Faults::none().throttling(0.10, Throttle::Mixed).server_errors(0.05).drops(0.06, 0.5).latency(0, 3, 0.03, 50, 250);
    proxy.set(faults);
    let ledger = Arc::new(Mutex::new(TxLedger::default()));
    let until = Instant::now() + Duration::from_secs(10);
    let tasks: Vec<_> = (0..4).map(|k| tokio::spawn(transfers(faulty.clone(), k, until, ledger.clone()))).collect();
    let mut slowest = Duration::ZERO;
    for t in tasks {
        slowest = slowest.max(bounded(90, "transfers", t).await.unwrap());
    }
    proxy.clear();
    let counts = proxy.counts();

    // What the table holds.
    let mut balances: BTreeMap<u32, i64> = BTreeMap::new();
    let mut present: BTreeMap<u32, Transfer> = BTreeMap::new();
    for item in scan(direct.client(), direct.name()).await {
        match item.get("_et").and_then(|v| v.as_s().ok()).map(String::as_str) {
            Some("Account") => {
                let a = Account::from_item(item).unwrap();
                balances.insert(a.id, a.balance);
            }
            Some("Transfer") => {
                let t = Transfer::from_item(item).unwrap();
                present.insert(t.id, t);
            }
            other => panic!("unexpected item of {other:?}"),
        }
    }
    let l = std::mem::take(&mut *ledger.lock().unwrap());
    // Every transfer stored moved its amount, and nothing else moved any:
    // the balances are the opening ones plus what the stored transfers say.
    let mut expected: BTreeMap<u32, i64> = (0..ACCOUNTS).map(|id| (id, OPENING)).collect();
    for t in present.values() {
        *expected.get_mut(&t.from).unwrap() -= t.amount;
        *expected.get_mut(&t.to).unwrap() += t.amount;
    }
    let lost: Vec<&u32> = l.acked.iter().filter(|id| !present.contains_key(id)).collect();
    let cancelled_but_written: Vec<(&u32, &String)> = l.cancelled.iter().filter(|(id, _)| present.contains_key(id)).collect();
    let phantoms: Vec<&u32> = present.keys().filter(|id| !l.acked.contains(id) && !l.unknown.contains(id) && !l.cancelled.contains_key(id)).collect();
    let unknown_written = l.unknown.iter().filter(|id| present.contains_key(id)).count();
    eprintln!("==== faults: transactions ====");
    eprintln!("  proxy: {counts}");
    eprintln!(
        "  library: transfers acknowledged {}, cancelled {} ({}), unknown outcome {} ({} of them written); slowest call {:.2} s",
        l.acked.len(),
        l.cancelled.len(),
        l.cancelled.values().take(3).cloned().collect::<Vec<_>>().join(" | "),
        l.unknown.len(),
        unknown_written,
        slowest.as_secs_f64()
    );
    for e in &l.errors {
        eprintln!("  e.g. error: {e}");
    }
    eprintln!(
        "  check: stored transfers {}, acknowledged but missing {}, cancelled but written {}, phantoms {}, balances off {}",
        present.len(),
        lost.len(),
        cancelled_but_written.len(),
        phantoms.len(),
        expected.iter().filter(|(id, b)| balances.get(id) != Some(b)).count()
    );
    eprintln!("  time {:.1} s", started.elapsed().as_secs_f64());

    assert!(counts.injected() > 20 && counts.dropped_applied > 0, "{counts}");
    assert!(l.acked.len() > 50, "too few transfers went through: {}", l.acked.len());
    assert!(counts.max_attempt <= 3, "the SDK made {} attempts of one call", counts.max_attempt);
    assert!(slowest < Duration::from_secs(30), "a transaction took {slowest:?}");
    assert_eq!(balances, expected, "balances differ from the stored transfers: a transaction was applied in part");
    assert_eq!(balances.values().sum::<i64>(), i64::from(ACCOUNTS) * OPENING);
    assert!(lost.is_empty(), "acknowledged transfers missing: {lost:?}");
    assert!(phantoms.is_empty(), "transfers never sent: {phantoms:?}");
    assert!(cancelled_but_written.is_empty(), "reported cancelled (nothing written), yet written: {cancelled_but_written:?}");
    singletable_tests::delete_table(direct.client(), direct.name()).await;
}

// ---------------------------------------------------------------------------
// Tests: one lost answer, deterministically

/// The PutItem of a `create` is applied, its answer lost (the connection
/// closes), and the SDK sends it again: the second attempt meets the item
/// the first one wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_was_lost_is_not_reported_as_already_exists() {
    let _one = one_at_a_time().await;
    let proxy = FaultProxy::start(1).await;
    let (direct, faulty) = tables("faults_create", &proxy, vec![Rec::DESIGN.clone()]).await;
    proxy.script("PutItem", 1, Fault::DropApplied, |_| true);
    let r = Rec { id: 7, round: 1, payload: "created once".into() };
    let result = bounded(30, "create", faulty.create(&r)).await;
    let counts = proxy.counts();
    let stored = direct.get::<Rec>(&(7,)).await.unwrap();
    eprintln!("create after a lost answer: {result:?}; stored {stored:?}; proxy: {counts}");
    assert_eq!(proxy.scripted_left(), 0);
    assert_eq!(stored.as_ref(), Some(&r), "the first attempt wrote it");
    assert_eq!(counts.sdk_retries, 1);
    singletable_tests::delete_table(direct.client(), direct.name()).await;
    result.expect("this call wrote the item: it must not report that someone else had");
}

/// The same for a transaction: applied, answer lost, sent again by the SDK
/// with the same ClientRequestToken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_whose_answer_was_lost_is_not_applied_twice() {
    let _one = one_at_a_time().await;
    let proxy = FaultProxy::start(2).await;
    let (direct, faulty) = tables("faults_tx_once", &proxy, vec![Account::DESIGN.clone(), Transfer::DESIGN.clone()]).await;
    direct.put(&Account { id: 1, balance: 100 }).await.unwrap();
    direct.put(&Account { id: 2, balance: 0 }).await.unwrap();
    proxy.script("TransactWriteItems", 1, Fault::DropApplied, |_| true);
    let a = Account::fields();
    let result = bounded(
        30,
        "transaction",
        faulty
            .transaction()
            .update(faulty.update::<Account>(&(1,)).subtract(a.balance, 10))
            .update(faulty.update::<Account>(&(2,)).add(a.balance, 10))
            .send(),
    )
    .await;
    let b1 = direct.get::<Account>(&(1,)).await.unwrap().unwrap().balance;
    let b2 = direct.get::<Account>(&(2,)).await.unwrap().unwrap().balance;
    let counts = proxy.counts();
    eprintln!("transaction after a lost answer: {result:?}; balances {b1} / {b2}; proxy: {counts}");
    assert_eq!(proxy.scripted_left(), 0);
    assert_eq!(counts.sdk_retries, 1, "the SDK sent it again");
    assert_eq!((b1, b2), (90, 10), "applied exactly once (the SDK's idempotency token)");
    result.expect("applied once and acknowledged");
    // A create in a transaction: the retry must not come back cancelled.
    proxy.script("TransactWriteItems", 1, Fault::DropApplied, |_| true);
    let t = Transfer { id: 1, from: 1, to: 2, amount: 0 };
    let result = bounded(30, "transaction", faulty.transaction().create(&t).check::<Account>(&(1,), a.balance.ge(0)).send()).await;
    assert!(!matches!(&result, Err(Error::TransactionCanceled { reasons, .. }) if reasons.iter().any(|r| r.kind == CancelKind::AlreadyExists)), "{result:?}");
    result.expect("applied once and acknowledged");
    assert_eq!(direct.get::<Transfer>(&(1,)).await.unwrap(), Some(t));
    singletable_tests::delete_table(direct.client(), direct.name()).await;
}
