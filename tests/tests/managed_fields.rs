//! `#[item(version)]`, `#[item(ttl)]`, `#[item(created_at)]` and
//! `#[item(updated_at)]` against DynamoDB Local: optimistic locking with a
//! lost race, TTL stored as epoch seconds, timestamps kept and advanced.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use singletable::{Error, Item, Table, TableDesign};

use common::scan;

/// `ttl` is a reserved word.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Doc", pk = "DOC#{id}", sk = "DOC")]
struct Doc {
    id: String,
    body: String,
    #[item(version)]
    version: u64,
    #[item(ttl)]
    ttl: Option<SystemTime>,
    #[item(created_at)]
    created: Option<SystemTime>,
    #[item(updated_at)]
    updated: Option<SystemTime>,
}

/// TTL as plain epoch seconds; a renamed version attribute.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Session", pk = "SESSION#{id}", sk = "SESSION")]
struct Session {
    id: String,
    #[item(version, rename = "v")]
    revision: u32,
    #[item(ttl)]
    ttl: u64,
}

/// Timestamps without a version.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Event", pk = "EVENT#{id}", sk = "EVENT")]
struct Event {
    id: String,
    #[item(created_at)]
    at: Option<SystemTime>,
}

async fn new_table(prefix: &str) -> Table {
    let name = singletable_tests::unique_table_name(prefix);
    let design = TableDesign::new(name).entity::<Doc>().entity::<Session>().entity::<Event>().build().unwrap();
    let table = Table::new(singletable_tests::client().await, design);
    table.create_table().await.unwrap();
    table
}

async fn drop_table(table: &Table) {
    singletable_tests::delete_table(table.client(), table.name()).await;
}

fn doc(id: &str) -> Doc {
    Doc { id: id.into(), body: "hello".into(), version: 0, ttl: None, created: None, updated: None }
}

fn key(id: &str) -> (String,) {
    (id.to_string(),)
}

