//! Both handlers against DynamoDB Local, without the Lambda runtime.
//!
//! The stream handler gets the table's real stream records: written
//! through `Table`, read back with the DynamoDB Streams API, and converted
//! into the `aws_lambda_events` records Lambda would deliver
//! ([`lambda_record`]).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::types::{AttributeValue as StreamValue, Record};
use serde_json::json;
use singletable::aws_lambda_events::event::dynamodb::{Event, EventRecord, StreamRecord};
use singletable::{ChangeKind, Error, Item, Table};
use singletable_examples::tracker::v2::{self, NewTask, Task};
use tracker_lambda::api::{self, NotificationView, Request, Response};
use tracker_lambda::stream::{self, StreamError};
use tracker_lambda::TrackerItem;

async fn fresh_table(prefix: &str) -> Table {
    let client = singletable_tests::client().await;
    let design = tracker_lambda::design(&singletable_tests::unique_table_name(prefix)).unwrap();
    let table = Table::new(client, design);
    table.create_table().await.unwrap();
    table
}

/// A Streams API value as `aws_sdk_dynamodb`'s (the two SDKs generate the
/// same type twice).
fn dynamo_value(v: &StreamValue) -> AttributeValue {
    match v {
        StreamValue::S(s) => AttributeValue::S(s.clone()),
        StreamValue::N(n) => AttributeValue::N(n.clone()),
        StreamValue::B(b) => AttributeValue::B(b.clone()),
        StreamValue::Bool(b) => AttributeValue::Bool(*b),
        StreamValue::Null(n) => AttributeValue::Null(*n),
        StreamValue::Ss(v) => AttributeValue::Ss(v.clone()),
        StreamValue::Ns(v) => AttributeValue::Ns(v.clone()),
        StreamValue::Bs(v) => AttributeValue::Bs(v.clone()),
        StreamValue::L(v) => AttributeValue::L(v.iter().map(dynamo_value).collect()),
        StreamValue::M(m) => AttributeValue::M(dynamo_map(m)),
        other => panic!("an attribute value this SDK version does not know: {other:?}"),
    }
}

fn dynamo_map(m: &HashMap<String, StreamValue>) -> HashMap<String, AttributeValue> {
    m.iter().map(|(k, v)| (k.clone(), dynamo_value(v))).collect()
}

fn image(m: Option<&HashMap<String, StreamValue>>) -> serde_dynamo::Item {
    m.map(dynamo_map).unwrap_or_default().into()
}

/// A Streams API record as the record of a Lambda event: the same
/// fields, in `aws_lambda_events`' types.
fn lambda_record(stream_arn: &str, r: &Record) -> EventRecord {
    let d = r.dynamodb.as_ref().expect("a DynamoDB stream record");
    let mut change = StreamRecord::default();
    change.keys = image(d.keys.as_ref());
    change.new_image = image(d.new_image.as_ref());
    change.old_image = image(d.old_image.as_ref());
    change.sequence_number = d.sequence_number.clone();
    change.size_bytes = d.size_bytes.unwrap_or(0);
    change.stream_view_type = d.stream_view_type.as_ref().map(|v| serde_json::from_value(json!(v.as_str())).unwrap());
    let mut record = EventRecord::default();
    record.aws_region = r.aws_region.clone().unwrap_or_default();
    record.change = change;
    record.event_id = r.event_id.clone().unwrap_or_default();
    record.event_name = r.event_name.as_ref().map(|n| n.as_str().to_string()).unwrap_or_default();
    record.event_source = r.event_source.clone();
    record.event_version = r.event_version.clone();
    record.event_source_arn = Some(stream_arn.to_string());
    record
}

/// Every record of the table's stream so far, oldest first, as Lambda
/// receives them.
async fn stream_records(table: &Table) -> Vec<EventRecord> {
    let (arn, records) = singletable_tests::stream_records(table.client(), table.name()).await;
    records.iter().map(|r| lambda_record(&arn, r)).collect()
}

fn event(records: &[EventRecord]) -> Event {
    let mut event = Event::default();
    event.records = records.to_vec();
    event
}

fn seq(record: &EventRecord) -> String {
    record.change.sequence_number.clone().expect("DynamoDB gives every record a sequence number")
}

async fn inbox(table: &Table, user_id: &str) -> Vec<NotificationView> {
    match api::handle(table, Request::Inbox { org_id: "acme".into(), user_id: user_id.into() }).await.unwrap() {
        Response::Inbox { notifications } => notifications,
        other => panic!("expected an inbox, got {other:?}"),
    }
}

