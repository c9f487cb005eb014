//! Integration tests of `singletable::Table` against DynamoDB Local, one
//! table per test, created from the design with `Table::create_table`.

mod common;

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::{AttributeValue, BillingMode, IndexStatus, KeyType, ProjectionType, ScalarAttributeType, TableStatus};
use singletable::{item_size, Document, Error, Item, KeyParts, Table, MAX_ITEM_BYTES};

use common::scan;

#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "User", pk = "ORG#{org_id}", sk = "USER#{user_id}")]
#[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
#[item(index(name = "gsi2", pk = "ORG#{org_id}", sk = "TEAM#{team}#{user_id}"))]
struct User {
    org_id: String,
    user_id: String,
    email: String,
    name: String,
    /// Sparse: a user without a team is left out of `gsi2`.
    team: Option<String>,
    age: u32,
}

/// Shares the users' key space: an admin stored at a user's key is not a
/// user.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Admin", pk = "ORG#{org_id}", sk = "USER#{user_id}")]
struct Admin {
    org_id: String,
    user_id: String,
    level: u8,
}

#[derive(Document, Debug, Clone, PartialEq)]
struct Line {
    sku: String,
    qty: u32,
    price: f64,
}

/// Orders live in the users' partitions; `seq` is zero-padded so that it
/// sorts numerically; `gsi2` (shared with `User`) lists them by status.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Order", pk = "ORG#{org_id}", sk = "ORDER#{seq:010}")]
#[item(index(name = "gsi2", pk = "ORG#{org_id}", sk = "STATUS#{status}#{seq:010}"))]
struct Order {
    org_id: String,
    seq: u64,
    status: String,
    lines: Vec<Line>,
    total: f64,
    tags: HashSet<String>,
    note: String,
}

/// Tasks of a project: `project` sits before a `#` in the sort key.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Task", pk = "ORG#{org_id}", sk = "TASK#{project}#{task}")]
struct Task {
    org_id: String,
    project: String,
    task: String,
    title: String,
}

/// Not part of the tables' design.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Stranger", pk = "S#{id}", sk = "S")]
struct Stranger {
    id: String,
}

async fn new_table(prefix: &str) -> Table {
    common::new_table(
        prefix,
        vec![User::DESIGN.clone(), Admin::DESIGN.clone(), Order::DESIGN.clone(), Task::DESIGN.clone()],
    )
    .await
}

async fn drop_table(table: &Table) {
    singletable_tests::delete_table(table.client(), table.name()).await;
}

fn user(org: &str, id: &str, team: Option<&str>) -> User {
    User {
        org_id: org.into(),
        user_id: id.into(),
        email: format!("{id}@{org}.test"),
        name: format!("User {id}"),
        team: team.map(Into::into),
        age: 30,
    }
}

fn order(org: &str, seq: u64, status: &str) -> Order {
    Order {
        org_id: org.into(),
        seq,
        status: status.into(),
        lines: vec![
            Line { sku: "A-1".into(), qty: 2, price: 9.5 },
            Line { sku: "B-2".into(), qty: 1, price: 0.25 },
        ],
        total: 19.25,
        tags: HashSet::from(["new".to_string()]),
        note: String::new(),
    }
}

fn ids(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.user_id.as_str()).collect()
}

fn seqs(orders: &[Order]) -> Vec<u64> {
    orders.iter().map(|o| o.seq).collect()
}

fn org(org: &str) -> KeyParts {
    KeyParts::new().set("org_id", org)
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: &str) -> AttributeValue {
    AttributeValue::N(v.into())
}

