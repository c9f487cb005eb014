//! `Table::batch_write` and `Table::batch_get` against DynamoDB Local.
//!
//! The retry path is tested with the real client wrapped by an SDK
//! interceptor ([`Unprocess`]): before a BatchWriteItem / BatchGetItem is
//! serialized it takes some requests out of the call (so they are never
//! sent), and after the call it reports exactly those as
//! `UnprocessedItems` / `UnprocessedKeys`, as a throttled DynamoDB would.

mod common;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::{BeforeSerializationInterceptorContextMut, FinalizerInterceptorContextMut};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::operation::batch_get_item::{BatchGetItemInput, BatchGetItemOutput};
use aws_sdk_dynamodb::operation::batch_write_item::{BatchWriteItemInput, BatchWriteItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, KeysAndAttributes, WriteRequest};
use aws_sdk_dynamodb::Client;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use singletable::{BatchOp, Error, Item, RetryPolicy, Table};

#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "User", pk = "ORG#{org_id}", sk = "USER#{user_id}")]
#[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
struct User {
    org_id: String,
    user_id: String,
    email: String,
    age: u32,
}

#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Note", pk = "ORG#{org_id}", sk = "NOTE#{n:06}")]
struct Note {
    org_id: String,
    n: u32,
    text: String,
}

#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Stranger", pk = "S#{id}", sk = "S")]
struct Stranger {
    id: String,
}

fn user(org: &str, i: usize) -> User {
    User { org_id: org.into(), user_id: format!("u{i:04}"), email: format!("u{i}@{org}.test"), age: i as u32 }
}

fn note(org: &str, n: u32) -> Note {
    Note { org_id: org.into(), n, text: format!("note {n}") }
}

fn user_key(org: &str, i: usize) -> (String, String) {
    (org.to_string(), format!("u{i:04}"))
}

async fn new_table(prefix: &str, client: Client) -> Table {
    let table = common::new_table(prefix, vec![User::DESIGN.clone(), Note::DESIGN.clone()]).await;
    Table::new(client, table.design().clone())
}

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy { max_attempts, base_delay: Duration::from_millis(1), max_delay: Duration::from_millis(20) }
}

// ---------------------------------------------------------------------------
// The interceptor

/// Which requests to hold back: given the call number (1-based, per
/// operation kind) and a request's `sk`, whether to drop it from that call.
type Rule = dyn Fn(usize, &str) -> bool + Send + Sync;

#[derive(Default)]
struct Counters {
    write_calls: AtomicUsize,
    get_calls: AtomicUsize,
    dropped: AtomicUsize,
}

struct Unprocess {
    rule: Box<Rule>,
    counters: Arc<Counters>,
}

impl fmt::Debug for Unprocess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Unprocess")
    }
}

/// What one call held back, carried from serialization to completion.
#[derive(Debug, Clone)]
enum Held {
    Writes(String, Vec<WriteRequest>),
    Keys(String, KeysAndAttributes),
}

impl Storable for Held {
    type Storer = StoreReplace<Self>;
}

fn sk_of(map: &HashMap<String, AttributeValue>) -> &str {
    map.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or("")
}

/// A delete of an item that never exists: stands in for a call whose
/// every request was held back (DynamoDB refuses an empty call).
fn harmless_delete() -> WriteRequest {
    let key = HashMap::from([("pk".to_string(), AttributeValue::S("NOBODY".into())), ("sk".to_string(), AttributeValue::S("NOTHING".into()))]);
    WriteRequest::builder().delete_request(DeleteRequest::builder().set_key(Some(key)).build().unwrap()).build()
}

