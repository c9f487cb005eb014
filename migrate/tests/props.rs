//! Property test of `Migrator::apply`: random old/new design pairs within
//! the supported changes, and random items, against DynamoDB Local.
//!
//! Designs are data built at run time from template menus: per entity
//! (`A`, `B`, `C`) a pk and sk template and the use of two indexes
//! (`gsi1` with a sort key, `gsi2` without; `S#{s}` templates make them
//! sparse). A case's new design moves entities (pk/sk changes), adds,
//! changes and drops index keys (so indexes are created and deleted),
//! adds and removes entities, and may key on `region`, which old items
//! mostly lack (filled from a default). Every sort key template carries
//! the entity name and `{id}`, and ids have their own shape, so no two
//! items can collide.
//!
//! Property: after apply every original item of a kept entity is present
//! exactly once, in its new form (keys as rendered here by hand from the
//! templates, non-key attributes unchanged, `region` added from the
//! default only where the item lacked it); a removed entity's items are
//! gone and in the export; the live indexes and the recorded design are
//! the new design's; and a second plan has no changes (`No changes.`),
//! whose apply writes nothing.
//!
//! Sometimes an item gets an id holding `#`; when the new sort key puts
//! `{id}` before a `#`, that item cannot be keyed: the plan must report a
//! blocking error and apply must refuse without touching the table.
//!
//! `PROPTEST_CASES` sets the case count (default 32); failing cases are
//! kept in `props.proptest-regressions` beside this file.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use singletable::{AttrType, AttributeDesign, EntityDesign, IndexDesign, KeyDesign, KeyKind, Table, TableDesign, Template};
use singletable_migrate::analyze::{analyze, AnalyzeOptions, Defaults};
use singletable_migrate::ddb_json::item_from_json;
use singletable_migrate::fingerprint::fingerprint;
use singletable_migrate::plan::DefaultValue;
use singletable_migrate::reserved::{read_recorded_design, record_design, RESERVED_PK};
use singletable_migrate::{describe, diff, ApplyOptions, Change, MigrateError, Migrator, Plan, Quiet};

type Raw = HashMap<String, AttributeValue>;

const ENTITIES: [&str; 3] = ["A", "B", "C"];
/// Every key attribute either design may use.
const KEY_ATTRS: [&str; 5] = ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk"];

// Template menus. Options using `region` come last: old designs draw from
// the others only, since old items mostly lack `region`. `{e}` stands for
// the entity name (a literal).
const PK: &[&str] = &["G#{g}", "TENANT#{g}", "{g}", "P#{g}#{n:05}", "ALL", "R#{region}#{g}"];
const PK_OLD: usize = 5;
const SK: &[&str] = &["{e}#{id}", "{e}#{g}#{id}", "{e}#{n:05}#{id}", "{e}#{id}#{g}", "{e}#{region}#{id}"];
const SK_OLD: usize = 4;
/// The sort key template with `{id}` before a `#`.
const SK_ID_NOT_LAST: usize = 3;
const GSI1_PK: &[&str] = &["G#{g}", "N#{n}", "S#{s}", "R#{region}"];
const GSI1_PK_OLD: usize = 3;
const GSI1_SK: &[&str] = &["{e}", "{e}#{id}", "{e}#{n:05}"];
const GSI2_PK: &[&str] = &["{e}#{id}", "X#{g}", "S#{s}", "R#{region}"];
const GSI2_PK_OLD: usize = 3;

/// One entity's keys: indexes into the menus.
#[derive(Debug, Clone, PartialEq)]
struct Spec {
    pk: usize,
    sk: usize,
    gsi1: Option<(usize, usize)>,
    gsi2: Option<usize>,
}

