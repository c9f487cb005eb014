//! Conditions on puts, deletes and query filters against DynamoDB Local,
//! with attribute names that are DynamoDB reserved words.

mod common;

use std::collections::{BTreeMap, HashSet};

use singletable::{Condition, Error, Item, KeyParts, Table};

use common::scan;

/// `name`, `status`, `data`, `size`, `type` and `ttl`-like names are
/// reserved words; so is `comment`.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Ticket", pk = "QUEUE#{queue}", sk = "TICKET#{id:06}")]
struct Ticket {
    queue: String,
    id: u32,
    name: String,
    status: String,
    data: BTreeMap<String, String>,
    size: u64,
    #[item(rename = "type")]
    kind: String,
    comment: Option<String>,
    labels: HashSet<String>,
    watchers: Vec<String>,
}

async fn new_table(prefix: &str) -> Table {
    common::new_table(prefix, vec![Ticket::DESIGN.clone()]).await
}

fn ticket(id: u32, status: &str) -> Ticket {
    Ticket {
        queue: "q".into(),
        id,
        name: format!("ticket {id}"),
        status: status.into(),
        data: BTreeMap::from([("k".to_string(), "v".to_string())]),
        size: u64::from(id) * 10,
        kind: if id % 2 == 0 { "bug".into() } else { "task".into() },
        comment: (id % 3 == 0).then(|| "hm".to_string()),
        labels: HashSet::from([format!("l{}", id % 4)]),
        watchers: (0..id % 5).map(|w| format!("w{w}")).collect(),
    }
}

fn key(id: u32) -> (String, u32) {
    ("q".to_string(), id)
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_puts() {
    let table = new_table("cond_put").await;
    let f = Ticket::fields();
    let t1 = ticket(1, "open");

    // No item: only "not exists" conditions hold.
    let err = table.put_if(&t1, f.status.eq("open")).await.unwrap_err();
    match &err {
        Error::ConditionFailed { entity, operation, pk, sk, reason } => {
            assert_eq!((entity.as_str(), *operation, pk.as_str(), sk.as_str()), ("Ticket", "PutItem", "QUEUE#q", "TICKET#000001"));
            assert!(reason.contains("no such item"), "{reason}");
        }
        other => panic!("expected ConditionFailed, got {other:?}"),
    }
    assert!(scan(table.client(), table.name(), None).await.is_empty());
    table.put_if(&t1, f.name.not_exists()).await.unwrap();

    // Replace only while open.
    let closed = Ticket { status: "closed".into(), ..t1.clone() };
    table.put_if(&closed, f.status.eq("open") & f.kind.eq("task")).await.unwrap();
    let reopened = Ticket { status: "open".into(), ..t1.clone() };
    let err = table.put_if(&reopened, f.status.eq("open")).await.unwrap_err();
    assert!(matches!(&err, Error::ConditionFailed { reason, .. } if reason == "the condition did not hold"), "{err:?}");
    assert_eq!(table.get::<Ticket>(&key(1)).await.unwrap(), Some(closed.clone()));
    // Negation, or, comparisons between fields.
    table.put_if(&reopened, !f.status.eq("open") | f.size.gt(1000u64)).await.unwrap();
    table.put_if(&reopened, f.name.ne_field(f.kind) & f.comment.eq(None)).await.unwrap();
    assert!(table.put_if(&reopened, f.name.eq_field(f.kind)).await.is_err());
    // DynamoDB refuses a field compared with itself: refused before sending.
    let err = table.put_if(&reopened, f.name.eq_field(f.name)).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidValue { path, problem, .. } if path == "name" && problem.contains("itself")), "{err:?}");
    assert!(table.put_if(&reopened, f.comment.ne(None)).await.is_err());
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_deletes() {
    let table = new_table("cond_delete").await;
    let f = Ticket::fields();
    table.put(&ticket(1, "open")).await.unwrap();
    table.put(&ticket(2, "closed")).await.unwrap();

    let err = table.delete_if::<Ticket>(&key(1), f.status.eq("closed")).await.unwrap_err();
    assert!(matches!(&err, Error::ConditionFailed { operation: "DeleteItem", .. }), "{err:?}");
    assert!(table.get::<Ticket>(&key(1)).await.unwrap().is_some());
    table.delete_if::<Ticket>(&key(2), f.status.eq("closed")).await.unwrap();
    assert!(table.get::<Ticket>(&key(2)).await.unwrap().is_none());
    // A delete conditioned on existence fails when there is nothing.
    let err = table.delete_if::<Ticket>(&key(2), f.name.exists()).await.unwrap_err();
    assert!(matches!(&err, Error::ConditionFailed { reason, .. } if reason.contains("no such item")), "{err:?}");
    drop_table(&table).await;
}