impl Intercept for Unprocess {
    fn name(&self) -> &'static str {
        "Unprocess"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let input = context.input_mut();
        if let Some(input) = input.downcast_mut::<BatchWriteItemInput>() {
            let call = self.counters.write_calls.fetch_add(1, Ordering::SeqCst) + 1;
            let items = input.request_items.as_mut().expect("request items");
            let (table, requests) = items.iter_mut().next().expect("one table");
            let (held, kept): (Vec<WriteRequest>, Vec<WriteRequest>) = std::mem::take(requests).into_iter().partition(|r| {
                let map = r.put_request.as_ref().map(|p| &p.item).or(r.delete_request.as_ref().map(|d| &d.key)).unwrap();
                (self.rule)(call, sk_of(map))
            });
            *requests = if kept.is_empty() { vec![harmless_delete()] } else { kept };
            self.counters.dropped.fetch_add(held.len(), Ordering::SeqCst);
            cfg.interceptor_state().store_put(Held::Writes(table.clone(), held));
        } else if let Some(input) = input.downcast_mut::<BatchGetItemInput>() {
            let call = self.counters.get_calls.fetch_add(1, Ordering::SeqCst) + 1;
            let items = input.request_items.as_mut().expect("request items");
            let (table, keys) = items.iter_mut().next().expect("one table");
            let all = std::mem::take(&mut keys.keys);
            let (held, kept): (Vec<_>, Vec<_>) = all.into_iter().partition(|k| (self.rule)(call, sk_of(k)));
            keys.keys = if kept.is_empty() {
                vec![HashMap::from([("pk".to_string(), AttributeValue::S("NOBODY".into())), ("sk".to_string(), AttributeValue::S("NOTHING".into()))])]
            } else {
                kept
            };
            self.counters.dropped.fetch_add(held.len(), Ordering::SeqCst);
            let mut unprocessed = keys.clone();
            unprocessed.keys = held;
            cfg.interceptor_state().store_put(Held::Keys(table.clone(), unprocessed));
        }
        Ok(())
    }

    fn modify_before_attempt_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let Some(held) = cfg.load::<Held>().cloned() else { return Ok(()) };
        let Some(Ok(output)) = context.output_or_error_mut() else { return Ok(()) };
        match held {
            Held::Writes(table, held) if !held.is_empty() => {
                let out = output.downcast_mut::<BatchWriteItemOutput>().expect("BatchWriteItem output");
                out.unprocessed_items.get_or_insert_with(HashMap::new).entry(table).or_default().extend(held);
            }
            Held::Keys(table, held) if !held.keys.is_empty() => {
                let out = output.downcast_mut::<BatchGetItemOutput>().expect("BatchGetItem output");
                out.unprocessed_keys.get_or_insert_with(HashMap::new).insert(table, held);
            }
            _ => {}
        }
        Ok(())
    }
}

/// The test client wrapped with an [`Unprocess`] interceptor.
async fn unprocessing_client(rule: impl Fn(usize, &str) -> bool + Send + Sync + 'static) -> (Client, Arc<Counters>) {
    let base = singletable_tests::client().await;
    let counters = Arc::new(Counters::default());
    let config = base.config().to_builder().interceptor(Unprocess { rule: Box::new(rule), counters: counters.clone() }).build();
    (Client::from_conf(config), counters)
}

async fn stored_users(table: &Table) -> Vec<User> {
    let mut users: Vec<User> = common::scan(table.client(), table.name(), None)
        .await
        .into_iter()
        .filter(|i| User::DESIGN.owns(i))
        .map(|i| User::from_item(i).unwrap())
        .collect();
    users.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    users
}