impl Spec {
    fn templates(&self, e: &str) -> Vec<(&'static str, String)> {
        let t = |s: &str| s.replace("{e}", e);
        let mut out = vec![("pk", t(PK[self.pk])), ("sk", t(SK[self.sk]))];
        if let Some((p, s)) = self.gsi1 {
            out.push(("gsi1pk", t(GSI1_PK[p])));
            out.push(("gsi1sk", t(GSI1_SK[s])));
        }
        if let Some(p) = self.gsi2 {
            out.push(("gsi2pk", t(GSI2_PK[p])));
        }
        out
    }

    fn uses_region(&self) -> bool {
        self.templates("x").iter().any(|(_, t)| t.contains("{region}"))
    }
}

/// The payload of one item.
#[derive(Debug, Clone)]
struct ItemSpec {
    g: String,
    id_tail: String,
    n: u32,
    s: Option<String>,
    region: Option<String>,
    data: String,
    cnt: i64,
    flag: bool,
    tags: Vec<String>,
}

#[derive(Debug, Clone)]
struct Case {
    old: Vec<Option<Spec>>,
    new: Vec<Option<Spec>>,
    items: Vec<Vec<ItemSpec>>,
    /// An entity one of whose items gets an id holding `#`.
    flaw: Option<usize>,
    region_default: String,
    segments: u32,
    page_size: i32,
}

fn spec(old: bool) -> impl Strategy<Value = Spec> {
    let (pk, sk, g1, g2) = if old { (PK_OLD, SK_OLD, GSI1_PK_OLD, GSI2_PK_OLD) } else { (PK.len(), SK.len(), GSI1_PK.len(), GSI2_PK.len()) };
    (0..pk, 0..sk, prop::option::weighted(0.5, (0..g1, 0..GSI1_SK.len())), prop::option::weighted(0.4, 0..g2))
        .prop_map(|(pk, sk, gsi1, gsi2)| Spec { pk, sk, gsi1, gsi2 })
}

fn item_spec() -> impl Strategy<Value = ItemSpec> {
    (
        "[a-z]{1,4}",
        "[a-z0-9]{0,2}",
        0u32..100_000,
        prop::option::weighted(0.7, "[a-z]{1,4}"),
        prop::option::weighted(0.25, "[a-z]{2}"),
        "\\PC{0,10}",
        any::<i64>(),
        any::<bool>(),
        prop::collection::vec("[a-z#]{0,3}", 0..3),
    )
        .prop_map(|(g, id_tail, n, s, region, data, cnt, flag, tags)| ItemSpec { g, id_tail, n, s, region, data, cnt, flag, tags })
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(prop::option::weighted(0.75, spec(true)), 3),
        prop::collection::vec(prop::option::weighted(0.8, spec(false)), 3),
        // Per entity, which of pk, sk, gsi1, gsi2 the new design changes
        // (the rest stays as in the old design).
        prop::collection::vec([prop::bool::weighted(0.4); 4], 3),
        prop::collection::vec(prop::collection::vec(item_spec(), 0..=10), 3),
        // An entity with an item whose id holds `#`, and whether the new
        // design then puts `{id}` before a `#`.
        prop::option::weighted(0.25, (0..3usize, any::<bool>())),
        "[a-z]{2}",
        1u32..=4,
        1i32..=12,
    )
        .prop_filter("an old design needs an entity", |(old, ..)| old.iter().any(Option::is_some))
        .prop_map(|(old, mut new, changed, items, flaw, region_default, segments, page_size)| {
            for i in 0..3 {
                if let (Some(o), Some(n)) = (&old[i], &mut new[i]) {
                    let [pk, sk, gsi1, gsi2] = changed[i];
                    *n = Spec {
                        pk: if pk { n.pk } else { o.pk },
                        sk: if sk { n.sk } else { o.sk },
                        gsi1: if gsi1 { n.gsi1 } else { o.gsi1 },
                        gsi2: if gsi2 { n.gsi2 } else { o.gsi2 },
                    };
                }
            }
            if new.iter().all(Option::is_none) {
                new[0] = old.iter().flatten().next().cloned();
            }
            if let Some((e, true)) = flaw {
                if let (Some(o), Some(n)) = (&old[e], &mut new[e]) {
                    if o.sk != SK_ID_NOT_LAST {
                        n.sk = SK_ID_NOT_LAST;
                    }
                }
            }
            Case { old, new, items, flaw: flaw.map(|(e, _)| e), region_default, segments, page_size }
        })
}