#[tokio::test(flavor = "multi_thread")]
async fn create_table_builds_the_key_schema_and_every_gsi_from_the_design() {
    let table = new_table("ops_create").await;
    let desc = table.client().describe_table().table_name(table.name()).send().await.unwrap().table.unwrap();
    assert_eq!(desc.table_status, Some(TableStatus::Active));
    assert_eq!(desc.billing_mode_summary.as_ref().and_then(|b| b.billing_mode.clone()), Some(BillingMode::PayPerRequest));
    let schema = |keys: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
        keys.iter().map(|k| (k.attribute_name.clone(), k.key_type.clone())).collect::<Vec<_>>()
    };
    assert_eq!(
        schema(desc.key_schema()),
        [("pk".to_string(), KeyType::Hash), ("sk".to_string(), KeyType::Range)]
    );
    let mut attrs: Vec<(String, ScalarAttributeType)> = desc
        .attribute_definitions()
        .iter()
        .map(|a| (a.attribute_name.clone(), a.attribute_type.clone()))
        .collect();
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = attrs.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(names, ["gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "pk", "sk"]);
    assert!(attrs.iter().all(|a| a.1 == ScalarAttributeType::S));

    let mut gsis: Vec<_> = desc
        .global_secondary_indexes()
        .iter()
        .map(|g| {
            assert_eq!(g.projection.as_ref().and_then(|p| p.projection_type.clone()), Some(ProjectionType::All));
            assert_eq!(g.index_status, Some(IndexStatus::Active));
            (g.index_name.clone().unwrap(), schema(g.key_schema()))
        })
        .collect();
    gsis.sort();
    assert_eq!(
        gsis,
        [
            ("gsi1".to_string(), vec![("gsi1pk".to_string(), KeyType::Hash), ("gsi1sk".to_string(), KeyType::Range)]),
            ("gsi2".to_string(), vec![("gsi2pk".to_string(), KeyType::Hash), ("gsi2sk".to_string(), KeyType::Range)]),
        ]
    );
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn put_create_get_and_delete_by_typed_key() {
    let table = new_table("ops_crud").await;
    let ann = user("acme", "u1", Some("red"));
    table.put(&ann).await.unwrap();
    let got = table.get::<User>(&("acme".to_string(), "u1".to_string())).await.unwrap();
    assert_eq!(got, Some(ann.clone()));
    assert_eq!(table.get::<User>(&("acme".to_string(), "u2".to_string())).await.unwrap(), None);
    assert_eq!(table.get::<User>(&("other".to_string(), "u1".to_string())).await.unwrap(), None);

    // Plain put replaces.
    let renamed = User { name: "Ann".into(), team: None, ..ann.clone() };
    table.put(&renamed).await.unwrap();
    assert_eq!(table.get::<User>(&("acme".into(), "u1".into())).await.unwrap(), Some(renamed.clone()));

    // Create-only refuses an existing key and leaves the item alone.
    let err = table.create(&User { name: "Impostor".into(), ..ann.clone() }).await.unwrap_err();
    match &err {
        Error::AlreadyExists { entity, pk, sk } => {
            assert_eq!((entity.as_str(), pk.as_str(), sk.as_str()), ("User", "ORG#acme", "USER#u1"));
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(table.get::<User>(&("acme".into(), "u1".into())).await.unwrap(), Some(renamed));

    // ... and writes a new one.
    let bob = user("acme", "u2", None);
    table.create(&bob).await.unwrap();
    assert_eq!(table.get::<User>(&("acme".into(), "u2".into())).await.unwrap(), Some(bob));

    // Delete, then deleting again is fine.
    table.delete::<User>(&("acme".into(), "u1".into())).await.unwrap();
    assert_eq!(table.get::<User>(&("acme".into(), "u1".into())).await.unwrap(), None);
    table.delete::<User>(&("acme".into(), "u1".into())).await.unwrap();
    table.create(&ann).await.unwrap();
    assert_eq!(table.get::<User>(&("acme".into(), "u1".into())).await.unwrap(), Some(ann));

    // Orders: the typed key is (org_id, seq).
    let o = order("acme", 7, "OPEN");
    table.put(&o).await.unwrap();
    assert_eq!(table.get::<Order>(&("acme".into(), 7)).await.unwrap(), Some(o));
    table.delete::<Order>(&("acme".into(), 7)).await.unwrap();
    assert_eq!(table.get::<Order>(&("acme".into(), 7)).await.unwrap(), None);

    // An entity outside the design is refused before any request.
    assert!(matches!(table.put(&Stranger { id: "x".into() }).await, Err(Error::Design(_))));
    assert!(matches!(table.get::<Stranger>(&("x".into(),)).await, Err(Error::Design(_))));
    drop_table(&table).await;
}

/// Users, admins and orders share the partitions of their organisation.
async fn seed(table: &Table) -> Vec<User> {
    let users = vec![
        user("acme", "ann", Some("red")),
        user("acme", "bob", Some("blue")),
        user("acme", "bobby", None),
        user("acme", "cat", Some("red")),
        user("acme", "dan", Some("redwood")),
        user("acme", "x#y", Some("blue")), // the last placeholder may hold `#`
    ];
    for u in &users {
        table.put(u).await.unwrap();
    }
    table.put(&user("initech", "ann", Some("red"))).await.unwrap();
    // sk `USER#eve`: inside every `USER#` range of the partition.
    table.put(&Admin { org_id: "acme".into(), user_id: "eve".into(), level: 3 }).await.unwrap();
    for (seq, status) in [(100, "OPEN"), (2, "OPEN"), (9, "SHIPPED"), (10, "OPEN"), (1, "OPENED"), (1_000_000, "OPEN")] {
        table.put(&order("acme", seq, status)).await.unwrap();
    }
    users
}

#[tokio::test(flavor = "multi_thread")]
async fn query_partition_with_begins_with_and_between_on_the_table() {
    let table = new_table("ops_query").await;
    seed(&table).await;

    // The whole partition: users only (orders and the admin are other
    // entities), in sort-key order.
    let all = table.query::<User>().pk(org("acme")).all().await.unwrap();
    assert_eq!(ids(&all), ["ann", "bob", "bobby", "cat", "dan", "x#y"]);
    assert!(all.iter().all(|u| u.org_id == "acme"));
    let prefix = table.query::<User>().pk(org("acme")).sk_begins_with(KeyParts::new()).all().await.unwrap();
    assert_eq!(prefix, all);

    let bobs = table
        .query::<User>()
        .pk(org("acme"))
        .sk_begins_with(KeyParts::new().set("user_id", "bob"))
        .all()
        .await
        .unwrap();
    assert_eq!(ids(&bobs), ["bob", "bobby"]);
    let hashed = table
        .query::<User>()
        .pk(org("acme"))
        .sk_begins_with(KeyParts::new().set("user_id", "x#"))
        .all()
        .await
        .unwrap();
    assert_eq!(ids(&hashed), ["x#y"]);

    // Between is inclusive; `eve` (an Admin) sits inside the range.
    let mid = table
        .query::<User>()
        .pk(org("acme"))
        .sk_between(KeyParts::new().set("user_id", "bob"), KeyParts::new().set("user_id", "eve"))
        .all()
        .await
        .unwrap();
    assert_eq!(ids(&mid), ["bob", "bobby", "cat", "dan"]);
    // An open upper bound runs to the end of the entity's prefix.
    let open = table
        .query::<User>()
        .pk(org("acme"))
        .sk_between(KeyParts::new().set("user_id", "cat"), KeyParts::new())
        .all()
        .await
        .unwrap();
    assert_eq!(ids(&open), ["cat", "dan", "x#y"]);
    // Even a value starting with the highest code point is under the prefix.
    let top = user("acme", "\u{10FFFF}z", None);
    table.put(&top).await.unwrap();
    let open = table
        .query::<User>()
        .pk(org("acme"))
        .sk_between(KeyParts::new().set("user_id", "cat"), KeyParts::new())
        .all()
        .await
        .unwrap();
    assert_eq!(ids(&open), ["cat", "dan", "x#y", "\u{10FFFF}z"]);
    table.delete::<User>(&(top.org_id.clone(), top.user_id.clone())).await.unwrap();

    let first_two = table.query::<User>().pk(org("acme")).limit(2).all().await.unwrap();
    assert_eq!(ids(&first_two), ["ann", "bob"]);
    let last_two = table.query::<User>().pk(org("acme")).reverse().limit(2).all().await.unwrap();
    assert_eq!(ids(&last_two), ["x#y", "dan"]);
    assert!(table.query::<User>().pk(org("acme")).limit(0).all().await.unwrap().is_empty());

    // Orders of the same partition.
    let orders = table.query::<Order>().pk(org("acme")).all().await.unwrap();
    assert_eq!(orders.len(), 6);
    assert!(table.query::<User>().pk(org("nobody")).all().await.unwrap().is_empty());

    // A partition needs every field of its template.
    assert!(matches!(table.query::<User>().all().await, Err(Error::MissingKeyField { .. })));
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn query_a_gsi_with_begins_with_and_between_and_sparse_items_are_left_out() {
    let table = new_table("ops_gsi").await;
    let users = seed(&table).await;

    // `TEAM#red#`: the delimiter closes the prefix, so `redwood` is out.
    let red = table
        .query::<User>()
        .index("gsi2")
        .pk(org("acme"))
        .sk_begins_with(KeyParts::new().set("team", "red"))
        .all()
        .await
        .unwrap();
    assert_eq!(ids(&red), ["ann", "cat"]);
    let blue_to_red = table
        .query::<User>()
        .index("gsi2")
        .pk(org("acme"))
        .sk_between(KeyParts::new().set("team", "blue"), KeyParts::new().set("team", "red"))
        .all()
        .await
        .unwrap();
    assert_eq!(ids(&blue_to_red), ["bob", "x#y", "ann", "cat"]);
    let one = table
        .query::<User>()
        .index("gsi2")
        .pk(org("acme"))
        .sk_between(
            KeyParts::new().set("team", "red").set("user_id", "b"),
            KeyParts::new().set("team", "red").set("user_id", "cz"),
        )
        .all()
        .await
        .unwrap();
    assert_eq!(ids(&one), ["cat"]);

    // Sparse: `bobby` has no team, so no gsi2 keys and no gsi2 entry at all.
    let with_team = table.query::<User>().index("gsi2").pk(org("acme")).all().await.unwrap();
    assert_eq!(ids(&with_team), ["bob", "x#y", "ann", "cat", "dan"]);
    let index_items = scan(table.client(), table.name(), Some("gsi2")).await;
    let in_index: HashSet<(String, String)> = index_items
        .iter()
        .map(|i| (i["pk"].as_s().unwrap().clone(), i["sk"].as_s().unwrap().clone()))
        .collect();
    assert!(!in_index.contains(&("ORG#acme".to_string(), "USER#bobby".to_string())));
    let raw_bobby = &scan(table.client(), table.name(), None).await.into_iter().find(|i| i["sk"] == s("USER#bobby")).unwrap();
    assert!(!raw_bobby.contains_key("gsi2pk") && !raw_bobby.contains_key("gsi2sk") && !raw_bobby.contains_key("team"));
    assert!(raw_bobby.contains_key("gsi1pk"));
    // 5 acme users with a team, 1 initech user, 6 orders.
    assert_eq!(index_items.len(), 5 + 1 + 6);

    // gsi1: one user by email, constant sort key.
    let by_email = table
        .query::<User>()
        .index("gsi1")
        .pk(KeyParts::new().set("email", "bobby@acme.test"))
        .all()
        .await
        .unwrap();
    assert_eq!(by_email, vec![users[2].clone()]);

    // Orders on the same index, in numeric `seq` order thanks to padding;
    // `OPENED` is not `OPEN`.
    let open = table
        .query::<Order>()
        .index("gsi2")
        .pk(org("acme"))
        .sk_begins_with(KeyParts::new().set("status", "OPEN"))
        .all()
        .await
        .unwrap();
    assert_eq!(seqs(&open), [2, 10, 100, 1_000_000]);
    let some = table
        .query::<Order>()
        .index("gsi2")
        .pk(org("acme"))
        .sk_between(
            KeyParts::new().set("status", "OPEN").set("seq", 5u64),
            KeyParts::new().set("status", "OPEN").set("seq", 100u64),
        )
        .reverse()
        .all()
        .await
        .unwrap();
    assert_eq!(seqs(&some), [100, 10]);

    // Unknown index; an index the entity does not use.
    assert!(matches!(
        table.query::<User>().index("nope").pk(org("acme")).all().await,
        Err(Error::InvalidArgument { argument: "index", .. })
    ));
    assert!(matches!(
        table.query::<Order>().index("gsi1").pk(KeyParts::new().set("email", "x")).all().await,
        Err(Error::InvalidArgument { argument: "index", .. })
    ));
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn zero_padded_integer_key_sorts_numerically() {
    let table = new_table("ops_padded").await;
    for seq in [100u64, 2, 9_999_999_999, 9, 10, 1, 0, 1_000_000] {
        table.put(&order("acme", seq, "OPEN")).await.unwrap();
    }
    let raw = scan(table.client(), table.name(), None).await;
    assert!(raw.iter().any(|i| i["sk"] == s("ORDER#0000000002")));

    let asc = table.query::<Order>().pk(org("acme")).all().await.unwrap();
    assert_eq!(seqs(&asc), [0, 1, 2, 9, 10, 100, 1_000_000, 9_999_999_999]);
    let desc = table.query::<Order>().pk(org("acme")).reverse().all().await.unwrap();
    assert_eq!(seqs(&desc), [9_999_999_999, 1_000_000, 100, 10, 9, 2, 1, 0]);
    let range = table
        .query::<Order>()
        .pk(org("acme"))
        .sk_between(KeyParts::new().set("seq", 2u64), KeyParts::new().set("seq", 100u64))
        .all()
        .await
        .unwrap();
    assert_eq!(seqs(&range), [2, 9, 10, 100]);

    // Eleven digits do not fit `{seq:010}`: refused, nothing written.
    let err = table.put(&order("acme", 10_000_000_000, "OPEN")).await.unwrap_err();
    assert!(
        matches!(&err, Error::KeyFormat { attribute, field, .. } if attribute == "sk" && field == "seq"),
        "{err:?}"
    );
    assert_eq!(scan(table.client(), table.name(), None).await, raw);
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_item_of_another_entity_is_not_decoded_as_this_one() {
    let table = new_table("ops_entity").await;
    let admin = Admin { org_id: "acme".into(), user_id: "eve".into(), level: 3 };
    table.put(&admin).await.unwrap();
    // Same key as a User would have: `get::<User>` finds the Admin's item.
    let err = table.get::<User>(&("acme".into(), "eve".into())).await.unwrap_err();
    match &err {
        Error::WrongEntity { expected, found } => {
            assert_eq!(expected, "User");
            assert_eq!(found.as_deref(), Some("Admin"));
        }
        other => panic!("expected WrongEntity, got {other:?}"),
    }
    assert!(err.to_string().contains("`User`") && err.to_string().contains("`Admin`"), "{err}");
    assert_eq!(table.get::<Admin>(&("acme".into(), "eve".into())).await.unwrap(), Some(admin));

    // Queries skip other entities instead of failing on them.
    table.put(&user("acme", "ann", None)).await.unwrap();
    assert_eq!(ids(&table.query::<User>().pk(org("acme")).all().await.unwrap()), ["ann"]);
    assert_eq!(table.query::<Admin>().pk(org("acme")).all().await.unwrap().len(), 1);

    // Decoding directly.
    let order_item = order("acme", 1, "OPEN").to_item().unwrap();
    assert!(matches!(
        User::from_item(order_item.clone()),
        Err(Error::WrongEntity { ref found, .. }) if found.as_deref() == Some("Order")
    ));
    let mut untyped = order_item;
    untyped.remove("_et");
    assert!(matches!(Order::from_item(untyped), Err(Error::WrongEntity { found: None, .. })));
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_type_on_read_is_a_decode_error_naming_the_attribute_path() {
    let table = new_table("ops_decode").await;
    let good = order("acme", 1, "OPEN");
    let put_raw = |item: HashMap<String, AttributeValue>| {
        let client = table.client().clone();
        let name = table.name().to_string();
        async move { client.put_item().table_name(name).set_item(Some(item)).send().await.unwrap() }
    };

    // lines[1].qty holds a string.
    let mut item = good.to_item().unwrap();
    let line = |sku: &str, qty: AttributeValue| {
        AttributeValue::M(HashMap::from([("sku".to_string(), s(sku)), ("qty".to_string(), qty), ("price".to_string(), n("1.5"))]))
    };
    item.insert("lines".into(), AttributeValue::L(vec![line("A", n("1")), line("B", s("two"))]));
    put_raw(item).await;
    let expect_decode = |r: Result<Option<Order>, Error>, path: &str, problem: &str| match r {
        Err(Error::Decode { entity, path: p, problem: pr }) => {
            assert_eq!((entity.as_str(), p.as_str()), ("Order", path));
            assert!(pr.contains(problem), "{pr}");
        }
        other => panic!("expected Decode at {path}, got {other:?}"),
    };
    expect_decode(table.get::<Order>(&("acme".into(), 1)).await, "lines[1].qty", "expected type N, found S");
    let err = table.query::<Order>().pk(org("acme")).all().await.unwrap_err();
    assert!(
        err.to_string().contains("lines[1].qty") && err.to_string().contains("expected type N, found S"),
        "{err}"
    );

    // Top level: a wrong type, a missing attribute, a number that does
    // not fit, a set of the wrong kind.
    let cases: [(&str, Option<AttributeValue>, &str); 5] = [
        ("total", Some(s("19.25")), "expected type N, found S"),
        ("status", None, "missing"),
        ("seq", Some(n("-1")), "does not fit u64"),
        ("tags", Some(AttributeValue::Ns(vec!["1".into()])), "expected type SS, found NS"),
        ("lines", Some(AttributeValue::M(HashMap::new())), "expected type L, found M"),
    ];
    for (seq, (attr, value, problem)) in (2u64..).zip(cases) {
        let mut item = order("acme", seq, "OPEN").to_item().unwrap();
        match value {
            Some(v) => item.insert(attr.to_string(), v),
            None => item.remove(attr),
        };
        put_raw(item).await;
        expect_decode(table.get::<Order>(&("acme".into(), seq)).await, attr, problem);
    }
    // Nested map inside the list element: a wrong type deeper down.
    let mut item = order("acme", 10, "OPEN").to_item().unwrap();
    item.insert("lines".into(), AttributeValue::L(vec![AttributeValue::S("not a line".into())]));
    put_raw(item).await;
    expect_decode(table.get::<Order>(&("acme".into(), 10)).await, "lines[0]", "expected type M, found S");
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nan_and_empty_sets_are_refused_with_clear_errors_and_nothing_is_written() {
    let table = new_table("ops_invalid").await;
    let stored = order("acme", 1, "OPEN");
    table.put(&stored).await.unwrap();
    let before = scan(table.client(), table.name(), None).await;

    let mut nan = stored.clone();
    nan.total = f64::NAN;
    let mut inf_nested = stored.clone();
    inf_nested.lines[1].price = f64::INFINITY;
    let mut empty_set = stored.clone();
    empty_set.tags.clear();
    let mut huge = stored.clone();
    huge.total = 1e200;
    let mut new_key_nan = order("acme", 2, "OPEN");
    new_key_nan.lines[0].price = f64::NAN;

    let cases = [
        (&nan, "total", "NaN"),
        (&inf_nested, "lines[1].price", "NaN and infinities"),
        (&empty_set, "tags", "empty set"),
        (&huge, "total", "outside what DynamoDB stores"),
        (&new_key_nan, "lines[0].price", "NaN"),
    ];
    for (value, path, words) in cases {
        for (op, result) in [("put", table.put(value).await), ("create", table.create(value).await)] {
            match result {
                Err(Error::InvalidValue { entity, path: p, problem }) => {
                    assert_eq!((entity.as_str(), p.as_str()), ("Order", path), "{op}");
                    assert!(problem.contains(words), "{op}: {problem}");
                }
                other => panic!("{op} {path}: expected InvalidValue, got {other:?}"),
            }
        }
    }
    assert_eq!(scan(table.client(), table.name(), None).await, before, "nothing written");
    assert_eq!(table.get::<Order>(&("acme".into(), 1)).await.unwrap(), Some(stored));
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn items_over_400_kb_are_refused_before_sending() {
    let table = new_table("ops_size").await;
    let mut big = order("acme", 1, "OPEN");
    big.note = "x".repeat(MAX_ITEM_BYTES);
    let expected = item_size(&big.to_item().unwrap());
    match table.put(&big).await {
        Err(Error::ItemTooLarge { entity, size, max }) => {
            assert_eq!((entity.as_str(), size, max), ("Order", expected, 400 * 1024));
        }
        other => panic!("expected ItemTooLarge, got {other:?}"),
    }
    assert!(matches!(table.create(&big).await, Err(Error::ItemTooLarge { .. })));

    // The limit exactly: accepted by DynamoDB Local; one byte more is not
    // sent.
    let mut at_limit = order("acme", 2, "OPEN");
    let base = item_size(&at_limit.to_item().unwrap());
    at_limit.note = "y".repeat(MAX_ITEM_BYTES - base);
    assert_eq!(item_size(&at_limit.to_item().unwrap()), MAX_ITEM_BYTES);
    table.put(&at_limit).await.unwrap();
    let mut over = at_limit.clone();
    over.seq = 3;
    over.note.push('y');
    assert!(matches!(table.put(&over).await, Err(Error::ItemTooLarge { size, .. }) if size == MAX_ITEM_BYTES + 1));

    let raw = scan(table.client(), table.name(), None).await;
    assert_eq!(raw.len(), 1, "only the item at the limit is stored");
    assert_eq!(table.get::<Order>(&("acme".into(), 2)).await.unwrap(), Some(at_limit));
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delimiter_clash_is_refused_before_sending() {
    let table = new_table("ops_delim").await;
    let check = |r: Result<(), Error>, entity: &str, attribute: &str, field: &str| match r {
        Err(Error::KeyDelimiter { entity: e, attribute: a, field: f, delimiter }) => {
            assert_eq!((e.as_str(), a.as_str(), f.as_str(), delimiter), (entity, attribute, field, '#'));
        }
        other => panic!("expected KeyDelimiter, got {other:?}"),
    };
    // `project` is followed by `#` in the sort key.
    let clash = Task { org_id: "acme".into(), project: "p#1".into(), task: "t1".into(), title: "Write".into() };
    check(table.put(&clash).await, "Task", "sk", "project");
    check(table.create(&clash).await, "Task", "sk", "project");
    let key = ("acme".to_string(), "p#1".to_string(), "t1".to_string());
    check(table.get::<Task>(&key).await.map(drop), "Task", "sk", "project");
    check(table.delete::<Task>(&key).await, "Task", "sk", "project");
    let prefix = table
        .query::<Task>()
        .pk(org("acme"))
        .sk_begins_with(KeyParts::new().set("project", "p#"))
        .all()
        .await;
    check(prefix.map(drop), "Task", "sk", "project");
    let err = table.put(&clash).await.unwrap_err();
    assert!(err.to_string().contains("'#'") && err.to_string().contains("project"), "{err}");
    // In an index key: `team` is followed by `#` in gsi2's sort key.
    check(table.put(&user("acme", "u1", Some("r#d"))).await, "User", "gsi2sk", "team");
    assert!(scan(table.client(), table.name(), None).await.is_empty(), "nothing written");

    // The last placeholder takes the rest of the key, `#` included: no
    // other cut of the key could parse.
    let hashed = Task { org_id: "a#b".into(), project: "p1".into(), task: "t#1#".into(), title: String::new() };
    table.put(&hashed).await.unwrap();
    let item = hashed.to_item().unwrap();
    assert_eq!((&item["pk"], &item["sk"]), (&s("ORG#a#b"), &s("TASK#p1#t#1#")));
    let key = ("a#b".to_string(), "p1".to_string(), "t#1#".to_string());
    assert_eq!(table.get::<Task>(&key).await.unwrap(), Some(hashed.clone()));
    let p1 = table.query::<Task>().pk(org("a#b")).sk_begins_with(KeyParts::new().set("project", "p1")).all().await.unwrap();
    assert_eq!(p1, vec![hashed]);
    drop_table(&table).await;
}
