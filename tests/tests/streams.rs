//! Stream records decoded into a `#[derive(Collection)]` enum.
//!
//! The records are real: a table is created with a NEW_AND_OLD_IMAGES
//! stream on DynamoDB Local, written through `Table`, and its stream read
//! through the DynamoDB Streams API (`aws-sdk-dynamodbstreams`). Each
//! record is then put in the JSON shape Lambda delivers and deserialized
//! as `aws_lambda_events::event::dynamodb::Event`, which is what a Rust
//! Lambda handler receives, before `Change::from_event` decodes it.

use std::collections::{BTreeMap, HashMap, HashSet};

use aws_sdk_dynamodbstreams::types::AttributeValue as StreamValue;
use serde_json::{json, Value};
use singletable::aws_lambda_events::event::dynamodb::Event;
use singletable::{AttributeValue, Change, ChangeKind, Collection, Document, Error, Item, StreamView, Table, TableDesign};

#[derive(Document, Debug, Clone, PartialEq)]
struct Profile {
    city: String,
    langs: Vec<String>,
}

#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
struct User {
    org: String,
    id: String,
    name: String,
    score: f64,
    tags: HashSet<String>,
    visits: Vec<u32>,
    profile: Profile,
    active: bool,
    nick: Option<String>,
}

#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Project", pk = "ORG#{org}", sk = "PROJECT#{id}")]
struct Project {
    org: String,
    id: String,
}

/// In the table, not in the collection.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Invoice", pk = "ORG#{org}", sk = "INVOICE#{n}")]
struct Invoice {
    org: String,
    n: u32,
}

#[derive(Collection, Debug, Clone, PartialEq)]
enum Org {
    User(User),
    Project(Project),
}

fn ann() -> User {
    User {
        org: "acme".into(),
        id: "ann".into(),
        name: "Ann".into(),
        score: 12.5,
        tags: HashSet::from(["admin".to_string(), "ops".to_string()]),
        visits: vec![3, 1, 4],
        profile: Profile { city: "Lyon".into(), langs: vec!["fr".into(), "en".into()] },
        active: true,
        nick: None,
    }
}

/// A Streams API value in DynamoDB JSON, as Lambda delivers it.
fn ddb_json(v: &StreamValue) -> Value {
    match v {
        StreamValue::S(s) => json!({ "S": s }),
        StreamValue::N(n) => json!({ "N": n }),
        StreamValue::Bool(b) => json!({ "BOOL": b }),
        StreamValue::Null(_) => json!({ "NULL": true }),
        StreamValue::Ss(v) => json!({ "SS": v }),
        StreamValue::Ns(v) => json!({ "NS": v }),
        StreamValue::L(v) => json!({ "L": v.iter().map(ddb_json).collect::<Vec<_>>() }),
        StreamValue::M(m) => json!({ "M": image_json(m) }),
        other => panic!("no binary values in this test: {other:?}"),
    }
}

fn image_json(m: &HashMap<String, StreamValue>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), ddb_json(v))).collect())
}

/// Every record of the table's stream, as a Lambda event.
async fn stream_as_lambda_event(table: &Table) -> Value {
    let (arn, got) = singletable_tests::stream_records(table.client(), table.name()).await;
    let mut records = Vec::new();
    for r in got {
        let d = r.dynamodb.unwrap();
        let mut change = json!({
            "ApproximateCreationDateTime": d.approximate_creation_date_time.map_or(0.0, |t| t.as_secs_f64()),
            "Keys": image_json(d.keys.as_ref().unwrap()),
            "SequenceNumber": d.sequence_number,
            "SizeBytes": d.size_bytes.unwrap_or(0),
            "StreamViewType": d.stream_view_type.map(|v| v.as_str().to_string()),
        });
        if let Some(new) = &d.new_image {
            change["NewImage"] = image_json(new);
        }
        if let Some(old) = &d.old_image {
            change["OldImage"] = image_json(old);
        }
        records.push(json!({
            "eventID": r.event_id,
            "eventName": r.event_name.map(|n| n.as_str().to_string()),
            "eventVersion": r.event_version,
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "eventSourceARN": arn,
            "dynamodb": change,
        }));
    }
    json!({ "Records": records })
}