fn resolve(in_index: bool) -> impl FnMut(&str) -> Option<(KeyKind, bool)> {
    move |name| match name {
        "g" | "id" | "region" => Some((KeyKind::Str, false)),
        "n" => Some((KeyKind::Int, false)),
        // Optional: an item without `s` is left out of the index.
        "s" if in_index => Some((KeyKind::Str, true)),
        _ => None,
    }
}

fn key(attr: &'static str, source: &str, in_index: bool) -> KeyDesign {
    KeyDesign { attr: Cow::Borrowed(attr), template: Template::parse(source, resolve(in_index)).unwrap() }
}

fn attribute(name: &'static str, ty: AttrType, optional: bool) -> AttributeDesign {
    AttributeDesign { name: Cow::Borrowed(name), ty, optional }
}

fn entity(name: &'static str, spec: &Spec) -> EntityDesign {
    let t: HashMap<&str, String> = spec.templates(name).into_iter().collect();
    let mut indexes = Vec::new();
    if spec.gsi1.is_some() {
        indexes.push(IndexDesign { name: "gsi1".into(), pk: key("gsi1pk", &t["gsi1pk"], true), sk: Some(key("gsi1sk", &t["gsi1sk"], true)) });
    }
    if spec.gsi2.is_some() {
        indexes.push(IndexDesign { name: "gsi2".into(), pk: key("gsi2pk", &t["gsi2pk"], true), sk: None });
    }
    let mut attributes = vec![
        attribute("g", AttrType::S, false),
        attribute("id", AttrType::S, false),
        attribute("n", AttrType::N, false),
        attribute("s", AttrType::S, true),
        attribute("data", AttrType::S, false),
        attribute("cnt", AttrType::N, false),
        attribute("flag", AttrType::Bool, false),
        attribute("tags", AttrType::L, false),
    ];
    if spec.uses_region() {
        attributes.push(attribute("region", AttrType::S, false));
    }
    EntityDesign {
        entity: name.into(),
        entity_attr: "_et".into(),
        pk: key("pk", &t["pk"], false),
        sk: key("sk", &t["sk"], false),
        indexes: Cow::Owned(indexes),
        attributes: Cow::Owned(attributes),
        managed: Default::default(),
    }
}

fn design(table: &str, specs: &[Option<Spec>]) -> TableDesign {
    let entities = ENTITIES.iter().zip(specs).filter_map(|(e, s)| s.as_ref().map(|s| entity(e, s))).collect();
    TableDesign::from_entities(table, entities).unwrap()
}

