//! Benchmark of `migrate apply` against DynamoDB Local: a rekey (partition
//! key template `ORG#{org}` -> `TENANT#{org}`) of N items by
//!
//! * **apply**: the library's `Migrator::apply` (parallel scan of C
//!   segments, checkpoints, lock, verification pass, design record), timed
//!   as a user runs it: from the call to its return;
//! * **(a) naive**: one sequential scan, PutItem then DeleteItem per item;
//! * **(b) hand-written**: a parallel scan of C segments, per page
//!   BatchWriteItem puts of the moved items, then deletes of the old ones.
//!
//! * **online**: the library's online apply of the same rekey
//!   (`Migrator::start_online`, `wait_caught_up`, `cutover`, `complete`)
//!   while a background application load (`--load-rate`, 200 writes/s by
//!   default, paced by a tokio interval) updates random existing orders:
//!   the old form (v1 keys) through expand and catch-up; at cut-over the
//!   load pauses (the write pause is timed from pausing the load to
//!   `cutover()` returning), then writes the new form (v2 keys) during
//!   `complete()`. A ledger keeps each order's last acknowledged write, and
//!   the table is checked against it afterwards. Every `--sample-every`-th
//!   old-form write is followed by consistent reads (BatchGetItem) of the item's new
//!   form until it shows the write: the replay lag end to end, as the
//!   application sees it (DynamoDB Local rounds the stream's
//!   ApproximateCreationDateTime to the minute, so the library's own lag
//!   figures mean nothing there).
//! * **online apply (migrate-on-read)**: the same, with the new version
//!   deployed before start_online through `singletable::MigratingTable`
//!   (the new design migrating from the old), as a rolling deploy: every
//!   other write of the load goes through it, the others through the old
//!   version as above, until the old version stops before `cutover()`;
//!   from then on every write goes through the migrating table, which
//!   never pauses. No write waits for the cut-over, so instead of a pause
//!   it reports the longest migrating-table write while `cutover()` ran
//!   and the writes acknowledged meanwhile. Both versions write the same
//!   orders, one write at a time per order, into the same ledger.
//!
//! Apply and (b) have the same concurrency: at most C requests in flight
//! (apply's lease heartbeat aside). (b) ties each request to its segment;
//! apply shares the C slots among all segments and reads a segment's next
//! page while writing the current one, which is what keeps it ahead when
//! the segments are uneven (`--orgs`: with the default 12 partition keys
//! one of 4 segments holds half the table).
//!
//! Every contender rekeys its own freshly seeded, identical table; each
//! table is checked afterwards (counts, old-form leftovers, every item's
//! content, spot checks by key) so the comparison is honest. A warm-up pass runs each
//! contender once before anything is timed (DynamoDB Local's JVM is 2-3x
//! slower cold), then rounds alternate the order of the contenders.
//!
//! `--memory N[,M...]` instead measures the apply's peak RSS on N items: a
//! child process loads the saved plan and runs only the apply, then reads
//! its own `VmHWM`.
//!
//! Run it with `scripts/bench-migrate.sh [args]`, which starts a DynamoDB
//! Local for the run, or against a running one:
//!
//! ```text
//! export AWS_ENDPOINT_URL_DYNAMODB=$(scripts/dynamodb-local.sh start)
//! AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1 \
//!     cargo run --release -p singletable-examples --bin bench-migrate -- --help
//! ```

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use futures::stream::{self, StreamExt, TryStreamExt};
use singletable::{Item as _, MigratingTable, Table, TableDesign};
use singletable_migrate::planner::{self, PlanRequest};
use singletable_migrate::reserved::record_design;
use singletable_migrate::{ApplyOptions, Event, Migrator, Observer, Plan};

type RawItem = HashMap<String, AttributeValue>;

mod v1 {
    /// An order, about 300 bytes stored.
    #[derive(singletable::Item, Debug, Clone, PartialEq)]
    #[item(entity = "Order", pk = "ORG#{org}", sk = "ORDER#{id}")]
    pub struct Order {
        pub org: String,
        pub id: String,
        pub customer: String,
        pub email: String,
        pub status: String,
        pub currency: String,
        pub total_cents: u64,
        pub lines: u32,
        pub created_at: String,
        pub shipping_address: String,
        pub note: String,
    }
}

mod v2 {
    /// The same order, partitioned by tenant.
    #[derive(singletable::Item, Debug, Clone, PartialEq)]
    #[item(entity = "Order", pk = "TENANT#{org}", sk = "ORDER#{id}")]
    pub struct Order {
        pub org: String,
        pub id: String,
        pub customer: String,
        pub email: String,
        pub status: String,
        pub currency: String,
        pub total_cents: u64,
        pub lines: u32,
        pub created_at: String,
        pub shipping_address: String,
        pub note: String,
    }
}

/// Partition keys of the seeded table (`--orgs`): DynamoDB splits scan
/// segments by partition key, so few partitions make segments uneven.
static ORGS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

fn orgs() -> usize {
    *ORGS.get().unwrap_or(&12)
}
const OLD_PREFIX: &str = "ORG#";
const NEW_PREFIX: &str = "TENANT#";

fn order(i: usize) -> v1::Order {
    const STATUS: [&str; 4] = ["pending", "paid", "shipped", "delivered"];
    const STREETS: [&str; 5] = ["Market Street", "Rue de Rivoli", "Hauptstrasse", "Via Roma", "Calle Mayor"];
    let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    v1::Order {
        org: format!("org-{:02}", i % orgs()),
        id: format!("{:08}", i),
        customer: format!("customer-{:06}", h % 100_000),
        email: format!("buyer{}@example-{}.test", h % 100_000, i % orgs()),
        status: STATUS[i % 4].to_string(),
        currency: "EUR".to_string(),
        total_cents: h % 1_000_000,
        lines: (h % 9 + 1) as u32,
        created_at: format!("2024-{:02}-{:02}T{:02}:{:02}:{:02}Z", i % 12 + 1, i % 28 + 1, i % 24, i % 60, (i / 60) % 60),
        shipping_address: format!("{} {}, {:05} City {}", h % 300 + 1, STREETS[i % 5], h % 100_000, i % 97),
        note: format!("please deliver between {} and {} o'clock; ring twice, {}", 8 + i % 4, 14 + i % 5, "x".repeat(20 + i % 40)),
    }
}

fn order_v2(i: usize) -> v2::Order {
    let o = order(i);
    v2::Order {
        org: o.org,
        id: o.id,
        customer: o.customer,
        email: o.email,
        status: o.status,
        currency: o.currency,
        total_cents: o.total_cents,
        lines: o.lines,
        created_at: o.created_at,
        shipping_address: o.shipping_address,
        note: o.note,
    }
}

fn old_design(table: &str) -> TableDesign {
    TableDesign::new(table).entity::<v1::Order>().build().expect("old design")
}

fn new_design(table: &str) -> TableDesign {
    TableDesign::new(table).entity::<v2::Order>().build().expect("new design")
}

// ---------------------------------------------------------------- options

#[derive(Debug, Clone)]
struct Opts {
    items: usize,
    concurrency: Vec<u32>,
    rounds: usize,
    warmup: usize,
    memory: Vec<usize>,
    segments_memory: u32,
    apply_page_size: Option<i32>,
    b_page_size: Option<i32>,
    skip_naive: bool,
    skip_online: bool,
    skip_mor: bool,
    load_rate: f64,
    sample_every: u64,
    apply_child: Option<String>,
}

const USAGE: &str = "usage: bench-migrate [--items N] [--concurrency C[,C...]] [--rounds R] [--warmup N]
                     [--orgs K] [--apply-page-size P] [--b-page-size P] [--skip-naive]
                     [--skip-online] [--skip-mor] [--load-rate W] [--sample-every K]
       bench-migrate --memory N[,N...] [--concurrency C]

