//! `Table::update` against DynamoDB Local: every operation, key attributes
//! rewritten from the new values (GSI queries find the item under its new
//! key only), sparse indexes, stale-key refusals before sending, and
//! reserved words as attribute names.

mod common;

use std::collections::{BTreeSet, HashSet};

use aws_sdk_dynamodb::types::AttributeValue;
use singletable::{Error, Item, KeyParts, Table};

use common::scan;

/// `name`, `status`, `data` are DynamoDB reserved words.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "User", pk = "ORG#{org_id}", sk = "USER#{user_id}")]
#[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
#[item(index(name = "gsi2", pk = "ORG#{org_id}", sk = "TEAM#{team}#{user_id}"))]
struct User {
    org_id: String,
    user_id: String,
    email: String,
    name: String,
    status: String,
    data: Vec<String>,
    /// Sparse: a user without a team is not in `gsi2`.
    team: Option<String>,
    logins: u32,
    score: Option<i64>,
    tags: HashSet<String>,
    nicknames: Option<BTreeSet<String>>,
    ratio: f64,
}

/// An index key rendered from two fields that are not table key fields.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Product", pk = "SHOP#{shop}", sk = "PRODUCT#{sku}")]
#[item(index(name = "gsi1", pk = "CAT#{category}", sk = "PRICE#{price:08}#{title}"))]
struct Product {
    shop: String,
    sku: String,
    category: String,
    price: u32,
    title: String,
    stock: i32,
}

/// Shares the users' keys: an update of a `User` must not touch it.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Admin", pk = "ORG#{org_id}", sk = "USER#{user_id}")]
struct Admin {
    org_id: String,
    user_id: String,
    level: u8,
}

async fn new_table(prefix: &str) -> Table {
    common::new_table(prefix, vec![User::DESIGN.clone(), Product::DESIGN.clone(), Admin::DESIGN.clone()]).await
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
        status: "active".into(),
        data: vec!["a".into()],
        team: team.map(Into::into),
        logins: 0,
        score: None,
        tags: HashSet::from(["new".to_string()]),
        nicknames: None,
        ratio: 0.5,
    }
}