fn task(title: &str, assignee: Option<&str>) -> NewTask {
    NewTask { title: title.into(), assignee: assignee.map(String::from), ..NewTask::default() }
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_handler_notifies_assignees_and_reports_the_record_it_cannot_decode() {
    let table = fresh_table("lambda_stream").await;
    v2::create_project(&table, "acme", "apollo", "Apollo", "").await.unwrap();
    v2::create_task(&table, "acme", "apollo", task("Build the lander", Some("bob"))).await.unwrap();
    v2::assign_task(&table, "acme", "apollo", 1, Some("cat")).await.unwrap();
    v2::set_task_status(&table, "acme", "apollo", 1, "doing").await.unwrap();
    v2::create_task(&table, "acme", "apollo", task("Test the lander", None)).await.unwrap();
    // Another writer stores a task this code cannot read.
    let mut broken = Task {
        org_id: "acme".into(),
        project_id: "apollo".into(),
        number: 99,
        title: "Ship the lander".into(),
        status: "todo".into(),
        assignee: None,
        due: None,
        estimate_hours: Some(2.0),
        labels: vec![],
    }
    .to_item()
    .unwrap();
    broken.insert("estimate_hours".into(), AttributeValue::S("soon".into()));
    table.client().put_item().table_name(table.name()).set_item(Some(broken)).send().await.unwrap();
    v2::assign_task(&table, "acme", "apollo", 2, Some("ann")).await.unwrap();

    let records = stream_records(&table).await;
    assert_eq!(records.len(), 9, "{records:#?}");
    let bad = 7;

    let report = stream::handle(&table, event(&records)).await.unwrap();

    // Decoded in order, each with its record's sequence number, up to the
    // broken task.
    let decoded: Vec<(ChangeKind, Option<&str>, String)> =
        report.handled.iter().map(|c| (c.kind, c.entity(), c.sequence_number.clone().unwrap())).collect();
    let expected: Vec<(ChangeKind, Option<&str>, String)> = [
        (ChangeKind::Insert, "Project"),
        (ChangeKind::Modify, "Project"),
        (ChangeKind::Insert, "Task"),
        (ChangeKind::Modify, "Task"),
        (ChangeKind::Modify, "Task"),
        (ChangeKind::Modify, "Project"),
        (ChangeKind::Insert, "Task"),
    ]
    .iter()
    .zip(&records)
    .map(|(&(kind, entity), r)| (kind, Some(entity), seq(r)))
    .collect();
    assert_eq!(decoded, expected);
    match (&report.handled[3].old, &report.handled[3].new) {
        (Some(TrackerItem::Task(old)), Some(TrackerItem::Task(new))) => {
            assert_eq!((old.assignee.as_deref(), new.assignee.as_deref()), (Some("bob"), Some("cat")));
        }
        other => panic!("expected both images of task 1, got {other:?}"),
    }

    // The new task for bob and the reassignment to cat; the status change
    // and the unassigned task notify no one.
    let notified: Vec<(&str, u32, Option<&str>)> =
        report.notified.iter().map(|n| (n.user_id.as_str(), n.number, n.previous_assignee.as_deref())).collect();
    assert_eq!(notified, [("bob", 1, None), ("cat", 1, Some("bob"))]);

    // The broken task is the batch item failure, by sequence number.
    let failed = report.failed.as_ref().expect("the broken task fails");
    assert_eq!((failed.sequence_number.clone(), failed.event_id.as_str()), (seq(&records[bad]), records[bad].event_id.as_str()));
    match &failed.error {
        Error::StreamRecord { problem, .. } => assert!(problem.starts_with("INSERT record, new image: Task: attribute `estimate_hours`"), "{problem}"),
        other => panic!("expected a StreamRecord error, got {other:?}"),
    }
    assert_eq!(serde_json::to_value(report.response()).unwrap(), json!({ "batchItemFailures": [{ "itemIdentifier": seq(&records[bad]) }] }));

    // Lambda delivers the batch again from the failed record: it fails
    // again, before touching the assignment after it.
    let retried = stream::handle(&table, event(&records[bad..])).await.unwrap();
    assert_eq!((retried.handled.len(), retried.failed.map(|f| f.sequence_number)), (0, Some(seq(&records[bad]))));

    // A second delivery of what was handled notifies no one twice.
    stream::handle(&table, event(&records[..bad])).await.unwrap();
    assert_eq!(inbox(&table, "bob").await.len(), 1);

    // Once the retry limit discards the broken record, the rest follows,
    // along with the records of the handler's own notifications, which
    // decode and are left alone.
    let later = stream_records(&table).await;
    let rest = stream::handle(&table, event(&later[bad + 1..])).await.unwrap();
    assert!(rest.failed.is_none(), "{:?}", rest.failed);
    let entities: Vec<&str> = rest.handled.iter().filter_map(|c| c.entity()).collect();
    assert_eq!(entities.len(), rest.handled.len());
    assert_eq!(entities[0], "Task");
    assert!(entities.len() >= 3 && entities[1..].iter().all(|e| *e == "Notification"), "{entities:?}");
    assert_eq!(rest.notified.iter().map(|n| n.user_id.as_str()).collect::<Vec<_>>(), ["ann"]);
    assert!(rest.response().batch_item_failures.is_empty());

    assert_eq!(
        inbox(&table, "cat").await,
        [NotificationView { project_id: "apollo".into(), number: 1, title: "Build the lander".into(), previous_assignee: Some("bob".into()) }]
    );
    singletable_tests::delete_table(table.client(), table.name()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_without_a_sequence_number_fails_the_whole_batch() {
    let table = fresh_table("lambda_no_seq").await;
    let event: Event = serde_json::from_value(json!({ "Records": [{
        "eventID": "hand-made", "eventName": "REMOVE", "awsRegion": "us-east-1",
        "dynamodb": { "Keys": { "pk": { "S": "TENANT#acme" }, "sk": { "S": "ORG" } }, "SizeBytes": 20 }
    }]}))
    .unwrap();
    match stream::handle(&table, event).await {
        Err(StreamError::NoSequenceNumber { event_id }) => assert_eq!(event_id, "hand-made"),
        other => panic!("expected NoSequenceNumber, got {other:?}"),
    }
    singletable_tests::delete_table(table.client(), table.name()).await;
}

/// A request as the function receives it: JSON.
async fn call(table: &Table, request: serde_json::Value) -> Response {
    let request: Request = serde_json::from_value(request).expect("a valid request");
    api::handle(table, request).await.expect("no service failure")
}

#[tokio::test(flavor = "multi_thread")]
async fn api_handler_answers_requests_through_the_access_patterns() {
    let table = fresh_table("lambda_api").await;

    let created = call(&table, json!({ "op": "create_project", "org_id": "acme", "project_id": "apollo", "name": "Apollo" })).await;
    assert!(matches!(&created, Response::Project(p) if p.name == "Apollo" && p.task_count == 0 && p.version == 1), "{created:?}");
    let again = call(&table, json!({ "op": "create_project", "org_id": "acme", "project_id": "apollo", "name": "Apollo 2" })).await;
    assert!(matches!(again, Response::Conflict { .. }), "{again:?}");

    let task = call(
        &table,
        json!({ "op": "create_task", "org_id": "acme", "project_id": "apollo", "title": "Build the lander", "assignee": "bob", "labels": ["ops"] }),
    )
    .await;
    let Response::Task(task) = task else { panic!("expected a task, got {task:?}") };
    assert_eq!((task.number, task.status.as_str(), task.assignee.as_deref(), task.labels.as_slice()), (1, "todo", Some("bob"), &["ops".to_string()][..]));

    let assigned = call(&table, json!({ "op": "assign_task", "org_id": "acme", "project_id": "apollo", "number": 1, "assignee": "cat" })).await;
    assert!(matches!(&assigned, Response::Task(t) if t.assignee.as_deref() == Some("cat")), "{assigned:?}");
    let read = call(&table, json!({ "op": "get_task", "org_id": "acme", "project_id": "apollo", "number": 1 })).await;
    assert_eq!(read, assigned);
    let project = call(&table, json!({ "op": "get_project", "org_id": "acme", "project_id": "apollo" })).await;
    assert!(matches!(&project, Response::Project(p) if p.task_count == 1), "{project:?}");

    // Refusals are answers, in the response's JSON.
    let missing = call(&table, json!({ "op": "get_task", "org_id": "acme", "project_id": "apollo", "number": 7 })).await;
    assert_eq!(serde_json::to_value(&missing).unwrap(), json!({ "result": "not_found", "message": "no task #7 in project `apollo` of `acme`" }));
    let nowhere = call(&table, json!({ "op": "create_task", "org_id": "acme", "project_id": "gemini", "title": "Dock" })).await;
    assert!(matches!(nowhere, Response::NotFound { .. }), "{nowhere:?}");
    let ghost = call(&table, json!({ "op": "assign_task", "org_id": "acme", "project_id": "apollo", "number": 7, "assignee": "cat" })).await;
    assert!(matches!(ghost, Response::NotFound { .. }), "{ghost:?}");
    let bad_key = call(&table, json!({ "op": "get_project", "org_id": "acme", "project_id": "" })).await;
    assert!(matches!(&bad_key, Response::BadRequest { message } if message.contains("project_id")), "{bad_key:?}");

    // Nothing has run the stream handler: the inbox is empty.
    assert_eq!(call(&table, json!({ "op": "inbox", "org_id": "acme", "user_id": "cat" })).await, Response::Inbox { notifications: vec![] });
    singletable_tests::delete_table(table.client(), table.name()).await;
}