Contenders, each on its own fresh table: migrate apply (quiet, Migrator::apply),
(b) hand-written parallel rekey, (a) naive rekey, and the online apply
(Migrator::start_online .. complete) under a background load of W writes/s:
old-form updates through expand and catch-up, paused at cut-over, new-form
updates during complete; and the same online apply with migrate-on-read:
the new version writes through singletable::MigratingTable from before
start_online to after complete, never paused, every other write until the
old version stops for cut-over (all of them after). It reports the online
apply's items/s (to cut-over and to complete) against the quiet apply's, the
write pause at cut-over (with migrate-on-read: 0, and the longest write
during cutover()) and the replay lag p50/p99 measured end to end by the
old version's writers.

  --items N            items per table (default 20000)
  --concurrency C,..   scan segments of apply and (b), one comparison each (default 4,8)
  --rounds R           timed rounds, the contenders' order alternating (default 2)
  --warmup N           items of the warm-up pass, every contender once (default: --items)
  --orgs K             partition keys the items spread over (default 12; scan
                       segments split by partition key, so few make them uneven)
  --apply-page-size P  ApplyOptions::page_size (default: the library's)
  --b-page-size P      scan Limit of (b) (default: none, DynamoDB's 1 MB pages)
  --skip-naive         leave out (a)
  --skip-online        leave out the online apply (both)
  --skip-mor           leave out the online apply with migrate-on-read
  --load-rate W        background writes/s during the online apply (default 200; at
                       most 16 in flight, a tick finding all busy is skipped; the
                       acknowledged rate is printed)
  --sample-every K     time the replay lag of every K-th old-form write (default 10)
  --memory N,..        only the apply, in a child process, on N items each; peak RSS

Needs AWS_ENDPOINT_URL_DYNAMODB (DynamoDB Local); scripts/bench-migrate.sh sets it up.
BENCH_TRACE=1 prints the online run's phases and the load's progress on stderr.";

fn parse_list<T: std::str::FromStr>(flag: &str, v: &str) -> Result<Vec<T>> {
    v.split(',')
        .map(|s| s.trim().replace('_', "").parse::<T>().map_err(|_| anyhow::anyhow!("{flag}: cannot parse `{s}`")))
        .collect()
}

fn parse_opts() -> Result<Opts> {
    let mut o = Opts {
        items: 20_000,
        concurrency: vec![4, 8],
        rounds: 2,
        warmup: 0,
        memory: vec![],
        segments_memory: 4,
        apply_page_size: None,
        b_page_size: None,
        skip_naive: false,
        skip_online: false,
        skip_mor: false,
        load_rate: 200.0,
        sample_every: 10,
        apply_child: None,
    };
    let mut warmup = None;
    let mut concurrency_given = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value\n{USAGE}"));
        match a.as_str() {
            "--items" => o.items = parse_list::<usize>(&a, &value()?)?[0],
            "--concurrency" => {
                o.concurrency = parse_list(&a, &value()?)?;
                concurrency_given = true;
            }
            "--rounds" => o.rounds = parse_list::<usize>(&a, &value()?)?[0],
            "--warmup" => warmup = Some(parse_list::<usize>(&a, &value()?)?[0]),
            "--memory" => o.memory = parse_list(&a, &value()?)?,
            "--apply-page-size" => o.apply_page_size = Some(parse_list::<i32>(&a, &value()?)?[0]),
            "--b-page-size" => o.b_page_size = Some(parse_list::<i32>(&a, &value()?)?[0]),
            "--skip-naive" => o.skip_naive = true,
            "--skip-online" => o.skip_online = true,
            "--skip-mor" => o.skip_mor = true,
            "--load-rate" => o.load_rate = parse_list::<f64>(&a, &value()?)?[0],
            "--sample-every" => o.sample_every = parse_list::<u64>(&a, &value()?)?[0],
            "--orgs" => {
                let k = parse_list::<usize>(&a, &value()?)?[0];
                ensure!(k > 0, "--orgs must be positive");
                ORGS.set(k).map_err(|_| anyhow::anyhow!("--orgs given twice"))?;
            }
            "--apply-child" => o.apply_child = Some(value()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    o.warmup = warmup.unwrap_or(o.items);
    ensure!(o.items > 0 && o.rounds > 0, "--items and --rounds must be positive");
    ensure!(o.concurrency.iter().all(|c| *c > 0), "--concurrency must be positive");
    ensure!(o.load_rate > 0.0 && o.load_rate <= 10_000.0, "--load-rate must be in (0, 10000]");
    ensure!(o.sample_every > 0, "--sample-every must be positive");
    if !o.memory.is_empty() || o.apply_child.is_some() {
        o.segments_memory = if concurrency_given { o.concurrency[0] } else { 4 };
    }
    Ok(o)
}

// ---------------------------------------------------------------- client

async fn client() -> Result<Client> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .ok()
        .filter(|e| !e.is_empty())
        .context("AWS_ENDPOINT_URL_DYNAMODB is not set: run scripts/bench-migrate.sh, or start DynamoDB Local with scripts/dynamodb-local.sh start and export its URL")?;
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).endpoint_url(endpoint);
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        // DynamoDB Local takes any keys made of letters and digits.
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new("local", "local", None, None, "bench"));
    }
    if std::env::var_os("AWS_REGION").is_none() {
        loader = loader.region(aws_config::Region::new("us-east-1"));
    }
    Ok(Client::new(&loader.load().await))
}

// ---------------------------------------------------------------- tables

fn table_name(what: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("bench-{what}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Sends `requests` (at most 25) until none is left unprocessed.
async fn batch_write(client: &Client, table: &str, mut requests: Vec<WriteRequest>) -> Result<()> {
    let mut attempt = 0u32;
    while !requests.is_empty() {
        let out = client.batch_write_item().request_items(table, requests).send().await.context("BatchWriteItem")?;
        requests = out.unprocessed_items.and_then(|mut m| m.remove(table)).unwrap_or_default();
        if !requests.is_empty() {
            attempt += 1;
            ensure!(attempt < 20, "BatchWriteItem: {} requests still unprocessed", requests.len());
            tokio::time::sleep(Duration::from_millis(10 << attempt.min(6))).await;
        }
    }
    Ok(())
}

fn put(item: RawItem) -> WriteRequest {
    WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build().expect("item")).build()
}

fn delete(key: RawItem) -> WriteRequest {
    WriteRequest::builder().delete_request(DeleteRequest::builder().set_key(Some(key)).build().expect("key")).build()
}

/// Creates a table in the old design holding orders `0..n`, with the old
/// design recorded (as a table managed by singletable would be).
async fn seed(client: &Client, what: &str, n: usize) -> Result<String> {
    let name = table_name(what);
    Table::new(client.clone(), old_design(&name)).create_table().await?;
    let chunks: Vec<Vec<usize>> = (0..n).collect::<Vec<_>>().chunks(25).map(<[usize]>::to_vec).collect();
    stream::iter(chunks)
        .map(|chunk| {
            let name = &name;
            async move {
                let requests = chunk.into_iter().map(|i| put(order(i).to_item().expect("order item"))).collect();
                batch_write(client, name, requests).await
            }
        })
        .buffer_unordered(16)
        .try_collect::<()>()
        .await?;
    record_design(client, &old_design(&name), &name).await?;
    Ok(name)
}

async fn drop_table(client: &Client, name: &str) {
    let _ = client.delete_table().table_name(name).send().await;
}

/// Scans all of `table` with `segments` parallel segments, calling `f` on
/// every item.
async fn scan_all(client: &Client, table: &str, segments: u32, f: impl Fn(RawItem) + Sync) -> Result<()> {
    let f = &f;
    futures::future::try_join_all((0..segments).map(|segment| async move {
        let mut start = None;
        loop {
            let out = client
                .scan()
                .table_name(table)
                .segment(segment as i32)
                .total_segments(segments as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .context("Scan")?;
            out.items.unwrap_or_default().into_iter().for_each(f);
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return Ok::<(), anyhow::Error>(());
            }
        }
    }))
    .await?;
    Ok(())
}

fn s_of<'a>(item: &'a RawItem, attr: &str) -> &'a str {
    match item.get(attr) {
        Some(AttributeValue::S(s)) => s,
        _ => "",
    }
}

/// The note the background load writes with its `seq`-th write.
fn load_note(seq: u64) -> String {
    format!("bench write #{seq:010}")
}