fn key(org: &str, id: &str) -> (String, String) {
    (org.to_string(), id.to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

async fn raw(table: &Table, pk: &str, sk: &str) -> std::collections::HashMap<String, AttributeValue> {
    scan(table.client(), table.name(), None)
        .await
        .into_iter()
        .find(|i| i["pk"] == s(pk) && i["sk"] == s(sk))
        .unwrap_or_else(|| panic!("no item ({pk}, {sk})"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operation_on_fields_named_with_reserved_words() {
    let table = new_table("upd_ops").await;
    let ann = user("acme", "ann", None);
    table.put(&ann).await.unwrap();
    let f = User::fields();

    let updated = table
        .update::<User>(&key("acme", "ann"))
        .set(f.name, "Ann")
        .set(f.status, "away")
        .append(f.data, ["b".to_string(), "c".to_string()])
        .add(f.logins, 3)
        .add(f.score, 10) // absent: counts as 0
        .add_to_set(f.tags, ["vip", "new"])
        .set_if_not_exists(f.nicknames, BTreeSet::from(["annie".to_string()]))
        .subtract(f.ratio, 0.25)
        .send()
        .await
        .unwrap();
    let expected = User {
        name: "Ann".into(),
        status: "away".into(),
        data: vec!["a".into(), "b".into(), "c".into()],
        logins: 3,
        score: Some(10),
        tags: HashSet::from(["new".to_string(), "vip".to_string()]),
        nicknames: Some(BTreeSet::from(["annie".to_string()])),
        ratio: 0.25,
        ..ann.clone()
    };
    assert_eq!(updated, expected);
    assert_eq!(table.get::<User>(&key("acme", "ann")).await.unwrap(), Some(expected.clone()));

    let updated = table
        .update::<User>(&key("acme", "ann"))
        .prepend(f.data, ["z".to_string()])
        .subtract(f.logins, 1)
        .subtract(f.score, 15)
        .delete_from_set(f.tags, ["new"])
        .set_if_not_exists(f.nicknames, BTreeSet::from(["ignored".to_string()]))
        .remove(f.team) // absent already: fine
        .send()
        .await
        .unwrap();
    assert_eq!(updated.data, ["z", "a", "b", "c"]);
    assert_eq!((updated.logins, updated.score), (2, Some(-5)));
    assert_eq!(updated.tags, HashSet::from(["vip".to_string()]));
    assert_eq!(updated.nicknames, Some(BTreeSet::from(["annie".to_string()])));

    // Deleting the last element removes the set attribute: an `Option`
    // set reads back as `None`.
    let updated = table
        .update::<User>(&key("acme", "ann"))
        .delete_from_set(f.nicknames, ["annie"])
        .remove(f.score)
        .send()
        .await
        .unwrap();
    assert_eq!((updated.nicknames, updated.score), (None, None));
    // Adding or deleting no elements is nothing to do; other changes go on.
    let updated = table
        .update::<User>(&key("acme", "ann"))
        .add_to_set(f.tags, Vec::<String>::new())
        .set(f.name, "Ann B.")
        .send()
        .await
        .unwrap();
    assert_eq!((updated.name.as_str(), updated.tags.len()), ("Ann B.", 1));
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn setting_an_index_field_moves_the_item_to_its_new_gsi_key_only() {
    let table = new_table("upd_gsi").await;
    let ann = user("acme", "ann", Some("red"));
    table.put(&ann).await.unwrap();
    let f = User::fields();
    let by_email = |email: &str| table.query::<User>().index("gsi1").pk(KeyParts::new().set("email", email)).all();
    assert_eq!(by_email("ann@acme.test").await.unwrap().len(), 1);

    let updated = table.update::<User>(&key("acme", "ann")).set(f.email, "ann@new.test").send().await.unwrap();
    assert_eq!(updated.email, "ann@new.test");
    let found = by_email("ann@new.test").await.unwrap();
    assert_eq!(found, vec![updated.clone()]);
    assert!(by_email("ann@acme.test").await.unwrap().is_empty());
    // Exactly the attributes `to_item` writes for the new value.
    let item = raw(&table, "ORG#acme", "USER#ann").await;
    let expected = updated.to_item().unwrap();
    assert_eq!(item, expected);

    // Team is part of gsi2's sort key; user_id and org_id come from the
    // table key.
    let updated = table.update::<User>(&key("acme", "ann")).set(f.team, Some("blue".to_string())).send().await.unwrap();
    let blue = table
        .query::<User>()
        .index("gsi2")
        .pk(KeyParts::new().set("org_id", "acme"))
        .sk_begins_with(KeyParts::new().set("team", "blue"))
        .all()
        .await
        .unwrap();
    assert_eq!(blue, vec![updated.clone()]);
    let red = table
        .query::<User>()
        .index("gsi2")
        .pk(KeyParts::new().set("org_id", "acme"))
        .sk_begins_with(KeyParts::new().set("team", "red"))
        .all()
        .await
        .unwrap();
    assert!(red.is_empty());
    assert_eq!(raw(&table, "ORG#acme", "USER#ann").await, updated.to_item().unwrap());

    // A value that would break the key is refused before sending.
    let before = scan(table.client(), table.name(), None).await;
    let err = table.update::<User>(&key("acme", "ann")).set(f.team, "a#b").send().await.unwrap_err();
    assert!(matches!(&err, Error::KeyDelimiter { attribute, field, .. } if attribute == "gsi2sk" && field == "team"), "{err:?}");
    let err = table.update::<User>(&key("acme", "ann")).set(f.email, "").send().await.unwrap_err();
    assert!(matches!(&err, Error::EmptyKey { attribute, .. } if attribute == "gsi1pk"), "{err:?}");
    assert_eq!(scan(table.client(), table.name(), None).await, before);
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sparse_index_loses_and_regains_the_item_with_its_optional_field() {
    let table = new_table("upd_sparse").await;
    table.put(&user("acme", "ann", Some("red"))).await.unwrap();
    table.put(&user("acme", "bob", Some("red"))).await.unwrap();
    let f = User::fields();
    let in_gsi2 = || async {
        let mut ids: Vec<String> = table
            .query::<User>()
            .index("gsi2")
            .pk(KeyParts::new().set("org_id", "acme"))
            .all()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.user_id)
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(in_gsi2().await, ["ann", "bob"]);

    // `set(None)` and `remove` both take the item out of the index.
    let ann = table.update::<User>(&key("acme", "ann")).set(f.team, None).send().await.unwrap();
    assert_eq!(ann.team, None);
    let bob = table.update::<User>(&key("acme", "bob")).remove(f.team).send().await.unwrap();
    assert_eq!(in_gsi2().await, Vec::<String>::new());
    for (id, u) in [("ann", &ann), ("bob", &bob)] {
        let item = raw(&table, "ORG#acme", &format!("USER#{id}")).await;
        assert!(!item.contains_key("gsi2pk") && !item.contains_key("gsi2sk") && !item.contains_key("team"), "{item:?}");
        assert_eq!(item, u.to_item().unwrap());
    }
    assert!(scan(table.client(), table.name(), Some("gsi2")).await.is_empty());

    // Setting it again puts the item back, with both index keys.
    let ann = table.update::<User>(&key("acme", "ann")).set(f.team, "green").send().await.unwrap();
    assert_eq!(in_gsi2().await, ["ann"]);
    assert_eq!(raw(&table, "ORG#acme", "USER#ann").await, ann.to_item().unwrap());
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_key_update_is_refused_before_sending_and_unchanged_values_are_checked() {
    let table = new_table("upd_stale").await;
    let lamp = Product { shop: "s1".into(), sku: "lamp".into(), category: "light".into(), price: 1200, title: "Lamp".into(), stock: 5 };
    table.put(&lamp).await.unwrap();
    let f = Product::fields();
    let k = ("s1".to_string(), "lamp".to_string());
    let before = scan(table.client(), table.name(), None).await;

    // gsi1sk = PRICE#{price:08}#{title}: the price alone cannot render it.
    let err = table.update::<Product>(&k).set(f.price, 999u32).send().await.unwrap_err();
    match &err {
        Error::StaleKey { entity, attribute, template, field, missing } => {
            assert_eq!(
                (entity.as_str(), attribute.as_str(), template.as_str(), field.as_str(), missing.as_str()),
                ("Product", "gsi1sk", "PRICE#{price:08}#{title}", "price", "title")
            );
        }
        other => panic!("expected StaleKey, got {other:?}"),
    }
    assert!(err.to_string().contains("unchanged"), "{err}");
    assert_eq!(scan(table.client(), table.name(), None).await, before, "nothing was written");

    // A wrong "unchanged" value: the condition fails, nothing is written.
    let err = table.update::<Product>(&k).set(f.price, 999u32).unchanged(f.title, "Lampe").send().await.unwrap_err();
    assert!(
        matches!(&err, Error::ConditionFailed { entity, reason, .. } if entity == "Product" && reason.contains("`title`")),
        "{err:?}"
    );
    assert_eq!(scan(table.client(), table.name(), None).await, before, "nothing was written");

    // With the current title, the key is rewritten.
    let cheaper = table.update::<Product>(&k).set(f.price, 999u32).unchanged(f.title, "Lamp").send().await.unwrap();
    assert_eq!(cheaper, Product { price: 999, ..lamp.clone() });
    let item = raw(&table, "SHOP#s1", "PRODUCT#lamp").await;
    assert_eq!(item["gsi1sk"], s("PRICE#00000999#Lamp"));
    assert_eq!(item, cheaper.to_item().unwrap());
    let cheap_lights = table
        .query::<Product>()
        .index("gsi1")
        .pk(KeyParts::new().set("category", "light"))
        .sk_between(KeyParts::new().set("price", 0u32), KeyParts::new().set("price", 1000u32))
        .all()
        .await
        .unwrap();
    assert_eq!(cheap_lights, vec![cheaper.clone()]);

    // Setting both fields needs nothing else; the category (gsi1pk) alone
    // renders from itself.
    let renamed = table.update::<Product>(&k).set(f.price, 1500u32).set(f.title, "Desk lamp").send().await.unwrap();
    assert_eq!(raw(&table, "SHOP#s1", "PRODUCT#lamp").await["gsi1sk"], s("PRICE#00001500#Desk lamp"));
    let moved = table.update::<Product>(&k).set(f.category, "office").send().await.unwrap();
    assert_eq!(raw(&table, "SHOP#s1", "PRODUCT#lamp").await, moved.to_item().unwrap());
    assert_eq!(moved, Product { category: "office".into(), ..renamed });
    let office = table.query::<Product>().index("gsi1").pk(KeyParts::new().set("category", "office")).all().await.unwrap();
    assert_eq!(office, vec![moved]);
    assert!(table.query::<Product>().index("gsi1").pk(KeyParts::new().set("category", "light")).all().await.unwrap().is_empty());

    // A padded price too wide for its template is refused too.
    let before = scan(table.client(), table.name(), None).await;
    let err = table.update::<Product>(&k).set(f.price, 1_000_000_000u32).unchanged(f.title, "Desk lamp").send().await.unwrap_err();
    assert!(matches!(&err, Error::KeyFormat { attribute, .. } if attribute == "gsi1sk"), "{err:?}");
    assert_eq!(scan(table.client(), table.name(), None).await, before);
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn updates_need_an_existing_item_of_the_entity_and_meet_their_conditions() {
    let table = new_table("upd_cond").await;
    table.put(&user("acme", "ann", None)).await.unwrap();
    table.put(&Admin { org_id: "acme".into(), user_id: "eve".into(), level: 1 }).await.unwrap();
    let f = User::fields();
    let before = scan(table.client(), table.name(), None).await;

    // No item: not created (an update never makes a half item).
    let err = table.update::<User>(&key("acme", "nobody")).set(f.name, "X").send().await.unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { entity, pk, sk } if entity == "User" && pk == "ORG#acme" && sk == "USER#nobody"),
        "{err:?}"
    );
    // An admin at a user's key is not a user.
    let err = table.update::<User>(&key("acme", "eve")).set(f.name, "X").send().await.unwrap_err();
    assert!(matches!(&err, Error::WrongEntity { found: Some(found), .. } if found == "Admin"), "{err:?}");
    // A false condition.
    let err = table
        .update::<User>(&key("acme", "ann"))
        .set(f.status, "banned")
        .condition(f.status.eq("inactive") | f.logins.gt(100u32))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ConditionFailed { operation: "UpdateItem", reason, .. } if reason == "the condition did not hold"),
        "{err:?}"
    );
    assert_eq!(scan(table.client(), table.name(), None).await, before, "nothing was written");

    // True conditions (several calls AND together).
    let done = table
        .update::<User>(&key("acme", "ann"))
        .set(f.status, "banned")
        .condition(f.status.eq("active"))
        .condition(f.name.begins_with("User") & f.tags.contains("new") & f.data.size().eq(1))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status, "banned");
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_updates_are_refused_before_sending() {
    let table = new_table("upd_refuse").await;
    table.put(&user("acme", "ann", None)).await.unwrap();
    let f = User::fields();
    let before = scan(table.client(), table.name(), None).await;
    let k = key("acme", "ann");

    let err = table.update::<User>(&k).set(f.name, "a").set(f.name, "b").send().await.unwrap_err();
    assert!(matches!(&err, Error::InvalidUpdate { reason, .. } if reason.contains("changed twice")), "{err:?}");
    let err = table.update::<User>(&k).set(f.name, "a").unchanged(f.name, "b").send().await.unwrap_err();
    assert!(matches!(&err, Error::InvalidUpdate { reason, .. } if reason.contains("both changed and given")), "{err:?}");
    let err = table.update::<User>(&k).send().await.unwrap_err();
    assert!(matches!(&err, Error::InvalidUpdate { reason, .. } if reason.contains("nothing to change")), "{err:?}");
    let err = table.update::<User>(&k).set(f.ratio, f64::NAN).send().await.unwrap_err();
    assert!(matches!(&err, Error::InvalidValue { path, .. } if path == "ratio"), "{err:?}");
    let err = table.update::<User>(&k).set(f.tags, HashSet::new()).send().await.unwrap_err();
    assert!(matches!(&err, Error::InvalidValue { path, problem, .. } if path == "tags" && problem.contains("empty set")), "{err:?}");
    let err = table.update::<User>(&k).add(f.ratio, f64::INFINITY).send().await.unwrap_err();
    assert!(matches!(&err, Error::InvalidValue { path, .. } if path == "ratio"), "{err:?}");
    let err = table.update::<User>(&k).set(f.name, "x").condition(f.ratio.lt(f64::NAN)).send().await.unwrap_err();
    assert!(matches!(&err, Error::InvalidValue { path, .. } if path == "ratio"), "{err:?}");
    let err = table.update::<User>(&("acme".into(), String::new())).set(f.name, "x").send().await.unwrap_err();
    assert!(matches!(&err, Error::EmptyKey { .. }), "{err:?}");
    assert_eq!(scan(table.client(), table.name(), None).await, before, "nothing was written");
    drop_table(&table).await;
}