#[tokio::test(flavor = "multi_thread")]
async fn real_stream_records_decode_into_the_collection() {
    let client = singletable_tests::client().await;
    let design = TableDesign::new(singletable_tests::unique_table_name("streams"))
        .entity::<User>()
        .entity::<Project>()
        .entity::<Invoice>()
        .stream(StreamView::NewAndOldImages)
        .build()
        .unwrap();
    let table = Table::new(client, design);
    table.create_table().await.unwrap();

    let v1 = ann();
    let v2 = User { name: "Ann B.".into(), nick: Some("annie".into()), visits: vec![], ..v1.clone() };
    let project = Project { org: "acme".into(), id: "p1".into() };
    table.put(&v1).await.unwrap();
    table.put(&v2).await.unwrap();
    table.put(&project).await.unwrap();
    table.delete::<User>(&("acme".to_string(), "ann".to_string())).await.unwrap();
    table.put(&Invoice { org: "acme".into(), n: 7 }).await.unwrap();

    let json = stream_as_lambda_event(&table).await;
    let event: Event = serde_json::from_value(json).expect("the Lambda event shape");
    assert_eq!(event.records.len(), 5);
    let ids: Vec<String> = event.records.iter().map(|r| r.event_id.clone()).collect();
    let results = Change::<Org>::from_event(event);

    let ok: Vec<&Change<Org>> = results[..4].iter().map(|r| r.as_ref().unwrap()).collect();
    let summary: Vec<(ChangeKind, Option<&str>, bool, bool)> =
        ok.iter().map(|c| (c.kind, c.entity(), c.old.is_some(), c.new.is_some())).collect();
    assert_eq!(
        summary,
        [
            (ChangeKind::Insert, Some("User"), false, true),
            (ChangeKind::Modify, Some("User"), true, true),
            (ChangeKind::Insert, Some("Project"), false, true),
            (ChangeKind::Remove, Some("User"), true, false),
        ]
    );
    assert_eq!(ok[0].new, Some(Org::User(v1.clone())));
    assert_eq!((&ok[1].old, &ok[1].new), (&Some(Org::User(v1)), &Some(Org::User(v2.clone()))));
    assert_eq!(ok[2].new, Some(Org::Project(project)));
    assert_eq!(ok[3].old, Some(Org::User(v2)));
    assert_eq!(ok[3].key.as_ref().map(|k| (k.pk.as_str(), k.sk.as_str())), Some(("ORG#acme", "USER#ann")));
    assert_eq!(ok[0].event_id, ids[0]);

    // The invoice is reported with its record, not dropped.
    match &results[4] {
        Err(Error::StreamRecord { event_id, problem, source: Some(source) }) => {
            assert_eq!(*event_id, ids[4]);
            assert!(problem.starts_with("INSERT record, new image: collection `Org`: entity `Invoice`"), "{problem}");
            assert!(matches!(**source, Error::UnknownEntity { .. }));
        }
        other => panic!("expected a StreamRecord error, got {other:?}"),
    }
    singletable_tests::delete_table(table.client(), table.name()).await;
}

fn keys(pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_string(), AttributeValue::S(pk.into())), ("sk".to_string(), AttributeValue::S(sk.into()))])
}

#[test]
fn keys_only_records_and_refusals() {
    // A KEYS_ONLY stream: no images, the key still known.
    let change = Change::<Org>::from_parts("e1", "REMOVE", &keys("ORG#acme", "USER#ann"), None, Some(HashMap::new())).unwrap();
    assert_eq!((change.kind, &change.old, &change.new, change.entity()), (ChangeKind::Remove, &None, &None, None));
    assert_eq!(change.key.unwrap().sk, "USER#ann");

    let err = Change::<Org>::from_parts("e2", "UPSERT", &keys("a", "b"), None, None).unwrap_err();
    assert_eq!(err.to_string(), "stream record `e2`: unknown event name \"UPSERT\" (expected INSERT, MODIFY or REMOVE)");

    // An image that does not decode names the record, image and attribute.
    let mut broken = ann().to_item().unwrap();
    broken.insert("score".into(), AttributeValue::S("high".into()));
    let err = Change::<Org>::from_parts("e3", "MODIFY", &keys("ORG#acme", "USER#ann"), Some(broken), None).unwrap_err();
    assert!(err.to_string().starts_with("stream record `e3`: MODIFY record, old image: User: attribute `score`"), "{err}");

    // The Lambda path with an event built by hand (BTreeMap: stable JSON).
    let image: BTreeMap<&str, Value> = BTreeMap::from([
        ("pk", json!({"S": "ORG#acme"})),
        ("sk", json!({"S": "PROJECT#p9"})),
        ("_et", json!({"S": "Project"})),
        ("org", json!({"S": "acme"})),
        ("id", json!({"S": "p9"})),
    ]);
    let event: Event = serde_json::from_value(json!({"Records": [{
        "eventID": "x1", "eventName": "INSERT", "awsRegion": "eu-west-3",
        "dynamodb": {"ApproximateCreationDateTime": 1700000000.0, "Keys": {"pk": {"S": "ORG#acme"}, "sk": {"S": "PROJECT#p9"}},
                     "NewImage": image, "SizeBytes": 60, "StreamViewType": "NEW_IMAGE"}
    }]}))
    .unwrap();
    let changes = Change::<Org>::from_event(event);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].as_ref().unwrap().new, Some(Org::Project(Project { org: "acme".into(), id: "p9".into() })));
}