/// The oracle: renders a template from an item's attributes by plain
/// substitution. `None` when an `{s}` it needs is absent (sparse index).
fn render(template: &str, item: &Raw) -> Option<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').unwrap() + open;
        let field = &rest[open + 1..close];
        let (name, pad) = field.split_once(':').map_or((field, None), |(n, p)| (n, Some(p.parse::<usize>().unwrap())));
        match (item.get(name)?, pad) {
            (AttributeValue::S(v), _) => out.push_str(v),
            (AttributeValue::N(v), Some(width)) => out.push_str(&format!("{:0>width$}", v)),
            (AttributeValue::N(v), None) => out.push_str(v),
            (other, _) => panic!("{name}: {other:?}"),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Key attributes of `spec`'s templates rendered for `payload`; index keys
/// of a sparse index the item stays out of are left out.
fn keys(e: &str, spec: &Spec, payload: &Raw) -> Vec<(&'static str, String)> {
    let t: HashMap<&str, String> = spec.templates(e).into_iter().collect();
    let mut out = vec![("pk", render(&t["pk"], payload).unwrap()), ("sk", render(&t["sk"], payload).unwrap())];
    if t.contains_key("gsi1pk") {
        if let (Some(p), Some(s)) = (render(&t["gsi1pk"], payload), render(&t["gsi1sk"], payload)) {
            out.push(("gsi1pk", p));
            out.push(("gsi1sk", s));
        }
    }
    if let Some(p) = t.get("gsi2pk").and_then(|t| render(t, payload)) {
        out.push(("gsi2pk", p));
    }
    out
}

fn payload_of(item: &Raw) -> Raw {
    item.iter().filter(|(k, _)| !KEY_ATTRS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn with_keys(mut payload: Raw, keys: Vec<(&'static str, String)>) -> Raw {
    payload.extend(keys.into_iter().map(|(a, v)| (a.to_string(), AttributeValue::S(v))));
    payload
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// The old items of a case, as written (payload and old keys).
fn old_items(case: &Case) -> Vec<(usize, Raw)> {
    let mut out = Vec::new();
    for (e, (spec, items)) in case.old.iter().zip(&case.items).enumerate() {
        let Some(spec) = spec else { continue };
        for (k, it) in items.iter().enumerate() {
            // Ids start with digits and hold an `i`: no other field (letters
            // only, or digits only) can take their place in a key.
            let mut id = format!("{k}i{}", it.id_tail);
            if case.flaw == Some(e) && k == 0 && spec.sk != SK_ID_NOT_LAST {
                id.push_str("#Z");
            }
            let mut p: Raw = [
                ("_et", s(ENTITIES[e])),
                ("g", s(&it.g)),
                ("id", s(id)),
                ("n", AttributeValue::N(it.n.to_string())),
                ("data", s(&it.data)),
                ("cnt", AttributeValue::N(it.cnt.to_string())),
                ("flag", AttributeValue::Bool(it.flag)),
                ("tags", AttributeValue::L(it.tags.iter().map(s).collect())),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            if let Some(v) = &it.s {
                p.insert("s".into(), s(v));
            }
            if let Some(v) = &it.region {
                p.insert("region".into(), s(v));
            }
            let k = keys(ENTITIES[e], spec, &p);
            out.push((e, with_keys(p, k)));
        }
    }
    out
}

async fn scan_all(client: &Client, table: &str) -> Vec<Raw> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = client.scan().table_name(table).consistent_read(true).set_exclusive_start_key(start).send().await.unwrap();
        out.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            break;
        }
    }
    let key = |i: &Raw| (i["pk"].as_s().unwrap().clone(), i["sk"].as_s().unwrap().clone());
    out.retain(|i| i["pk"].as_s().map(String::as_str) != Ok(RESERVED_PK));
    out.sort_by_key(key);
    out
}

/// A plan as `migrate plan` makes it.
async fn plan(client: &Client, table: &str, new: &TableDesign, defaults: &Defaults) -> Plan {
    let live = describe(client, table).await.unwrap();
    let recorded = read_recorded_design(client, table, "pk", "sk").await.unwrap();
    let changes = diff(recorded.as_ref(), new, &live).unwrap();
    let opts = AnalyzeOptions { defaults: defaults.clone(), ..AnalyzeOptions::default() };
    let entities = analyze(client, table, recorded.as_ref(), new, &changes, &opts).await.unwrap();
    Plan {
        table: table.into(),
        from: recorded.clone(),
        to: new.clone(),
        changes,
        entities,
        fingerprint: fingerprint(&live, recorded.as_ref()),
        defaults: DefaultValue::from_defaults(defaults).unwrap(),
    }
}

type Stats = Mutex<BTreeMap<&'static str, usize>>;

fn count(stats: &Stats, what: &'static str, n: usize) {
    *stats.lock().unwrap().entry(what).or_default() += n;
}

fn sorted(mut items: Vec<Raw>) -> Vec<Raw> {
    items.sort_by_key(|i| format!("{:?}", {
        let mut v: Vec<_> = i.iter().collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }));
    items
}

async fn check(client: &Client, case: Case, stats: &Stats) -> Result<(), TestCaseError> {
    let table = singletable_tests::unique_table_name("props");
    let old = design(&table, &case.old);
    let new = design(&table, &case.new);
    Table::new(client.clone(), old.clone()).create_table().await.unwrap();
    let written = old_items(&case);
    for (_, item) in &written {
        client.put_item().table_name(&table).set_item(Some(item.clone())).send().await.unwrap();
    }
    record_design(client, &old, &table).await.unwrap();
    // The originals as stored.
    let originals = scan_all(client, &table).await;
    prop_assert_eq!(originals.len(), written.len());
    let entity_of = |i: &Raw| ENTITIES.iter().position(|e| i["_et"].as_s().unwrap() == e).unwrap();

    let mut defaults = Defaults::new();
    for (e, spec) in case.new.iter().enumerate() {
        if spec.as_ref().is_some_and(Spec::uses_region) {
            defaults.insert((ENTITIES[e].to_string(), "region".to_string()), s(&case.region_default));
        }
    }
    let p = plan(client, &table, &new, &defaults).await;
    for c in &p.changes {
        count(
            stats,
            match c {
                Change::CreateIndex { .. } => "index created",
                Change::DeleteIndex { .. } => "index deleted",
                Change::AddEntity { .. } => "entity added",
                Change::RemoveEntity { .. } => "entity removed",
                Change::Rewrite(r) if r.table_key.is_some() => "entity moved (pk/sk)",
                Change::Rewrite(_) => "entity with index keys changed only",
                _ => "other change",
            },
            1,
        );
        if let Change::Rewrite(r) = c {
            count(stats, "index key changes", r.indexes.len());
            if !r.needs_attributes.is_empty() {
                count(stats, "entity needing a default", 1);
            }
        }
    }

    // An id holding `#` in front of a `#` in the new sort key: blocked.
    let blocked = written.iter().any(|(e, i)| {
        i["id"].as_s().unwrap().contains('#') && case.new[*e].as_ref().is_some_and(|s| s.sk == SK_ID_NOT_LAST)
    });
    let export_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("props-exports");
    std::fs::create_dir_all(&export_dir).unwrap();
    let opts = ApplyOptions { segments: case.segments, page_size: Some(case.page_size), allow_destroy: true, export_dir, ..ApplyOptions::default() };
    let migrator = Migrator::new(client.clone());
    if blocked {
        count(stats, "case blocked by a key the new design refuses", 1);
        prop_assert!(p.blocking_errors().iter().any(|e| e.contains('#')), "plan errors: {:?}", p.blocking_errors());
        let err = migrator.apply(&p, &opts, Arc::new(Quiet)).await.unwrap_err();
        prop_assert!(matches!(err, MigrateError::Blocked { .. }), "{}", err);
        prop_assert_eq!(scan_all(client, &table).await, originals, "a refused apply wrote nothing");
        prop_assert_eq!(read_recorded_design(client, &table, "pk", "sk").await.unwrap(), Some(old));
        singletable_tests::delete_table(client, &table).await;
        return Ok(());
    }
    prop_assert!(p.blocking_errors().is_empty(), "plan errors: {:?}", p.blocking_errors());

    // What each original must become.
    let (mut expected, mut removed) = (Vec::new(), Vec::new());
    let (mut moves, mut updates) = (0, 0);
    for o in &originals {
        let e = entity_of(o);
        let Some(spec) = &case.new[e] else {
            removed.push(o.clone());
            continue;
        };
        let mut payload = payload_of(o);
        if spec.uses_region() && !payload.contains_key("region") {
            payload.insert("region".into(), s(&case.region_default));
        }
        let k = keys(ENTITIES[e], spec, &payload);
        let after = with_keys(payload, k);
        if (&after["pk"], &after["sk"]) != (&o["pk"], &o["sk"]) {
            moves += 1;
        } else if after != *o {
            updates += 1;
        }
        expected.push(after);
    }
    count(stats, "items", originals.len());
    count(stats, "items moved", moves);
    count(stats, "items updated in place", updates);
    count(stats, "items deleted", removed.len());

    let report = migrator.apply(&p, &opts, Arc::new(Quiet)).await.map_err(|e| TestCaseError::fail(format!("apply: {e}")))?;
    let after = scan_all(client, &table).await;
    // Each original exactly once, in its new form: the table holds exactly
    // the expected items (keys are unique, so equal sorted lists mean no
    // item is missing, doubled or left in its old form).
    let key = |i: &Raw| (i["pk"].as_s().unwrap().clone(), i["sk"].as_s().unwrap().clone());
    let mut want = expected.clone();
    want.sort_by_key(key);
    for (o, w) in originals.iter().filter(|o| case.new[entity_of(o)].is_some()).zip(expected.iter()) {
        let found: Vec<&Raw> = after.iter().filter(|i| i["_et"] == o["_et"] && i["id"] == o["id"]).collect();
        prop_assert_eq!(found.len(), 1, "{:?} {:?} found {} times", o["_et"], o["id"], found.len());
        prop_assert_eq!(found[0], w);
    }
    prop_assert_eq!(&after, &want);
    prop_assert_eq!((report.moved, report.updated, report.deleted), (moves as u64, updates as u64, removed.len() as u64));

    // Removed entities' items: gone, and in the export.
    if !removed.is_empty() {
        prop_assert_eq!(report.exports.len(), 1);
        let text = std::fs::read_to_string(&report.exports[0]).unwrap();
        let exported: Vec<Raw> = text.lines().map(|l| item_from_json(&serde_json::from_str(l).unwrap()).unwrap()).collect();
        prop_assert_eq!(sorted(exported), sorted(removed));
        std::fs::remove_file(&report.exports[0]).ok();
    }

    // The table is the new design: indexes and the recorded design.
    let live = describe(client, &table).await.unwrap();
    let mut live_indexes: Vec<_> = live.indexes.iter().map(|i| i.as_table_index()).collect();
    live_indexes.sort_by(|a, b| a.name.cmp(&b.name));
    let mut want_indexes = new.indexes.clone();
    want_indexes.sort_by(|a, b| a.name.cmp(&b.name));
    prop_assert_eq!(live_indexes, want_indexes);
    let recorded = read_recorded_design(client, &table, "pk", "sk").await.unwrap();
    prop_assert_eq!(recorded.as_ref(), Some(&new));

    // A second plan has nothing to do, and applying it writes nothing.
    let again = plan(client, &table, &new, &Defaults::new()).await;
    prop_assert!(again.changes.is_empty(), "second plan: {:?}", again.changes);
    prop_assert!(again.blocking_errors().is_empty(), "{:?}", again.blocking_errors());
    let text = singletable_migrate::render::render_plan(&again);
    prop_assert!(text.starts_with("No changes."), "{}", text);
    let second = migrator.apply(&again, &opts, Arc::new(Quiet)).await.map_err(|e| TestCaseError::fail(format!("second apply: {e}")))?;
    prop_assert_eq!((second.moved, second.updated, second.deleted), (0, 0, 0));
    prop_assert_eq!(scan_all(client, &table).await, after);

    singletable_tests::delete_table(client, &table).await;
    count(stats, "cases applied", 1);
    Ok(())
}

#[test]
fn random_design_changes_keep_every_item_exactly_once() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client = rt.block_on(singletable_tests::client());
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32);
    let config = Config {
        cases,
        source_file: Some(file!()),
        // Failing cases are kept beside this file and replayed first.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        // Every run of a case creates a table: keep shrinking bounded.
        max_shrink_iters: 256,
        ..Config::default()
    };
    let stats = Stats::default();
    let started = Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case(), |c| rt.block_on(check(&client, c, &stats)));
    let took = started.elapsed();
    eprintln!("migrate props: {cases} cases in {took:.1?}; {:?}", stats.lock().unwrap());
    if let Err(e) = result {
        panic!("{e}\n{runner}");
    }
}