async fn drop_table(table: &Table) {
    singletable_tests::delete_table(table.client(), table.name()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_condition_function_as_a_query_filter() {
    let table = new_table("cond_filter").await;
    let f = Ticket::fields();
    let all: Vec<Ticket> = (1..=12).map(|i| ticket(i, if i <= 6 { "open" } else { "closed" })).collect();
    for t in &all {
        table.put(t).await.unwrap();
    }
    let ids = |ts: Vec<Ticket>| ts.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let filtered = |c: Condition<Ticket>| table.query::<Ticket>().pk(KeyParts::new().set("queue", "q")).filter(c).all();
    let expect = |pred: &dyn Fn(&Ticket) -> bool| all.iter().filter(|t| pred(t)).map(|t| t.id).collect::<Vec<_>>();

    let cases: Vec<(&str, Condition<Ticket>, Box<dyn Fn(&Ticket) -> bool>)> = vec![
        ("eq", f.status.eq("open"), Box::new(|t| t.status == "open")),
        ("ne", f.status.ne("open"), Box::new(|t| t.status != "open")),
        ("lt", f.size.lt(30u64), Box::new(|t| t.size < 30)),
        ("le", f.size.le(30u64), Box::new(|t| t.size <= 30)),
        ("gt", f.size.gt(100u64), Box::new(|t| t.size > 100)),
        ("ge", f.size.ge(100u64), Box::new(|t| t.size >= 100)),
        ("between", f.size.between(20u64, 50u64), Box::new(|t| (20..=50).contains(&t.size))),
        ("in", f.kind.is_in(["bug", "epic"]), Box::new(|t| t.kind == "bug")),
        ("exists", f.comment.exists(), Box::new(|t| t.comment.is_some())),
        ("not_exists", f.comment.not_exists(), Box::new(|t| t.comment.is_none())),
        ("eq None", f.comment.eq(None), Box::new(|t| t.comment.is_none())),
        ("begins_with", f.name.begins_with("ticket 1"), Box::new(|t| t.name.starts_with("ticket 1"))),
        ("contains substring", f.name.contains("et 1"), Box::new(|t| t.name.contains("et 1"))),
        ("contains set element", f.labels.contains("l1"), Box::new(|t| t.labels.contains("l1"))),
        ("contains list element", f.watchers.contains("w3"), Box::new(|t| t.watchers.contains(&"w3".to_string()))),
        ("size of a list", f.watchers.size().ge(3), Box::new(|t| t.watchers.len() >= 3)),
        ("size of a string", f.name.size().eq(9), Box::new(|t| t.name.len() == 9)),
        ("size of a map", f.data.size().eq(1), Box::new(|_| true)),
        ("size between", f.watchers.size().between(1, 2), Box::new(|t| (1..=2).contains(&t.watchers.len()))),
        (
            "and/or/not",
            (f.status.eq("open") & !f.kind.eq("bug")) | (f.size.gt(110u64) & f.comment.exists()),
            Box::new(|t| (t.status == "open" && t.kind != "bug") || (t.size > 110 && t.comment.is_some())),
        ),
        ("all", Condition::all([f.status.eq("closed"), f.kind.eq("bug"), f.size.lt(110u64)]).unwrap(), Box::new(|t| t.status == "closed" && t.kind == "bug" && t.size < 110)),
        ("any", Condition::any([f.size.eq(10u64), f.size.eq(120u64)]).unwrap(), Box::new(|t| t.size == 10 || t.size == 120)),
    ];
    for (name, condition, pred) in cases {
        let want = expect(&*pred);
        assert_eq!(ids(filtered(condition).await.unwrap()), want, "{name}");
    }
    // The same conditions filter a scan.
    let mut scanned = ids(table.scan::<Ticket>().filter(f.status.eq("open") & f.kind.eq("bug")).all().await.unwrap());
    scanned.sort();
    assert_eq!(scanned, expect(&|t| t.status == "open" && t.kind == "bug"));
    // A value that cannot be stored is refused before the query is sent.
    let err = filtered(f.labels.contains(String::new()) & f.status.is_in(Vec::<String>::new())).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidValue { path, .. } if path == "status"), "{err:?}");
    drop_table(&table).await;
}
