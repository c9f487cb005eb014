//! Smoke tests of the DynamoDB Local harness, with raw aws-sdk calls only.
//!
//! They pin down the behaviour singletable relies on: that DynamoDB Local,
//! like the real service, refuses empty strings in base-table and GSI key
//! attributes (other emulators have accepted them).

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use singletable_tests::{client, delete_table, unique_table_name};

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn attr(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .unwrap()
}

fn key(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .unwrap()
}

/// Creates a PAY_PER_REQUEST table keyed on `pk`/`sk` (S), optionally with a
/// GSI `gsi1` on `gsi1pk`/`gsi1sk` (S) projecting everything.
async fn create_table(client: &Client, name: &str, with_gsi: bool) {
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range));
    if with_gsi {
        req = req
            .attribute_definitions(attr("gsi1pk"))
            .attribute_definitions(attr("gsi1sk"))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name("gsi1")
                    .key_schema(key("gsi1pk", KeyType::Hash))
                    .key_schema(key("gsi1sk", KeyType::Range))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .unwrap(),
            );
    }
    req.send()
        .await
        .unwrap_or_else(|e| panic!("create_table {name}: {}", DisplayErrorContext(&e)));
}

/// The full text of an SDK error (code, message and source chain).
fn error_text<E, R>(err: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    format!("{}", DisplayErrorContext(err))
}

#[tokio::test(flavor = "multi_thread")]
async fn put_and_get_item_round_trip() {
    let client = client().await;
    let table = unique_table_name("smoke_put_get");
    create_table(&client, &table, false).await;

    client
        .put_item()
        .table_name(&table)
        .item("pk", s("USER#1"))
        .item("sk", s("PROFILE"))
        .item("name", s("Ada"))
        .item("logins", AttributeValue::N("3".into()))
        .item("note", s("")) // empty non-key strings are allowed
        .send()
        .await
        .unwrap_or_else(|e| panic!("put_item: {}", error_text(&e)));

    let got = client
        .get_item()
        .table_name(&table)
        .key("pk", s("USER#1"))
        .key("sk", s("PROFILE"))
        .consistent_read(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get_item: {}", error_text(&e)));
    let item: HashMap<String, AttributeValue> = got.item.expect("item should exist");
    assert_eq!(item.get("name"), Some(&s("Ada")));
    assert_eq!(item.get("logins"), Some(&AttributeValue::N("3".into())));
    assert_eq!(item.get("note"), Some(&s("")));

    delete_table(&client, &table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_local_rejects_empty_base_table_key_written_raw() {
    let client = client().await;
    let table = unique_table_name("smoke_empty_pk");
    create_table(&client, &table, false).await;

    let err = client
        .put_item()
        .table_name(&table)
        .item("pk", s(""))
        .item("sk", s("X"))
        .send()
        .await
        .expect_err("DynamoDB Local must reject an empty partition key");
    let text = error_text(&err);
    assert!(
        text.contains("empty string value"),
        "unexpected error text: {text}"
    );
    assert!(text.contains("Key: pk"), "unexpected error text: {text}");

    let err = client
        .put_item()
        .table_name(&table)
        .item("pk", s("X"))
        .item("sk", s(""))
        .send()
        .await
        .expect_err("DynamoDB Local must reject an empty sort key");
    let text = error_text(&err);
    assert!(
        text.contains("empty string value"),
        "unexpected error text: {text}"
    );

    delete_table(&client, &table).await;
}

/// Required by the spec: DynamoDB Local itself rejects a raw write whose GSI
/// key attribute is an empty string (and so must singletable, before sending).
#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_local_rejects_empty_gsi_key_written_raw() {
    let client = client().await;
    let table = unique_table_name("smoke_empty_gsi");
    create_table(&client, &table, true).await;

    let err = client
        .put_item()
        .table_name(&table)
        .item("pk", s("ORG#1"))
        .item("sk", s("META"))
        .item("gsi1pk", s(""))
        .item("gsi1sk", s("X"))
        .send()
        .await
        .expect_err("DynamoDB Local must reject an empty GSI partition key");
    let text = error_text(&err);
    assert!(
        text.contains("empty string value"),
        "unexpected error text: {text}"
    );
    assert!(
        text.contains("secondary index key"),
        "unexpected error text: {text}"
    );
    assert!(
        text.contains("IndexName: gsi1"),
        "unexpected error text: {text}"
    );

    let err = client
        .put_item()
        .table_name(&table)
        .item("pk", s("ORG#1"))
        .item("sk", s("META"))
        .item("gsi1pk", s("X"))
        .item("gsi1sk", s(""))
        .send()
        .await
        .expect_err("DynamoDB Local must reject an empty GSI sort key");
    let text = error_text(&err);
    assert!(
        text.contains("empty string value"),
        "unexpected error text: {text}"
    );

    // Nothing was written by either attempt.
    let got = client
        .get_item()
        .table_name(&table)
        .key("pk", s("ORG#1"))
        .key("sk", s("META"))
        .consistent_read(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get_item: {}", error_text(&e)));
    assert!(got.item.is_none(), "rejected item must not be stored");

    // The same item without the GSI attributes at all is fine (sparse index).
    client
        .put_item()
        .table_name(&table)
        .item("pk", s("ORG#1"))
        .item("sk", s("META"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put_item without gsi keys: {}", error_text(&e)));

    delete_table(&client, &table).await;
}

#[test]
fn unique_table_names_are_valid_and_distinct() {
    let a = unique_table_name("orders");
    let b = unique_table_name("orders");
    assert_ne!(a, b);
    let long = unique_table_name(&"x/y ".repeat(200));
    for name in [&a, &b, &long] {
        assert!(name.len() >= 3 && name.len() <= 255, "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')),
            "{name}"
        );
    }
    assert!(unique_table_name("").len() >= 3);
}