/// The `seq` of a note written by the load (0 for a seeded note).
fn note_seq(note: &str) -> u64 {
    note.strip_prefix("bench write #").and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Order `i` in its new form, with the last acknowledged write of the
/// background load (`ledger`: order -> seq) applied.
fn expected(i: usize, ledger: &HashMap<usize, u64>) -> v2::Order {
    let mut o = order_v2(i);
    if let Some(seq) = ledger.get(&i) {
        o.note = load_note(*seq);
    }
    o
}

/// Checks that `table` holds exactly orders `0..n`, each in its new form:
/// counts, no old-form leftovers, every item's content (the seeded order,
/// or the last acknowledged write of the background load per `ledger`),
/// and a spot check of payloads by key.
async fn verify(client: &Client, table: &str, n: usize, ledger: &HashMap<usize, u64>) -> Result<()> {
    let counts = Mutex::new((0usize, 0usize, 0usize, 0usize)); // new, old, other orders, reserved
    let ids = Mutex::new(vec![false; n]);
    let wrong = Mutex::new((0usize, Vec::<String>::new()));
    scan_all(client, table, 4, |item| {
        let pk = s_of(&item, "pk");
        let mut c = counts.lock().unwrap();
        if pk.starts_with(NEW_PREFIX) {
            c.0 += 1;
            if let Ok(i) = s_of(&item, "sk").trim_start_matches("ORDER#").parse::<usize>() {
                if let Some(seen) = ids.lock().unwrap().get_mut(i) {
                    *seen = true;
                    let want = expected(i, ledger);
                    let got = v2::Order::from_item(item.clone());
                    if got.as_ref().ok() != Some(&want) {
                        let mut w = wrong.lock().unwrap();
                        w.0 += 1;
                        if w.1.len() < 5 {
                            w.1.push(format!("order {i}: {got:?}, want note {:?}", want.note));
                        }
                    }
                }
            }
        } else if pk.starts_with(OLD_PREFIX) {
            c.1 += 1;
        } else if pk.starts_with('#') {
            c.3 += 1;
        } else {
            c.2 += 1;
        }
    })
    .await?;
    let (new, old, other, _reserved) = counts.into_inner().unwrap();
    ensure!(new == n && old == 0 && other == 0, "table {table}: {new} new-form items (want {n}), {old} old-form, {other} other");
    let missing = ids.into_inner().unwrap().iter().filter(|seen| !**seen).count();
    ensure!(missing == 0, "table {table}: {missing} ids missing");
    let (wrong, examples) = wrong.into_inner().unwrap();
    ensure!(wrong == 0, "table {table}: {wrong} items differ from the ledger, e.g. {}", examples.join("; "));
    let t = Table::new(client.clone(), new_design(table));
    let step = (n / 25).max(1);
    for i in (0..n).step_by(step).chain([n - 1]) {
        let want = expected(i, ledger);
        let got = t.get::<v2::Order>(&(want.org.clone(), want.id.clone())).await?;
        ensure!(got.as_ref() == Some(&want), "table {table}: order {i} is {got:?}, want {want:?}");
        let old = client
            .get_item()
            .table_name(table)
            .key("pk", AttributeValue::S(format!("{OLD_PREFIX}{}", want.org)))
            .key("sk", AttributeValue::S(format!("ORDER#{}", want.id)))
            .consistent_read(true)
            .send()
            .await?;
        ensure!(old.item.is_none(), "table {table}: order {i} still has its old form");
    }
    Ok(())
}

// ---------------------------------------------------------------- contenders

/// The rekey of one item as a hand-written script does it: `None` for
/// items already moved (the scan meets them again) and foreign items.
fn rekey(item: &RawItem) -> Option<(RawItem, RawItem)> {
    let pk = s_of(item, "pk");
    let org = pk.strip_prefix(OLD_PREFIX)?;
    let mut new = item.clone();
    new.insert("pk".into(), AttributeValue::S(format!("{NEW_PREFIX}{org}")));
    let old_key = [("pk", item.get("pk")?), ("sk", item.get("sk")?)].into_iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    Some((new, old_key))
}

/// (a) One sequential scan; PutItem then DeleteItem per item.
async fn naive(client: &Client, table: &str) -> Result<u64> {
    let mut moved = 0;
    let mut start = None;
    loop {
        let out = client.scan().table_name(table).set_exclusive_start_key(start).send().await.context("Scan")?;
        for item in out.items.unwrap_or_default() {
            let Some((new, old_key)) = rekey(&item) else { continue };
            client.put_item().table_name(table).set_item(Some(new)).send().await.context("PutItem")?;
            client.delete_item().table_name(table).set_key(Some(old_key)).send().await.context("DeleteItem")?;
            moved += 1;
        }
        start = out.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            return Ok(moved);
        }
    }
}

/// (b) A parallel scan of `segments`; per page, BatchWriteItem puts of the
/// moved items, then deletes of their old keys.
async fn hand_written(client: &Client, table: &str, segments: u32, page: Option<i32>) -> Result<u64> {
    let moved = futures::future::try_join_all((0..segments).map(|segment| async move {
        let mut moved = 0u64;
        let mut start = None;
        loop {
            let out = client
                .scan()
                .table_name(table)
                .segment(segment as i32)
                .total_segments(segments as i32)
                .set_limit(page)
                .set_exclusive_start_key(start)
                .send()
                .await
                .context("Scan")?;
            let (puts, deletes): (Vec<_>, Vec<_>) = out.items.unwrap_or_default().iter().filter_map(rekey).unzip();
            moved += puts.len() as u64;
            for chunk in puts.chunks(25) {
                batch_write(client, table, chunk.iter().cloned().map(put).collect()).await?;
            }
            for chunk in deletes.chunks(25) {
                batch_write(client, table, chunk.iter().cloned().map(delete).collect()).await?;
            }
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return Ok::<u64, anyhow::Error>(moved);
            }
        }
    }))
    .await?;
    Ok(moved.into_iter().sum())
}

// ---------------------------------------------------------------- online

/// What the background load does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoadMode {
    /// The old application version: updates old forms (v1 keys).
    Old,
    /// Cut-over: nothing is sent.
    Paused,
    /// The new application version: updates new forms (v2 keys).
    New,
    /// A rolling deploy with migrate-on-read: every other write from the
    /// old version, the others from the new one through its migrating table.
    Mixed,
    /// The old version has stopped: every write from the new one, so the
    /// load keeps its rate as a deploy's traffic moves to the new instances.
    Migrating,
    Stopped,
}

/// How one write of the load is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// UpdateItem of the old form, as the old version does.
    OldForm,
    /// UpdateItem of the new form, as the new version does after cut-over.
    NewForm,
    /// `MigratingTable::update`, as the new version with migrate-on-read does.
    Migrating,
}

impl LoadMode {
    fn sends(self, via: Via) -> bool {
        matches!(
            (self, via),
            (LoadMode::Old | LoadMode::Mixed, Via::OldForm) | (LoadMode::New, Via::NewForm) | (LoadMode::Mixed | LoadMode::Migrating, Via::Migrating)
        )
    }
}

/// Which writes are in flight, and what the load does: one lock, so no
/// write is sent in a mode the pauser has already left.
struct LoadState {
    mode: LoadMode,
    /// Orders with a write in flight, and how it was sent (never two at
    /// once to one order, so the ledger's last acknowledged write is well
    /// defined whichever version sent them).
    busy: HashMap<usize, Via>,
}

/// The application load of the online contender: `rate` updates/s of
/// random existing orders (their `note`), with a ledger of acknowledged
/// writes and end-to-end replay lag probes.
struct Load {
    client: Client,
    table: String,
    /// The new version's table in the migrate-on-read contender.
    mor: Option<MigratingTable>,
    n: usize,
    sample_every: u64,
    state: Mutex<LoadState>,
    /// order -> seq of its last acknowledged write.
    ledger: Mutex<HashMap<usize, u64>>,
    seq: AtomicU64,
    /// Acknowledged writes of the old form, of the new form and through
    /// the migrating table.
    acked_old: AtomicU64,
    acked_new: AtomicU64,
    acked_mor: AtomicU64,
    /// (sent, acknowledged) of every write through the migrating table.
    mor_spans: Mutex<Vec<(Instant, Instant)>>,
    errors: Mutex<Vec<String>>,
    /// Seconds from a sampled old-form write's acknowledgement until its
    /// new form showed it (a timed-out probe counts as `PROBE_CAP`).
    lags: Mutex<Vec<f64>>,
    timeouts: AtomicU64,
    /// Sampled writes whose new form has not shown them yet: (order, seq,
    /// acknowledged at, next read due).
    pending: Mutex<Vec<(usize, u64, Instant, Instant)>>,
}

const PROBE_CAP: Duration = Duration::from_secs(10);

/// Writes of the background load in flight at most (the application's
/// writers).
const LOAD_WRITERS: usize = 16;