// ---------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread")]
async fn batch_write_and_get_cover_many_calls_of_mixed_entities() {
    let client = singletable_tests::client().await;
    let table = new_table("batch_mixed", client).await;
    let users: Vec<User> = (0..130).map(|i| user("acme", i)).collect();
    let notes: Vec<Note> = (0..40).map(|n| note("acme", n)).collect();
    let summary = table.batch_write().put_all(&users).put_all(&notes).concurrency(3).send().await.unwrap();
    assert_eq!(summary.requests, 170);
    assert_eq!(summary.calls, 7, "170 requests in calls of 25");
    assert_eq!(summary.resubmitted, 0);
    assert_eq!(stored_users(&table).await, users);

    // 250 keys (three calls of at most 100), 20 of them absent: one entry
    // per key, in the order given.
    let keys: Vec<(String, String)> = (0..250).map(|i| user_key("acme", i)).collect();
    let got = table.batch_get::<User>(&keys).consistent(true).send().await.unwrap();
    assert_eq!(got.len(), 250);
    for (i, item) in got.iter().enumerate() {
        assert_eq!(item.as_ref(), users.get(i), "key {i}");
    }

    // Deletes mixed with puts of another entity.
    let summary = table
        .batch_write()
        .delete_all::<User>(&keys[..100])
        .put(&note("acme", 999))
        .delete::<Note>(&("acme".to_string(), 0))
        .send()
        .await
        .unwrap();
    assert_eq!(summary.requests, 102);
    assert_eq!(stored_users(&table).await, users[100..]);
    let notes_left = table.batch_get::<Note>(&[("acme".to_string(), 0), ("acme".to_string(), 999)]).send().await.unwrap();
    assert_eq!(notes_left, vec![None, Some(note("acme", 999))]);

    // An empty batch sends nothing.
    let summary = table.batch_write().send().await.unwrap();
    assert_eq!((summary.requests, summary.calls), (0, 0));
    assert!(table.batch_get::<User>(&[]).send().await.unwrap().is_empty());
    singletable_tests::delete_table(table.client(), table.name()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unprocessed_items_are_resubmitted_until_written() {
    // The first 6 calls each hold back every request whose user number is
    // odd; resubmissions then go through.
    let (client, counters) = unprocessing_client(|call, sk| {
        call <= 6 && sk.strip_prefix("USER#u").and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| n % 2 == 1)
    })
    .await;
    let table = new_table("batch_retry", client).await;
    let users: Vec<User> = (0..100).map(|i| user("acme", i)).collect();
    let summary = table.batch_write().put_all(&users).concurrency(2).retry(fast_retry(4)).send().await.unwrap();
    let dropped = counters.dropped.load(Ordering::SeqCst);
    assert!(dropped >= 50, "the interceptor held back {dropped} requests");
    assert_eq!(summary.resubmitted, dropped, "every held-back request was resubmitted");
    assert_eq!(summary.calls, counters.write_calls.load(Ordering::SeqCst));
    assert_eq!(stored_users(&table).await, users, "every item ends up written");
    singletable_tests::delete_table(table.client(), table.name()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn items_that_never_get_through_are_listed_in_the_error() {
    let blocked = ["USER#u0007", "USER#u0031", "USER#u0032"];
    let (client, counters) = unprocessing_client(move |_, sk| blocked.contains(&sk)).await;
    let table = new_table("batch_never", client).await;
    let users: Vec<User> = (0..60).map(|i| user("acme", i)).collect();
    let err = table.batch_write().put_all(&users).retry(fast_retry(3)).send().await.unwrap_err();
    match &err {
        Error::BatchIncomplete { operation, total, failed, reason, .. } => {
            assert_eq!(*operation, "BatchWriteItem");
            assert_eq!(*total, 60);
            let listed: Vec<(usize, &str, BatchOp, &str)> =
                failed.iter().map(|f| (f.index, f.entity.as_str(), f.op, f.key.sk.as_str())).collect();
            assert_eq!(
                listed,
                [
                    (7, "User", BatchOp::Put, "USER#u0007"),
                    (31, "User", BatchOp::Put, "USER#u0031"),
                    (32, "User", BatchOp::Put, "USER#u0032")
                ]
            );
            assert!(reason.contains("after 3 calls in a row without progress"), "{reason}");
        }
        other => panic!("expected BatchIncomplete, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("3 of 60 requests not done"), "{text}");
    assert!(text.contains("#7 put User (ORG#acme, USER#u0007)"), "{text}");
    // Two of the three calls hold blocked items: each is sent once, then
    // three more times without progress, no more.
    assert_eq!(counters.write_calls.load(Ordering::SeqCst), 1 + 2 * (1 + 3));
    // Everything else is written; the blocked ones are not.
    let stored = stored_users(&table).await;
    let expected: Vec<User> = users.into_iter().filter(|u| !blocked.contains(&format!("USER#{}", u.user_id).as_str())).collect();
    assert_eq!(stored, expected);
    singletable_tests::delete_table(table.client(), table.name()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unprocessed_keys_are_resubmitted_and_the_rest_reported() {
    let client = singletable_tests::client().await;
    let table = new_table("batch_get_retry", client).await;
    let users: Vec<User> = (0..150).map(|i| user("acme", i)).collect();
    table.batch_write().put_all(&users).send().await.unwrap();
    let keys: Vec<(String, String)> = (0..150).map(|i| user_key("acme", i)).collect();

    // Held back on the first three calls: resubmitted and read.
    let (flaky, counters) = unprocessing_client(|call, sk| call <= 3 && sk.ends_with('5')).await;
    let flaky_table = Table::new(flaky, table.design().clone());
    let (got, summary) = flaky_table.batch_get::<User>(&keys).retry(fast_retry(4)).send_with_summary().await.unwrap();
    assert!(counters.dropped.load(Ordering::SeqCst) >= 15);
    assert_eq!(summary.resubmitted, counters.dropped.load(Ordering::SeqCst));
    assert_eq!(got.into_iter().map(Option::unwrap).collect::<Vec<_>>(), users);

    // Never served: listed.
    let (stuck, _) = unprocessing_client(|_, sk| sk == "USER#u0120").await;
    let stuck_table = Table::new(stuck, table.design().clone());
    let err = stuck_table.batch_get::<User>(&keys).retry(fast_retry(2)).send().await.unwrap_err();
    match &err {
        Error::BatchIncomplete { operation: "BatchGetItem", failed, total: 150, .. } => {
            assert_eq!(failed.len(), 1);
            assert_eq!((failed[0].index, failed[0].op, failed[0].key.sk.as_str()), (120, BatchOp::Get, "USER#u0120"));
        }
        other => panic!("expected BatchIncomplete, got {other:?}"),
    }
    singletable_tests::delete_table(table.client(), table.name()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_and_invalid_items_are_refused_before_anything_is_sent() {
    let (client, counters) = unprocessing_client(|_, _| false).await;
    let table = new_table("batch_refuse", client).await;
    let users: Vec<User> = (0..30).map(|i| user("acme", i)).collect();

    // The same key twice (a put and a delete of it, far apart).
    let err = table.batch_write().put_all(&users).delete::<User>(&user_key("acme", 3)).send().await.unwrap_err();
    match &err {
        Error::DuplicateKey { operation, entity, key, first, second, .. } => {
            assert_eq!((*operation, entity.as_str(), key.pk.as_str(), key.sk.as_str()), ("BatchWriteItem", "User", "ORG#acme", "USER#u0003"));
            assert_eq!((*first, *second), (3, 30));
        }
        other => panic!("expected DuplicateKey, got {other:?}"),
    }
    assert!(err.to_string().contains("requests 3 and 30 both address User (ORG#acme, USER#u0003)"), "{err}");

    // An empty key part at request 5.
    let mut bad = users.clone();
    bad[5].email = String::new();
    let err = table.batch_write().put_all(&bad).send().await.unwrap_err();
    match &err {
        Error::BatchRequest { index: 5, source, .. } => assert!(matches!(**source, Error::EmptyKey { .. }), "{source:?}"),
        other => panic!("expected BatchRequest at 5, got {other:?}"),
    }
    assert!(err.to_string().starts_with(&format!("BatchWriteItem on table `{}`: request 5: User: key attribute `gsi1pk`", table.name())), "{err}");

    // An entity the table does not know.
    let err = table.batch_write().put(&users[0]).put(&Stranger { id: "x".into() }).send().await.unwrap_err();
    assert!(matches!(&err, Error::BatchRequest { index: 1, source, .. } if matches!(**source, Error::Design(_))), "{err:?}");

    // Duplicate keys in a read.
    let err = table.batch_get::<User>(&[user_key("acme", 1), user_key("acme", 2), user_key("acme", 1)]).send().await.unwrap_err();
    assert!(matches!(err, Error::DuplicateKey { operation: "BatchGetItem", first: 0, second: 2, .. }), "{err:?}");

    assert_eq!(counters.write_calls.load(Ordering::SeqCst), 0, "nothing was sent");
    assert_eq!(counters.get_calls.load(Ordering::SeqCst), 0, "nothing was sent");
    assert!(common::scan(table.client(), table.name(), None).await.is_empty());
    singletable_tests::delete_table(table.client(), table.name()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_call_lists_everything_not_written() {
    let client = singletable_tests::client().await;
    let design = singletable::TableDesign::new(singletable_tests::unique_table_name("batch_missing")).entity::<User>().build().unwrap();
    // The table does not exist.
    let table = Table::new(client, design);
    let users: Vec<User> = (0..60).map(|i| user("acme", i)).collect();
    let err = table.batch_write().put_all(&users).concurrency(1).send().await.unwrap_err();
    match &err {
        Error::BatchIncomplete { failed, total: 60, source: Some(source), .. } => {
            assert_eq!(failed.len(), 60, "every request is listed");
            assert_eq!(failed.iter().map(|f| f.index).collect::<Vec<_>>(), (0..60).collect::<Vec<_>>());
            assert!(matches!(**source, Error::Dynamo { operation: "BatchWriteItem", .. }), "{source:?}");
        }
        other => panic!("expected BatchIncomplete with a source, got {other:?}"),
    }
}
