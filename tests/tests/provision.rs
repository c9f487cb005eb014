//! `Table::create_table` and `Table::ensure` against DynamoDB Local:
//! settings, idempotence, drift reported as data, and the point-in-time
//! recovery warning (DynamoDB Local has no UpdateContinuousBackups).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, StreamViewType, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;
use singletable::{Applied, Drift, EntityDesign, Item, StreamView, Table, TableDesign};

#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
#[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
struct User {
    org: String,
    id: String,
    email: String,
    expires: Option<u64>,
}

/// The same entity, with its index renamed (a design change).
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
#[item(index(name = "gsi2", pk = "EMAIL#{email}", sk = "USER"))]
struct UserV2 {
    org: String,
    id: String,
    email: String,
}

fn design(name: &str, entity: &EntityDesign, ttl: Option<&str>, stream: Option<StreamView>, pitr: bool) -> TableDesign {
    let mut b = TableDesign::new(name).entity_design(entity.clone()).point_in_time_recovery(pitr);
    if let Some(t) = ttl {
        b = b.ttl(t);
    }
    if let Some(s) = stream {
        b = b.stream(s);
    }
    b.build().unwrap()
}

async fn live_stream(client: &Client, table: &str) -> Option<StreamViewType> {
    let t = client.describe_table().table_name(table).send().await.unwrap().table.unwrap();
    t.stream_specification().filter(|s| s.stream_enabled()).and_then(|s| s.stream_view_type().cloned())
}

async fn live_ttl(client: &Client, table: &str) -> Option<String> {
    let out = client.describe_time_to_live().table_name(table).send().await.unwrap();
    out.time_to_live_description()
        .filter(|t| t.time_to_live_status() == Some(&TimeToLiveStatus::Enabled))
        .and_then(|t| t.attribute_name().map(str::to_string))
}