#[test]
fn the_design_records_managed_attributes_and_the_table_takes_the_ttl_attribute() {
    let m = &Doc::DESIGN.managed;
    assert_eq!(
        (m.version.as_deref(), m.ttl.as_deref(), m.created_at.as_deref(), m.updated_at.as_deref()),
        (Some("version"), Some("ttl"), Some("created"), Some("updated"))
    );
    assert_eq!(Session::DESIGN.managed.version.as_deref(), Some("v"));
    let design = TableDesign::new("t").entity::<Doc>().entity::<Session>().build().unwrap();
    assert_eq!(design.settings.ttl_attribute.as_deref(), Some("ttl"));
    // An explicit TTL attribute that disagrees with an entity's is refused.
    let err = TableDesign::new("t").ttl("expires").entity::<Doc>().build().unwrap_err();
    assert!(err.to_string().contains("a table has one TTL attribute"), "{err}");
    assert!(TableDesign::new("t").ttl("ttl").entity::<Doc>().build().is_ok());
    // The design file keeps them.
    let json = design.to_json();
    assert!(json.contains("\"managed\""), "{json}");
    assert_eq!(TableDesign::from_json(&json).unwrap(), design);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_write_bumps_the_version_and_a_stale_one_is_a_version_conflict() {
    let table = new_table("mf_version").await;
    let mut a = doc("d1");
    table.save(&mut a).await.unwrap();
    assert_eq!(a.version, 1);
    let stored = table.get::<Doc>(&key("d1")).await.unwrap().unwrap();
    assert_eq!(stored, a);

    // Two writers read version 1; the first write wins.
    let mut first = stored.clone();
    let mut second = stored.clone();
    first.body = "first".into();
    second.body = "second".into();
    table.save(&mut first).await.unwrap();
    assert_eq!(first.version, 2);
    let before = scan(table.client(), table.name(), None).await;
    let err = table.save(&mut second).await.unwrap_err();
    match &err {
        Error::VersionConflict { entity, pk, sk, expected, found } => {
            assert_eq!((entity.as_str(), pk.as_str(), sk.as_str()), ("Doc", "DOC#d1", "DOC"));
            assert_eq!((*expected, *found), (1, Some(2)));
        }
        other => panic!("expected VersionConflict, got {other:?}"),
    }
    assert!(err.to_string().contains("another writer"), "{err}");
    assert_eq!(second.version, 1, "a failed save leaves the value alone");
    assert_eq!(scan(table.client(), table.name(), None).await, before, "nothing was written");

    // Version 0 means new: refused when the item exists.
    let err = table.put(&doc("d1")).await.unwrap_err();
    assert!(matches!(err, Error::VersionConflict { expected: 0, found: Some(2), .. }), "{err:?}");
    // A version given for an item that does not exist.
    let err = table.put(&Doc { version: 4, ..doc("d2") }).await.unwrap_err();
    assert!(matches!(err, Error::VersionConflict { expected: 4, found: None, .. }), "{err:?}");

    // Updates bump it too, and check it when asked.
    let f = Doc::fields();
    let updated = table.update::<Doc>(&key("d1")).set(f.body, "third").send().await.unwrap();
    assert_eq!(updated.version, 3);
    let err = table.update::<Doc>(&key("d1")).set(f.body, "late").if_version(2).send().await.unwrap_err();
    assert!(matches!(err, Error::VersionConflict { expected: 2, found: Some(3), .. }), "{err:?}");
    let updated = table.update::<Doc>(&key("d1")).set(f.body, "fourth").if_version(3).send().await.unwrap();
    assert_eq!((updated.version, updated.body.as_str()), (4, "fourth"));

    // Versioned deletes.
    let err = table.delete_version::<Doc>(&key("d1"), 3).await.unwrap_err();
    assert!(matches!(err, Error::VersionConflict { expected: 3, found: Some(4), .. }), "{err:?}");
    let err = table.delete_version::<Doc>(&key("nope"), 3).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    table.delete_version::<Doc>(&key("d1"), 4).await.unwrap();
    assert!(table.get::<Doc>(&key("d1")).await.unwrap().is_none());
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_of_one_version_exactly_one_wins() {
    let table = Arc::new(new_table("mf_race").await);
    let mut base = doc("race");
    table.save(&mut base).await.unwrap();
    let writers = (0..8).map(|i| {
        let table = table.clone();
        let mut mine = Doc { body: format!("writer {i}"), ..base.clone() };
        tokio::spawn(async move { table.save(&mut mine).await.map(|()| mine) })
    });
    let results: Vec<Result<Doc, Error>> = futures::future::join_all(writers).await.into_iter().map(Result::unwrap).collect();
    let winners: Vec<&Doc> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, Error::VersionConflict { expected: 1, found: Some(2), .. }), "{e:?}");
        }
    }
    let stored = table.get::<Doc>(&key("race")).await.unwrap().unwrap();
    assert_eq!(&stored, winners[0]);
    assert_eq!(stored.version, 2);
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn created_at_is_kept_and_updated_at_advances() {
    let table = new_table("mf_stamps").await;
    let t0 = SystemTime::now();
    let mut d = doc("s1");
    table.save(&mut d).await.unwrap();
    let created = d.created.expect("created_at filled in");
    let updated = d.updated.expect("updated_at filled in");
    assert!(created >= t0 && updated >= created, "{created:?} {updated:?}");
    assert_eq!(table.get::<Doc>(&key("s1")).await.unwrap().unwrap(), d);

    tokio::time::sleep(Duration::from_millis(5)).await;
    d.body = "again".into();
    table.save(&mut d).await.unwrap();
    assert_eq!(d.created, Some(created), "kept");
    assert!(d.updated.unwrap() > updated, "advanced");
    let after_put = d.updated.unwrap();

    tokio::time::sleep(Duration::from_millis(5)).await;
    let f = Doc::fields();
    let u = table.update::<Doc>(&key("s1")).set(f.body, "updated").send().await.unwrap();
    assert_eq!(u.created, Some(created));
    assert!(u.updated.unwrap() > after_put);
    // Stored as epoch seconds with the fraction.
    let raw = &scan(table.client(), table.name(), None).await[0];
    let AttributeValue::N(text) = &raw["created"] else { panic!("{raw:?}") };
    let secs: f64 = text.parse().unwrap();
    assert!((secs - created.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()).abs() < 1e-3, "{text}");
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ttl_is_stored_as_whole_epoch_seconds() {
    let table = new_table("mf_ttl").await;
    let expires = UNIX_EPOCH + Duration::new(1_900_000_000, 250_000_000);
    let mut d = Doc { ttl: Some(expires), ..doc("t1") };
    table.save(&mut d).await.unwrap();
    let raw = &scan(table.client(), table.name(), None).await[0];
    // Rounded up: an item never expires before the time given.
    assert_eq!(raw["ttl"], AttributeValue::N("1900000001".into()));
    let stored = table.get::<Doc>(&key("t1")).await.unwrap().unwrap();
    assert_eq!(stored.ttl, Some(UNIX_EPOCH + Duration::from_secs(1_900_000_001)));

    // The ttl field is an ordinary field for updates and conditions.
    let f = Doc::fields();
    let later = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    let u = table
        .update::<Doc>(&key("t1"))
        .set(f.ttl, later)
        .condition(f.ttl.lt(later))
        .send()
        .await
        .unwrap();
    assert_eq!(u.ttl, Some(later));
    let u = table.update::<Doc>(&key("t1")).remove(f.ttl).send().await.unwrap();
    assert_eq!(u.ttl, None);

    // Epoch seconds as u64, in a renamed version attribute.
    let s = Session { id: "s".into(), revision: 0, ttl: 1_900_000_000 };
    table.put(&s).await.unwrap();
    let raw = scan(table.client(), table.name(), None).await.into_iter().find(|i| i["pk"] == AttributeValue::S("SESSION#s".into())).unwrap();
    assert_eq!(raw["ttl"], AttributeValue::N("1900000000".into()));
    assert_eq!(raw["v"], AttributeValue::N("1".into()));
    assert_eq!(table.get::<Session>(&key("s")).await.unwrap().unwrap(), Session { revision: 1, ..s });
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_writes_stamp_timestamps_and_refuse_versioned_entities() {
    let table = new_table("mf_batch").await;
    let t0 = SystemTime::now();
    let events: Vec<Event> = (0..3).map(|i| Event { id: format!("e{i}"), at: None }).collect();
    table.batch_write().put_all(&events).send().await.unwrap();
    for e in &events {
        let stored = table.get::<Event>(&key(&e.id)).await.unwrap().unwrap();
        assert!(stored.at.unwrap() >= t0);
    }
    // BatchWriteItem has no conditions: a versioned put there would skip
    // the version check, so it is refused before anything is sent.
    let err = table.batch_write().put(&Event { id: "e9".into(), at: None }).put(&doc("d1")).send().await.unwrap_err();
    assert!(err.to_string().contains("BatchWriteItem cannot check a version"), "{err}");
    assert!(table.get::<Event>(&key("e9")).await.unwrap().is_none(), "nothing was sent");
    drop_table(&table).await;
}