impl Load {
    fn new(client: &Client, table: &str, n: usize, sample_every: u64, mor: Option<MigratingTable>) -> Arc<Self> {
        let mode = if mor.is_some() { LoadMode::Mixed } else { LoadMode::Old };
        Arc::new(Load {
            client: client.clone(),
            table: table.to_string(),
            mor,
            n,
            sample_every,
            state: Mutex::new(LoadState { mode, busy: HashMap::new() }),
            ledger: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
            acked_old: AtomicU64::new(0),
            acked_new: AtomicU64::new(0),
            acked_mor: AtomicU64::new(0),
            mor_spans: Mutex::new(Vec::new()),
            errors: Mutex::new(Vec::new()),
            lags: Mutex::new(Vec::new()),
            timeouts: AtomicU64::new(0),
            pending: Mutex::new(Vec::new()),
        })
    }

    /// Sends one write per tick of a `rate`/s interval until stopped; each
    /// write runs in its own task (at most `LOAD_WRITERS` at once), so slow
    /// responses do not lower the rate unless every writer waits.
    async fn drive(self: Arc<Self>, rate: f64) {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        let mut rng: u64 = 0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id()) ^ (self.n as u64);
        let mut next = move || {
            // xorshift64
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut old_turn = false;
        loop {
            tick.tick().await;
            let (id, via) = {
                let mut st = self.state.lock().unwrap();
                let via = match st.mode {
                    LoadMode::Stopped => return,
                    LoadMode::Paused => continue,
                    LoadMode::Old => Via::OldForm,
                    LoadMode::New => Via::NewForm,
                    LoadMode::Migrating => Via::Migrating,
                    LoadMode::Mixed => {
                        old_turn = !old_turn;
                        if old_turn { Via::OldForm } else { Via::Migrating }
                    }
                };
                // A tick finding every writer busy is skipped (the acked
                // rate shows it): an open loop would queue requests without
                // bound in a slow server.
                if st.busy.len() >= LOAD_WRITERS.min(self.n / 2).max(1) {
                    continue;
                }
                let id = loop {
                    let id = (next() % self.n as u64) as usize;
                    if let Entry::Vacant(e) = st.busy.entry(id) {
                        e.insert(via);
                        break id;
                    }
                };
                (id, via)
            };
            let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
            tokio::spawn(self.clone().write(id, seq, via));
        }
    }

    fn key(id: usize, new: bool) -> (AttributeValue, AttributeValue) {
        let o = order(id);
        let prefix = if new { NEW_PREFIX } else { OLD_PREFIX };
        (AttributeValue::S(format!("{prefix}{}", o.org)), AttributeValue::S(format!("ORDER#{}", o.id)))
    }

    /// Updates order `id`'s note: in its old (or new) form, on the
    /// condition that the form exists (it must, in the phase the load
    /// writes it), or through the migrating table, which finds the form
    /// that is the truth itself.
    async fn write(self: Arc<Self>, id: usize, seq: u64, via: Via) {
        let sent = Instant::now();
        let out = match via {
            Via::OldForm | Via::NewForm => self.write_form(id, seq, via == Via::NewForm).await,
            Via::Migrating => self.write_migrating(id, seq).await,
        };
        match out {
            Ok(()) => {
                let acked = Instant::now();
                self.ledger.lock().unwrap().insert(id, seq);
                match via {
                    Via::OldForm => {
                        let k = self.acked_old.fetch_add(1, Ordering::Relaxed) + 1;
                        if k.checked_rem(self.sample_every) == Some(0) {
                            self.pending.lock().unwrap().push((id, seq, acked, acked));
                        }
                    }
                    Via::NewForm => {
                        self.acked_new.fetch_add(1, Ordering::Relaxed);
                    }
                    Via::Migrating => {
                        self.acked_mor.fetch_add(1, Ordering::Relaxed);
                        self.mor_spans.lock().unwrap().push((sent, acked));
                    }
                }
            }
            Err(e) => self.errors.lock().unwrap().push(format!("write #{seq} ({via:?}) of order {id}: {e:#}")),
        }
        self.state.lock().unwrap().busy.remove(&id);
    }

    async fn write_form(&self, id: usize, seq: u64, new: bool) -> Result<()> {
        let (pk, sk) = Self::key(id, new);
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", pk)
            .key("sk", sk)
            .update_expression("SET #note = :note")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#note", "note")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_values(":note", AttributeValue::S(load_note(seq)))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    async fn write_migrating(&self, id: usize, seq: u64) -> Result<()> {
        let mor = self.mor.as_ref().context("no migrating table")?;
        let o = order(id);
        let note = load_note(seq);
        let stored = mor.update(mor.table().update::<v2::Order>(&(o.org, o.id)).set(v2::Order::fields().note, note.as_str())).await?;
        // The update answers with the truth as stored: a write that went
        // to the wrong form would show here first.
        ensure!(stored.note == note, "the migrating table's update stored note {:?}", stored.note);
        Ok(())
    }