#[tokio::test(flavor = "multi_thread")]
async fn create_table_applies_every_setting_and_warns_about_pitr() {
    let client = singletable_tests::client().await;
    let name = singletable_tests::unique_table_name("prov_create");
    let table = Table::new(client.clone(), design(&name, User::DESIGN, Some("expires"), Some(StreamView::NewAndOldImages), true));
    let report = table.create_table().await.unwrap();
    assert!(report.created());
    assert_eq!(
        report.applied,
        [
            Applied::CreatedTable,
            Applied::EnabledStream { view: StreamView::NewAndOldImages },
            Applied::EnabledTtl { attribute: "expires".into() }
        ]
    );
    assert!(report.drift.is_empty(), "{report}");
    assert_eq!(report.warnings.len(), 1, "{report}");
    assert!(report.warnings[0].contains("point-in-time recovery requested, but this endpoint does not support it"), "{report}");

    let desc = client.describe_table().table_name(&name).send().await.unwrap().table.unwrap();
    assert_eq!(desc.billing_mode_summary().and_then(|b| b.billing_mode()), Some(&BillingMode::PayPerRequest));
    let mut attrs: Vec<(&str, &ScalarAttributeType)> =
        desc.attribute_definitions().iter().map(|a| (a.attribute_name(), a.attribute_type())).collect();
    attrs.sort();
    assert_eq!(
        attrs,
        [("gsi1pk", &ScalarAttributeType::S), ("gsi1sk", &ScalarAttributeType::S), ("pk", &ScalarAttributeType::S), ("sk", &ScalarAttributeType::S)]
    );
    assert_eq!(desc.global_secondary_indexes().len(), 1);
    assert_eq!(live_stream(&client, &name).await, Some(StreamViewType::NewAndOldImages));
    assert_eq!(live_ttl(&client, &name).await.as_deref(), Some("expires"));

    // The table now matches: ensure changes nothing (the warning stays).
    let again = table.ensure().await.unwrap();
    assert!(again.applied.is_empty() && again.in_sync(), "{again}");
    assert_eq!(again.warnings.len(), 1);
    singletable_tests::delete_table(&client, &name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ensure_creates_what_is_missing_and_is_idempotent() {
    let client = singletable_tests::client().await;
    let name = singletable_tests::unique_table_name("prov_ensure");
    // No table yet: ensure creates it.
    let bare = Table::new(client.clone(), design(&name, User::DESIGN, None, None, false));
    let report = bare.ensure().await.unwrap();
    assert_eq!(report.applied, [Applied::CreatedTable]);
    assert!(report.in_sync() && report.warnings.is_empty(), "{report}");
    let report = bare.ensure().await.unwrap();
    assert_eq!(report, singletable::ProvisionReport { table: name.clone(), ..Default::default() });
    assert_eq!(report.to_string(), format!("table `{name}`: matches the design, nothing to do"));

    // The design gains a TTL and a stream: ensure turns them on, once.
    let full = Table::new(client.clone(), design(&name, User::DESIGN, Some("expires"), Some(StreamView::NewImage), false));
    let report = full.ensure().await.unwrap();
    assert_eq!(
        report.applied,
        [Applied::EnabledStream { view: StreamView::NewImage }, Applied::EnabledTtl { attribute: "expires".into() }]
    );
    assert!(!report.created());
    assert_eq!(
        report.to_string(),
        format!("table `{name}`:\n  + turned on the stream (NEW_IMAGE)\n  + turned on time to live on `expires`")
    );
    assert_eq!(live_stream(&client, &name).await, Some(StreamViewType::NewImage));
    assert_eq!(live_ttl(&client, &name).await.as_deref(), Some("expires"));
    let report = full.ensure().await.unwrap();
    assert!(report.applied.is_empty() && report.in_sync(), "{report}");

    // Asking for point-in-time recovery on Local: a warning, not an error.
    let pitr = Table::new(client.clone(), design(&name, User::DESIGN, Some("expires"), Some(StreamView::NewImage), true));
    let report = pitr.ensure().await.unwrap();
    assert!(report.applied.is_empty() && report.in_sync(), "{report}");
    assert_eq!(report.warnings.len(), 1);
    assert!(report.to_string().contains("\n  ! point-in-time recovery requested"), "{report}");
    singletable_tests::delete_table(&client, &name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_is_reported_and_left_alone() {
    let client = singletable_tests::client().await;
    let name = singletable_tests::unique_table_name("prov_drift");
    let v1 = Table::new(client.clone(), design(&name, User::DESIGN, Some("expires"), Some(StreamView::KeysOnly), false));
    v1.create_table().await.unwrap();

    let v2 = Table::new(client.clone(), design(&name, UserV2::DESIGN, Some("gone_at"), Some(StreamView::NewImage), false));
    let report = v2.ensure().await.unwrap();
    assert!(report.applied.is_empty(), "{report}");
    assert_eq!(
        report.drift,
        [
            Drift::MissingIndex { name: "gsi2".into() },
            Drift::ExtraIndex { name: "gsi1".into() },
            Drift::Stream { expected: Some(StreamView::NewImage), found: Some(StreamView::KeysOnly) },
            Drift::Ttl { expected: Some("gone_at".into()), found: Some("expires".into()) },
        ]
    );
    assert!(!report.in_sync());
    let text = report.to_string();
    assert!(text.contains("~ index `gsi2` is missing; add it with its backfill (singletable migrate)"), "{text}");
    assert!(text.contains("~ stream is KEYS_ONLY, the design says NEW_IMAGE"), "{text}");
    assert!(text.contains("~ time to live is on `expires`, the design says on `gone_at`"), "{text}");
    // Nothing changed on the live table.
    assert_eq!(live_stream(&client, &name).await, Some(StreamViewType::KeysOnly));
    assert_eq!(live_ttl(&client, &name).await.as_deref(), Some("expires"));

    // A design without stream and TTL: both are drift, not switched off.
    let off = Table::new(client.clone(), design(&name, User::DESIGN, None, None, false));
    let report = off.ensure().await.unwrap();
    assert_eq!(
        report.drift,
        [
            Drift::Stream { expected: None, found: Some(StreamView::KeysOnly) },
            Drift::Ttl { expected: None, found: Some("expires".into()) },
        ]
    );
    singletable_tests::delete_table(&client, &name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_key_schema_is_drift() {
    let client = singletable_tests::client().await;
    let name = singletable_tests::unique_table_name("prov_schema");
    let key = |n: &str, k: KeyType| KeySchemaElement::builder().attribute_name(n).key_type(k).build().unwrap();
    let def = |n: &str, t: ScalarAttributeType| AttributeDefinition::builder().attribute_name(n).attribute_type(t).build().unwrap();
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("id", KeyType::Range))
        .attribute_definitions(def("pk", ScalarAttributeType::N))
        .attribute_definitions(def("id", ScalarAttributeType::S))
        .send()
        .await
        .unwrap();
    let table = Table::new(client.clone(), design(&name, UserV2::DESIGN, None, None, false));
    let report = table.ensure().await.unwrap();
    assert_eq!(
        report.drift,
        [
            Drift::KeySchema { expected: ("pk".into(), "sk".into()), found: (vec!["pk".into()], vec!["id".into()]) },
            Drift::KeyType { attribute: "pk".into(), found: "N".into() },
            Drift::MissingIndex { name: "gsi2".into() },
        ]
    );
    assert!(report.to_string().contains("key schema is (pk, id), the design says (pk, sk); a key schema never changes"), "{report}");
    singletable_tests::delete_table(&client, &name).await;
}

/// What DynamoDB Local answers when a setting that is on is turned on
/// again (callers that apply settings after `create_table` must not).
#[tokio::test(flavor = "multi_thread")]
async fn settings_turned_on_twice() {
    let client = singletable_tests::client().await;
    let name = singletable_tests::unique_table_name("prov_twice");
    let table = Table::new(client.clone(), design(&name, User::DESIGN, Some("expires"), Some(StreamView::NewImage), false));
    table.create_table().await.unwrap();
    let ttl = client
        .update_time_to_live()
        .table_name(&name)
        .time_to_live_specification(
            aws_sdk_dynamodb::types::TimeToLiveSpecification::builder().attribute_name("expires").enabled(true).build().unwrap(),
        )
        .send()
        .await;
    let stream = client
        .update_table()
        .table_name(&name)
        .stream_specification(
            aws_sdk_dynamodb::types::StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .unwrap(),
        )
        .send()
        .await;
    let ttl = aws_sdk_dynamodb::error::DisplayErrorContext(ttl.unwrap_err()).to_string();
    assert!(ttl.contains("TimeToLive is already enabled"), "{ttl}");
    let stream = aws_sdk_dynamodb::error::DisplayErrorContext(stream.unwrap_err()).to_string();
    assert!(stream.contains("Table already has an enabled stream"), "{stream}");
    // ensure knows the settings are on and sends nothing.
    assert!(table.ensure().await.unwrap().applied.is_empty());
    singletable_tests::delete_table(&client, &name).await;
}