    /// Reads the new forms of the sampled writes until each shows its
    /// write (or a later one), in consistent BatchGetItems of up to 100
    /// keys every 20 ms, one probe read again after 20 ms, then backing off
    /// by 1.25x up to 500 ms (so the figure is within 25% or 0.5 s, and a
    /// large lag does not flood the server with reads). Returns once the
    /// load has stopped and nothing is pending.
    async fn probe(self: Arc<Self>) {
        let mut backoff: HashMap<(usize, u64), Duration> = HashMap::new();
        loop {
            let now = Instant::now();
            let due: Vec<(usize, u64, Instant, Instant)> = {
                let mut pending = self.pending.lock().unwrap();
                let (due, later): (Vec<_>, Vec<_>) = pending.drain(..).partition(|p| p.3 <= now);
                *pending = later;
                due
            };
            if due.is_empty() {
                if self.state.lock().unwrap().mode == LoadMode::Stopped && self.pending.lock().unwrap().is_empty() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            // Several probes of one order at once: one key, the newest seq
            // seen decides for each.
            let mut by_order: HashMap<usize, Vec<(u64, Instant)>> = HashMap::new();
            for (id, seq, acked, _) in due {
                by_order.entry(id).or_default().push((seq, acked));
            }
            let ids: Vec<usize> = by_order.keys().copied().collect();
            let reads = futures::future::join_all(ids.chunks(100).map(|chunk| {
                let keys: Vec<RawItem> = chunk
                    .iter()
                    .map(|id| {
                        let (pk, sk) = Self::key(*id, true);
                        HashMap::from([("pk".to_string(), pk), ("sk".to_string(), sk)])
                    })
                    .collect();
                let request = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .projection_expression("#sk, #note")
                    .expression_attribute_names("#sk", "sk")
                    .expression_attribute_names("#note", "note")
                    .build()
                    .expect("keys");
                self.client.batch_get_item().request_items(&self.table, request).send()
            }))
            .await;
            let seen_at = Instant::now();
            let mut seen: HashMap<usize, u64> = HashMap::new();
            for out in reads.into_iter().flatten() {
                for item in out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default() {
                    if let Ok(id) = s_of(&item, "sk").trim_start_matches("ORDER#").parse::<usize>() {
                        seen.insert(id, note_seq(s_of(&item, "note")));
                    }
                }
            }
            let mut again = Vec::new();
            for (id, probes) in by_order {
                let newest = seen.get(&id).copied().unwrap_or(0);
                for (seq, acked) in probes {
                    let lag = seen_at - acked;
                    if newest >= seq {
                        self.lags.lock().unwrap().push(lag.as_secs_f64());
                        backoff.remove(&(id, seq));
                    } else if lag >= PROBE_CAP {
                        self.timeouts.fetch_add(1, Ordering::Relaxed);
                        self.lags.lock().unwrap().push(PROBE_CAP.as_secs_f64());
                        backoff.remove(&(id, seq));
                    } else {
                        let wait = backoff.entry((id, seq)).or_insert(Duration::from_millis(16));
                        *wait = (*wait * 5 / 4).min(Duration::from_millis(500));
                        again.push((id, seq, acked, seen_at + *wait));
                    }
                }
            }
            self.pending.lock().unwrap().extend(again);
        }
    }

    /// Sets the mode; returns once every write in flight that the mode no
    /// longer sends has been answered (the old version's, when it stops).
    async fn set_mode(&self, mode: LoadMode) {
        self.state.lock().unwrap().mode = mode;
        while !self.state.lock().unwrap().busy.values().all(|via| mode.sends(*via)) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Stops the load and waits for its writes and probes.
    async fn finish(&self, driver: tokio::task::JoinHandle<()>, prober: tokio::task::JoinHandle<()>) {
        self.set_mode(LoadMode::Stopped).await;
        let _ = driver.await;
        let _ = prober.await;
    }
}

/// One online apply under load.
#[derive(Debug, Clone, Default)]
struct OnlineRun {
    /// From start_online until cutover() returned.
    to_cutover: f64,
    /// From start_online until wait_caught_up() returned.
    caught_up: f64,
    /// From pausing the load until cutover() returned (0 with
    /// migrate-on-read: no write waits).
    pause: f64,
    /// cutover()'s own figure, and the stream records it drained.
    cutover_took: f64,
    drained: u64,
    /// complete(): contract and the final verification.
    complete: f64,
    /// Stream records replayed by the time the replay caught up.
    replayed: u64,
    /// End-to-end replay lags of the sampled writes, seconds.
    lags: Vec<f64>,
    timeouts: u64,
    acked_old: u64,
    acked_new: u64,
    /// Acknowledged writes per second of the load while it ran.
    load_rate: f64,
    /// migrate-on-read only.
    mor: Option<MorRun>,
}

/// The new version's writes through its migrating table, in the
/// migrate-on-read contender.
#[derive(Debug, Clone)]
struct MorRun {
    acked: u64,
    /// The longest write in flight at some time while cutover() ran
    /// (`None`: none was), seconds.
    longest_during_cutover: Option<f64>,
    /// Writes acknowledged while cutover() ran.
    acked_during_cutover: u64,
    /// Median latency of all its writes, seconds.
    p50: f64,
}

impl MorRun {
    /// From the writes' (sent, acknowledged) times and cutover()'s.
    fn new(spans: &[(Instant, Instant)], (cut_start, cut_end): (Instant, Instant)) -> Self {
        let during: Vec<f64> = spans.iter().filter(|(sent, acked)| *sent < cut_end && *acked > cut_start).map(|(s, a)| (*a - *s).as_secs_f64()).collect();
        let all: Vec<f64> = spans.iter().map(|(s, a)| (*a - *s).as_secs_f64()).collect();
        MorRun {
            acked: spans.len() as u64,
            longest_during_cutover: during.iter().copied().reduce(f64::max),
            acked_during_cutover: spans.iter().filter(|(_, acked)| (cut_start..=cut_end).contains(acked)).count() as u64,
            p50: lag_percentiles(&all).0,
        }
    }
}

/// The online contender: plan, start the load, then start_online ..
/// complete, timed from the call to start_online. With `mor` (migrate-on-read)
/// the new version writes through its migrating table from before
/// start_online to after complete, alongside the old version until the
/// old one stops for cut-over. Returns the run and the load's ledger for
/// the verification.
async fn online(client: &Client, migrator: &Migrator, table: &str, n: usize, segments: u32, opts: &Opts, mor: bool) -> Result<(Run, HashMap<usize, u64>)> {
    let plan = make_plan(client, table, segments).await?;
    let migrating = if mor { Some(Table::new(client.clone(), new_design(table)).migrating_from(old_design(table))?) } else { None };
    let load = Load::new(client, table, n, opts.sample_every, migrating);
    let load_started = Instant::now();
    let driver = tokio::spawn(load.clone().drive(opts.load_rate));
    let prober = tokio::spawn(load.clone().probe());
    if std::env::var_os("BENCH_TRACE").is_some() {
        let load = load.clone();
        tokio::spawn(async move {
            while load.state.lock().unwrap().mode != LoadMode::Stopped {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let acked = [&load.acked_old, &load.acked_new, &load.acked_mor].iter().map(|a| a.load(Ordering::Relaxed)).sum::<u64>();
                let busy = load.state.lock().unwrap().busy.len();
                trace(&format!("load: {acked} writes acked, {busy} in flight, {} lag probes pending ({})", load.pending.lock().unwrap().len(), loadavg()));
            }
        });
    }
    let cpu0 = cpu_now();
    let t = Instant::now();
    let result: Result<(OnlineRun, (Instant, Instant))> = async {
        let mut online = migrator.start_online(&plan, &apply_options(segments, opts.apply_page_size), Arc::new(singletable_migrate::Quiet)).await?;
        trace(&format!("online: started, {} writes acked", load.acked_old.load(Ordering::Relaxed)));
        let caught = online.wait_caught_up().await?;
        trace(&format!("online: caught up, {} writes acked", load.acked_old.load(Ordering::Relaxed)));
        let caught_up = t.elapsed().as_secs_f64();
        // Cut-over: the old version stops writing (its writes in flight
        // are answered), the tool drains and verifies. With migrate-on-read
        // the new version, already deployed, goes on writing.
        let paused = Instant::now();
        load.set_mode(if mor { LoadMode::Migrating } else { LoadMode::Paused }).await;
        let cut_start = Instant::now();
        let cut = online.cutover().await?;
        let cut_end = Instant::now();
        let pause = if mor { 0.0 } else { paused.elapsed().as_secs_f64() };
        let to_cutover = t.elapsed().as_secs_f64();
        trace(&format!("online: cut over, pause {pause:.2} s, cutover() {:.2} s", (cut_end - cut_start).as_secs_f64()));
        if !mor {
            // The new version writes during contract.
            load.set_mode(LoadMode::New).await;
        }
        let c0 = Instant::now();
        online.complete().await?;
        let run = OnlineRun {
            to_cutover,
            caught_up,
            pause,
            cutover_took: cut.took.as_secs_f64(),
            drained: cut.drained,
            complete: c0.elapsed().as_secs_f64(),
            replayed: caught.records,
            ..OnlineRun::default()
        };
        Ok((run, (cut_start, cut_end)))
    }
    .await;
    let secs = t.elapsed().as_secs_f64();
    let cpu1 = cpu_now();
    load.finish(driver, prober).await;
    let load_secs = load_started.elapsed().as_secs_f64();
    let (mut run, cut_window) = result?;
    let errors = load.errors.lock().unwrap().clone();
    ensure!(errors.is_empty(), "{} background writes failed, e.g. {}", errors.len(), errors[..errors.len().min(3)].join("; "));
    run.lags = load.lags.lock().unwrap().clone();
    run.timeouts = load.timeouts.load(Ordering::Relaxed);
    run.acked_old = load.acked_old.load(Ordering::Relaxed);
    run.acked_new = load.acked_new.load(Ordering::Relaxed);
    if mor {
        run.mor = Some(MorRun::new(&load.mor_spans.lock().unwrap(), cut_window));
    }
    run.load_rate = (run.acked_old + run.acked_new + run.mor.as_ref().map_or(0, |m| m.acked)) as f64 / load_secs;
    let ledger = load.ledger.lock().unwrap().clone();
    let cpu = (cpu1.0 - cpu0.0, cpu1.1.zip(cpu0.1).map(|(b, a)| b - a));
    Ok((Run { secs, cpu, apply: None, online: Some(run) }, ledger))
}

/// With BENCH_TRACE set, a line on stderr (phases of the online run).
fn trace(what: &str) {
    static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    if std::env::var_os("BENCH_TRACE").is_some() {
        eprintln!("[{:8.2} s] {what}", T0.get_or_init(Instant::now).elapsed().as_secs_f64());
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// (p50, p99) of `lags`.
fn lag_percentiles(lags: &[f64]) -> (f64, f64) {
    let mut sorted = lags.to_vec();
    sorted.sort_by(f64::total_cmp);
    (percentile(&sorted, 0.5), percentile(&sorted, 0.99))
}

/// Records when the backfill started and when its last page was written.
#[derive(Default)]
struct Timeline {
    backfill: Mutex<Option<Instant>>,
    last_progress: Mutex<Option<(Instant, Cpu)>>,
}

impl Observer for Timeline {
    fn event(&self, event: Event) {
        match event {
            Event::Step { text, .. } if text.starts_with("rewrite items") => *self.backfill.lock().unwrap() = Some(Instant::now()),
            Event::Progress { .. } => *self.last_progress.lock().unwrap() = Some((Instant::now(), cpu_now())),
            _ => {}
        }
    }
}

/// Plans the move to [`new_design`] with the library's planner, as
/// `singletable migrate plan` does.
async fn make_plan(client: &Client, table: &str, segments: u32) -> Result<Plan> {
    let request = PlanRequest::new(new_design(table)).table(table).segments(segments);
    let plan = planner::make_plan(client, &request).await?.plan;
    ensure!(plan.blocking_errors().is_empty(), "plan blocked: {:?}", plan.blocking_errors());
    Ok(plan)
}

fn apply_options(segments: u32, page_size: Option<i32>) -> ApplyOptions {
    let mut opts = ApplyOptions { segments, max_wcu: None, ..ApplyOptions::default() };
    if page_size.is_some() {
        opts.page_size = page_size;
    }
    opts
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Apply,
    Naive,
    Hand,
    Online,
    OnlineMor,
}

impl Who {
    fn label(self) -> &'static str {
        match self {
            Who::Apply => "migrate apply",
            Who::Naive => "(a) naive",
            Who::Hand => "(b) hand-written",
            Who::Online => "online apply",
            Who::OnlineMor => "online apply (migrate-on-read)",
        }
    }

    fn online(self) -> bool {
        matches!(self, Who::Online | Who::OnlineMor)
    }
}

/// CPU seconds (user + system) used so far by a process, from
/// `/proc/<pid>/stat`.
fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// CPU seconds of the client and, when known, of the server.
type Cpu = (f64, Option<f64>);

/// CPU seconds of this process and of the DynamoDB Local server (when
/// `DYNAMODB_LOCAL_PID` names it, as scripts/bench-migrate.sh does).
fn cpu_now() -> Cpu {
    let server = std::env::var("DYNAMODB_LOCAL_PID").ok().and_then(|pid| cpu_secs(&pid));
    (cpu_secs("self").unwrap_or(0.0), server)
}

/// One timed run.
struct Run {
    secs: f64,
    /// CPU seconds spent during the run by the client and the server.
    cpu: Cpu,
    /// apply only: (plan secs, backfill secs, after-backfill secs).
    apply: Option<(f64, f64, f64, Cpu)>,
    /// online only.
    online: Option<OnlineRun>,
}

async fn run_one(client: &Client, migrator: &Migrator, who: Who, n: usize, segments: u32, opts: &Opts) -> Result<Run> {
    let table = seed(client, "t", n).await?;
    let result: Result<Run> = async {
        let mut cpu0 = cpu_now();
        // The background load's acknowledged writes (online only).
        let mut ledger = HashMap::new();
        let mut run = match who {
            Who::Apply => {
                let t = Instant::now();
                let plan = make_plan(client, &table, segments).await?;
                let plan_secs = t.elapsed().as_secs_f64();
                cpu0 = cpu_now();
                let timeline = Arc::new(Timeline::default());
                let t = Instant::now();
                let report = migrator.apply(&plan, &apply_options(segments, opts.apply_page_size), timeline.clone()).await?;
                let secs = t.elapsed().as_secs_f64();
                ensure!(report.moved == n as u64, "apply moved {} of {n}", report.moved);
                let end = t + Duration::from_secs_f64(secs);
                let b0 = timeline.backfill.lock().unwrap().unwrap_or(t);
                let (b1, cpu_b1) = timeline.last_progress.lock().unwrap().unwrap_or((end, cpu_now()));
                let cpu_end = cpu_now();
                let cpu_after = (cpu_end.0 - cpu_b1.0, cpu_end.1.zip(cpu_b1.1).map(|(b, a)| b - a));
                Run { secs, cpu: (0.0, None), apply: Some((plan_secs, (b1 - b0).as_secs_f64(), (end - b1).as_secs_f64(), cpu_after)), online: None }
            }
            Who::Naive => {
                let t = Instant::now();
                let moved = naive(client, &table).await?;
                ensure!(moved == n as u64, "naive moved {moved} of {n}");
                Run { secs: t.elapsed().as_secs_f64(), cpu: (0.0, None), apply: None, online: None }
            }
            Who::Hand => {
                let t = Instant::now();
                let moved = hand_written(client, &table, segments, opts.b_page_size).await?;
                ensure!(moved == n as u64, "hand-written moved {moved} of {n}");
                Run { secs: t.elapsed().as_secs_f64(), cpu: (0.0, None), apply: None, online: None }
            }
            Who::Online | Who::OnlineMor => {
                let (run, acked) = online(client, migrator, &table, n, segments, opts, who == Who::OnlineMor).await?;
                ledger = acked;
                run
            }
        };
        // The online run takes its CPU itself, from start_online to complete.
        if run.online.is_none() {
            let cpu1 = cpu_now();
            run.cpu = (cpu1.0 - cpu0.0, cpu1.1.zip(cpu0.1).map(|(b, a)| b - a));
        }
        verify(client, &table, n, &ledger).await.with_context(|| format!("verifying {}", who.label()))?;
        Ok(run)
    }
    .await;
    drop_table(client, &table).await;
    result
}

async fn compare(client: &Client, opts: &Opts) -> Result<()> {
    let mut who = vec![Who::Apply];
    if !opts.skip_online {
        who.push(Who::Online);
        if !opts.skip_mor {
            who.push(Who::OnlineMor);
        }
    }
    who.push(Who::Hand);
    if !opts.skip_naive {
        who.push(Who::Naive);
    }
    // The online apply reads the table's stream (DynamoDB Local serves it
    // on the same endpoint); the quiet apply does not use it.
    let migrator = Migrator::new(client.clone()).with_streams(singletable_migrate::cli::streams_client().await);
    let sample = order(1).to_item()?;
    println!(
        "bench-migrate: rekey pk ORG#{{org}} -> TENANT#{{org}} of {} items ({} orgs, ~{} bytes each), {} round(s) after a warm-up pass of {} items",
        opts.items,
        orgs(),
        singletable::item_size(&sample),
        opts.rounds,
        opts.warmup
    );
    println!(
        "apply: Migrator::apply, segments = C = requests in flight, page = {}, no rate limit (timed from call to return: lock, backfill, verification scan, design record); (b): C segments, one request in flight each, page = {}",
        opts.apply_page_size.or(ApplyOptions::default().page_size).map_or("DynamoDB's 1 MB".to_string(), |p| format!("{p} items")),
        opts.b_page_size.map_or("DynamoDB's 1 MB".to_string(), |p| format!("{p} items"))
    );
    if !opts.skip_online {
        println!(
            "online apply: Migrator::start_online .. wait_caught_up .. cutover .. complete, same options, timed from start_online; background load {} writes/s \
             (UpdateItem of a random order's note: old form until cut-over, paused for it, new form during complete); \
             replay lag timed end to end on every {}th old-form write: ack -> a consistent read of the new form shows it (BatchGetItem polls, 20 ms backing off to 500 ms, cap {} s)",
            opts.load_rate,
            opts.sample_every,
            PROBE_CAP.as_secs()
        );
        if !opts.skip_mor {
            println!(
                "online apply (migrate-on-read): the same, the new version writing through MigratingTable (new design migrating from the old, phase read from the table) \
                 from before start_online to after complete, never paused: every other write until the old version stops before cutover(), all of them after"
            );
        }
        println!(
            "  (DynamoDB Local rounds the stream's ApproximateCreationDateTime to the minute, so the library's own lag figures (OnlineMigration::status) are useless here and not shown)"
        );
    }
    for &c in &opts.concurrency {
        println!("\n== concurrency C = {c} ==  ({})", loadavg());
        if opts.warmup > 0 {
            let t = Instant::now();
            for &w in &who {
                run_one(client, &migrator, w, opts.warmup, c, opts).await.with_context(|| format!("warm-up of {}", w.label()))?;
            }
            println!("warm-up: every contender once on {} items ({:.1} s)", opts.warmup, t.elapsed().as_secs_f64());
        }
        let mut rates: HashMap<&str, Vec<f64>> = HashMap::new();
        // CPU seconds (client, server) per item, by contender.
        let mut cpus: HashMap<&str, Vec<(f64, Option<f64>)>> = HashMap::new();
        // Per round: quiet apply items/s; (secs, run) of each online contender.
        let mut quiet_by_round: Vec<f64> = Vec::new();
        let mut online_by_round: Vec<(f64, OnlineRun)> = Vec::new();
        let mut mor_by_round: Vec<(f64, OnlineRun)> = Vec::new();
        for round in 0..opts.rounds {
            let mut order = who.clone();
            if round % 2 == 1 {
                order.reverse();
            }
            for &w in &order {
                let run =
                    run_one(client, &migrator, w, opts.items, c, opts).await.with_context(|| format!("round {} of {}", round + 1, w.label()))?;
                let rate = opts.items as f64 / run.secs;
                rates.entry(w.label()).or_default().push(rate);
                let per_item = |secs: f64| secs / opts.items as f64;
                cpus.entry(w.label()).or_default().push((per_item(run.cpu.0), run.cpu.1.map(per_item)));
                let mut extra = match run.apply {
                    Some((plan, backfill, after, (after_client, after_server))) => format!(
                        "  [plan {plan:.2} s; backfill {backfill:.2} s = {:.0} items/s; verify+record+unlock {after:.2} s, cpu client {after_client:.1} s{}]",
                        opts.items as f64 / backfill,
                        after_server.map_or(String::new(), |s| format!(" + server {s:.1} s"))
                    ),
                    None => String::new(),
                };
                if w == Who::Apply {
                    quiet_by_round.push(rate);
                }
                if let Some(o) = &run.online {
                    let (p50, p99) = lag_percentiles(&o.lags);
                    let (pause, acked) = match &o.mor {
                        None => (format!("write pause {:.2} s (cutover() {:.2} s", o.pause, o.cutover_took), format!("{} old form, {} new form", o.acked_old, o.acked_new)),
                        Some(m) => (
                            format!(
                                "write pause 0 s (no write waited; longest write during cut-over {}, {} writes acked during it; cutover() {:.2} s",
                                longest_write(m),
                                m.acked_during_cutover,
                                o.cutover_took
                            ),
                            format!("{} old version, {} migrating table, its write p50 {:.0} ms", o.acked_old, m.acked, m.p50 * 1e3),
                        ),
                    };
                    extra = format!(
                        "  [caught up {:.2} s ({} records replayed); cut-over at {:.2} s = {:.0} items/s, {pause}, drained {}); \
                         complete {:.2} s; load {:.0} writes/s acked ({acked}); lag p50 {:.2} s p99 {:.2} s over {} samples, {} timed out]",
                        o.caught_up,
                        o.replayed,
                        o.to_cutover,
                        opts.items as f64 / o.to_cutover,
                        o.drained,
                        o.complete,
                        o.load_rate,
                        p50,
                        p99,
                        o.lags.len(),
                        o.timeouts
                    );
                    let by_round = if o.mor.is_some() { &mut mor_by_round } else { &mut online_by_round };
                    by_round.push((run.secs, o.clone()));
                }
                let cpu = match run.cpu {
                    (client, Some(server)) => format!("cpu client {client:.1} s + server {server:.1} s"),
                    (client, None) => format!("cpu client {client:.1} s"),
                };
                let verified = if w.online() { "verified against the ledger" } else { "verified" };
                println!("round {}  {:<30} {:>7.2} s  {:>7.0} items/s  {cpu}  {verified}{extra}", round + 1, w.label(), run.secs, rate);
            }
        }
        let mean = |w: Who| rates.get(w.label()).map(|r| r.iter().sum::<f64>() / r.len() as f64);
        // CPU per item is what a loaded machine cannot skew: the parallel
        // contenders are CPU-bound, the naive one waits on round trips.
        let cpu = |w: Who| -> (f64, Option<f64>) {
            let runs = &cpus[w.label()];
            let n = runs.len() as f64;
            let client = runs.iter().map(|r| r.0).sum::<f64>() / n;
            let server = runs.iter().map(|r| r.1).sum::<Option<f64>>().map(|s| s / n);
            (client, server)
        };
        println!("mean over {} round(s), C = {c}:", opts.rounds);
        for &w in &who {
            let (client, server) = cpu(w);
            let server = server.map_or(String::new(), |s| format!(" + server {:.0} us = {:.0} us", s * 1e6, (client + s) * 1e6));
            let note = if w.online() { "  (includes the background load and its lag probes)" } else { "" };
            println!("  {:<30} {:>7.0} items/s   cpu per item: client {:.0} us{server}{note}", w.label(), mean(w).unwrap(), client * 1e6);
        }
        let apply = mean(Who::Apply).unwrap();
        let b = mean(Who::Hand).unwrap();
        println!("  apply/(b) = {:.2}x (target >= 0.9x)", apply / b);
        if let Some(a) = mean(Who::Naive) {
            println!("  apply/(a) = {:.2}x (target >= 5x)", apply / a);
        }
        let total = |w: Who| cpu(w).1.map(|s| s + cpu(w).0);
        if let (Some(apply), Some(b)) = (total(Who::Apply), total(Who::Hand)) {
            let naive = mean(Who::Naive).and_then(|_| total(Who::Naive)).map_or(String::new(), |a| format!(", (a) {:.2}x", a / apply));
            println!("  cpu per item (client + server) relative to apply: (b) {:.2}x{naive}", b / apply);
        }
        if !online_by_round.is_empty() {
            print_online_table(c, opts, &quiet_by_round, &online_by_round, &mor_by_round);
        }
        println!("  ({})", loadavg());
    }
    Ok(())
}

/// The label of a metric's migrate-on-read row in the online table.
const MOR_ROW: &str = "  with migrate-on-read";

/// The longest write through the migrating table while cutover() ran.
fn longest_write(m: &MorRun) -> String {
    m.longest_during_cutover.map_or("none in flight".to_string(), |s| format!("{:.0} ms", s * 1e3))
}

/// The online apply, and with migrate-on-read (`mor`, empty if skipped),
/// against the quiet one, round by round: one metric a row (the
/// migrate-on-read row under the plain one), one round a column, then all
/// rounds and the target.
fn print_online_table(c: u32, opts: &Opts, quiet: &[f64], online: &[(f64, OnlineRun)], mor: &[(f64, OnlineRun)]) {
    let n = opts.items as f64;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let contenders: Vec<(bool, &[(f64, OnlineRun)])> = [(false, online), (true, mor)].into_iter().filter(|(_, runs)| !runs.is_empty()).collect();
    // A metric's migrate-on-read row goes under the plain one's.
    let name = |is_mor: bool, plain: &str| if is_mor { MOR_ROW.to_string() } else { plain.to_string() };

    let with_mor = if mor.is_empty() { "" } else { " (and with migrate-on-read)" };
    println!("\nonline apply{with_mor} vs quiet apply, C = {c}, {} items, background load {} writes/s:", opts.items, opts.load_rate);
    let mut header = format!("  {:<44}", "");
    for r in 1..=quiet.len() {
        header += &format!(" {:>10}", format!("round {r}"));
    }
    header += &format!(" {:>12}  {:<10} {}", "all rounds", "target", "");
    println!("{header}");
    let row = |name: &str, cells: Vec<String>, all: String, target: &str, verdict: &str| {
        let mut line = format!("  {name:<44}");
        for cell in cells {
            line += &format!(" {cell:>10}");
        }
        line += &format!(" {all:>12}  {target:<10} {verdict}");
        println!("{}", line.trim_end());
    };
    let f0 = |v: &[f64]| v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>();
    row("quiet apply, items/s", f0(quiet), format!("{:.0}", mean(quiet)), "", "");
    for &(is_mor, runs) in &contenders {
        let to_cutover: Vec<f64> = runs.iter().map(|(_, o)| n / o.to_cutover).collect();
        row(&name(is_mor, "online apply to cut-over, items/s"), f0(&to_cutover), format!("{:.0}", mean(&to_cutover)), "", "");
    }
    for &(is_mor, runs) in &contenders {
        let to_complete: Vec<f64> = runs.iter().map(|(secs, _)| n / secs).collect();
        row(&name(is_mor, "online apply to complete, items/s"), f0(&to_complete), format!("{:.0}", mean(&to_complete)), "", "");
    }
    for &(is_mor, runs) in &contenders {
        let to_complete: Vec<f64> = runs.iter().map(|(secs, _)| n / secs).collect();
        let ratio: Vec<f64> = to_complete.iter().zip(quiet).map(|(o, q)| o / q).collect();
        let r = mean(&to_complete) / mean(quiet);
        row(&name(is_mor, "online/quiet (to complete)"), ratio.iter().map(|x| format!("{x:.2}x")).collect(), format!("{r:.2}x"), ">= 0.7x", verdict(r >= 0.7));
    }
    if !online.is_empty() {
        let pauses: Vec<f64> = online.iter().map(|(_, o)| o.pause).collect();
        let max_pause = pauses.iter().copied().fold(0.0, f64::max);
        row(
            "write pause at cut-over (all: max)",
            pauses.iter().map(|x| format!("{x:.2} s")).collect(),
            format!("{max_pause:.2} s"),
            "<= 1 s",
            verdict(max_pause <= 1.0),
        );
    }
    if !mor.is_empty() {
        // No write of the new version waits for the cut-over: the figure
        // is 0 by construction, and the two rows under it show what the
        // writes saw while cutover() ran.
        row(MOR_ROW, mor.iter().map(|_| "0 s".to_string()).collect(), "0 s".to_string(), "0 (MOR)", "met");
        let longest: Vec<Option<f64>> = mor.iter().map(|(_, o)| o.mor.as_ref().and_then(|m| m.longest_during_cutover)).collect();
        let max = longest.iter().flatten().copied().reduce(f64::max);
        let ms = |x: &Option<f64>| x.map_or("none".to_string(), |s| format!("{:.0} ms", s * 1e3));
        row("    longest write during cut-over (all: max)", longest.iter().map(ms).collect(), ms(&max), "", "");
        let acked: Vec<u64> = mor.iter().map(|(_, o)| o.mor.as_ref().map_or(0, |m| m.acked_during_cutover)).collect();
        row("    writes acked during cut-over", acked.iter().map(u64::to_string).collect(), acked.iter().sum::<u64>().to_string(), "", "");
    }
    for &(is_mor, runs) in &contenders {
        let took: Vec<f64> = runs.iter().map(|(_, o)| o.cutover_took).collect();
        row(&name(is_mor, "cutover() took"), took.iter().map(|x| format!("{x:.2} s")).collect(), format!("{:.2} s", mean(&took)), "", "");
    }
    for p in [50, 99] {
        for &(is_mor, runs) in &contenders {
            let pick = |l: (f64, f64)| if p == 50 { l.0 } else { l.1 };
            let all: Vec<f64> = runs.iter().flat_map(|(_, o)| o.lags.iter().copied()).collect();
            let all = pick(lag_percentiles(&all));
            let (target, ok) = if p == 99 { ("<= 2 s", verdict(all <= 2.0)) } else { ("", "") };
            row(&name(is_mor, &format!("replay lag p{p}, end to end")), runs.iter().map(|(_, o)| format!("{:.2} s", pick(lag_percentiles(&o.lags)))).collect(), format!("{all:.2} s"), target, ok);
        }
    }
    for &(is_mor, runs) in &contenders {
        let timeouts: u64 = runs.iter().map(|(_, o)| o.timeouts).sum();
        let samples: usize = runs.iter().map(|(_, o)| o.lags.len()).sum();
        row(&name(is_mor, "lag samples (timed out at 10 s)"), runs.iter().map(|(_, o)| format!("{} ({})", o.lags.len(), o.timeouts)).collect(), format!("{samples} ({timeouts})"), "", "");
    }
    for &(is_mor, runs) in &contenders {
        let rates: Vec<f64> = runs.iter().map(|(_, o)| o.load_rate).collect();
        row(
            &name(is_mor, "load acked, writes/s"),
            f0(&rates),
            format!("{:.0}", mean(&rates)),
            &format!("{}", opts.load_rate),
            // Fewer acknowledged writes than asked: the server could not
            // take the load (every writer waiting), so the other figures
            // are for a lighter load.
            if mean(&rates) >= 0.9 * opts.load_rate { "" } else { "NOT REACHED (server too slow)" },
        );
    }
    if !online.is_empty() {
        row("load acked: old form / new form", online.iter().map(|(_, o)| format!("{}/{}", o.acked_old, o.acked_new)).collect(), String::new(), "", "");
    }
    if !mor.is_empty() {
        row(
            "  with MOR: old version / migrating table",
            mor.iter().map(|(_, o)| format!("{}/{}", o.acked_old, o.mor.as_ref().map_or(0, |m| m.acked))).collect(),
            String::new(),
            "",
            "",
        );
    }
    println!("  (lag: from a sampled old-form write's acknowledgement until a consistent read of its new form shows it; DynamoDB Local's stream timestamps are rounded to the minute, so the library's own lag figures are not used)");
    if !mor.is_empty() {
        println!("  (migrate-on-read: the old version stops before cutover() and the new one, writing through MigratingTable from the start, never pauses; lag is of the old version's writes)");
    }
}

/// The machine's load, printed with the figures (other processes on a
/// small machine skew them).
fn loadavg() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("{cpus} CPUs, load average {}", load.join(" "))
}

// ---------------------------------------------------------------- memory

fn proc_status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The child: loads the plan, applies it, reports its peak RSS.
async fn apply_child(client: &Client, plan_file: &str, segments: u32, page_size: Option<i32>) -> Result<()> {
    let plan: Plan = serde_json::from_str(&std::fs::read_to_string(plan_file)?)?;
    let before = proc_status_kb("VmHWM:").unwrap_or(0);
    let t = Instant::now();
    let report = Migrator::new(client.clone()).apply(&plan, &apply_options(segments, page_size), Arc::new(singletable_migrate::Quiet)).await?;
    let secs = t.elapsed().as_secs_f64();
    let peak = proc_status_kb("VmHWM:").context("no VmHWM in /proc/self/status")?;
    println!("moved={} secs={secs:.3} hwm_before_kb={before} hwm_kb={peak}", report.moved);
    Ok(())
}

async fn memory(client: &Client, opts: &Opts) -> Result<()> {
    let exe = std::env::current_exe()?;
    let mut peaks = Vec::new();
    println!("bench-migrate --memory: peak RSS (VmHWM) of a process running only Migrator::apply (segments {})", opts.segments_memory);
    for &n in &opts.memory {
        let t = Instant::now();
        let table = seed(client, "mem", n).await?;
        let seed_secs = t.elapsed().as_secs_f64();
        let (t, cpu0) = (Instant::now(), cpu_now());
        let plan = make_plan(client, &table, opts.segments_memory).await?;
        let plan_secs = t.elapsed().as_secs_f64();
        let cpu1 = cpu_now();
        let plan_cpu = match cpu1.1.zip(cpu0.1) {
            Some((b, a)) => format!("cpu client {:.1} s + server {:.1} s", cpu1.0 - cpu0.0, b - a),
            None => format!("cpu client {:.1} s", cpu1.0 - cpu0.0),
        };
        let plan_file = std::env::temp_dir().join(format!("{table}.plan.json"));
        std::fs::write(&plan_file, serde_json::to_string(&plan)?)?;
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg("--apply-child").arg(&plan_file).arg("--concurrency").arg(opts.segments_memory.to_string());
        if let Some(p) = opts.apply_page_size {
            cmd.arg("--apply-page-size").arg(p.to_string());
        }
        let out = cmd.output()?;
        let _ = std::fs::remove_file(&plan_file);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let verified = if out.status.success() { verify(client, &table, n, &HashMap::new()).await.map(|_| "verified") } else { Ok("FAILED") };
        drop_table(client, &table).await;
        ensure!(out.status.success(), "apply child failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        let verified = verified?;
        let field = |k: &str| -> Result<f64> {
            stdout
                .split_whitespace()
                .find_map(|w| w.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("no {k} in `{stdout}`"))
        };
        let (secs, hwm, before) = (field("secs")?, field("hwm_kb")?, field("hwm_before_kb")?);
        println!(
            "{n:>8} items: seed {seed_secs:.1} s, plan {plan_secs:.1} s ({plan_cpu}), apply {secs:.1} s ({:.0} items/s), {verified}; peak RSS {:.1} MiB (before apply {:.1} MiB)",
            n as f64 / secs,
            hwm / 1024.0,
            before / 1024.0
        );
        peaks.push((n, hwm));
    }
    if let [(n0, p0), .., (n1, p1)] = peaks[..] {
        println!("peak RSS at {n1} items / at {n0} items = {:.2}x (target <= 1.2x)", p1 / p0);
    }
    Ok(())
}

// ---------------------------------------------------------------- main

#[tokio::main]
async fn main() -> Result<()> {
    let opts = parse_opts()?;
    // DynamoDB Local takes any keys made of letters and digits; the streams
    // client of the online apply reads them from the environment.
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        std::env::set_var("AWS_ACCESS_KEY_ID", "local");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "local");
    }
    if std::env::var_os("AWS_REGION").is_none() {
        std::env::set_var("AWS_REGION", "us-east-1");
    }
    let client = client().await?;
    if let Some(plan_file) = &opts.apply_child {
        return apply_child(&client, plan_file, opts.segments_memory, opts.apply_page_size).await;
    }
    if !opts.memory.is_empty() {
        return memory(&client, &opts).await;
    }
    compare(&client, &opts).await
}
