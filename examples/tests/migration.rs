//! The tracker's v1 → v2 migration against DynamoDB Local: plan and apply
//! through the library, then every access pattern answers from v2's keys
//! what it answered from v1's, and the new pattern (P16) works.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_sdk_dynamodb::types::AttributeValue;
use singletable::{Item, Table};
use singletable_examples::tracker::{migration, new_task, v1, v2, NewTask, Seed, ORGS};
use singletable_migrate::plan::Change;

/// Item counts per entity type.
async fn counts(table: &Table) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut start = None;
    loop {
        let page = table.client().scan().table_name(table.name()).consistent_read(true).set_exclusive_start_key(start).send().await.unwrap();
        for item in page.items() {
            if let Some(AttributeValue::S(e)) = item.get("_et") {
                *out.entry(e.clone()).or_insert(0) += 1;
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return out;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_to_v2_keeps_every_answer_and_adds_tasks_by_due_date() {
    let client = singletable_tests::client().await;
    let name = singletable_tests::unique_table_name("tracker_migrate");
    let old = v1::create_table(&client, &name, false).await.unwrap();
    v1::seed(&old, &Seed::SMALL).await.unwrap();
    // Some history through the write patterns first.
    let now = SystemTime::now();
    v1::accept_invitation(&old, "acme", "gus@example.com", "gus", "Gus", now).await.unwrap().unwrap();
    v1::assign_task(&old, "acme", "apollo", 5, Some("dan")).await.unwrap();
    v1::edit_project(&old, "globex", "atlas", 3, |p| p.description = "v1 edit".into()).await.unwrap();
    let mut before = Vec::new();
    for o in ORGS {
        before.push(v1::read_patterns(&old, o.id, now).await.unwrap());
    }
    let counts_before = counts(&old).await;

    let plan = migration::plan_v2(&client, &name).await.unwrap();
    assert!(plan.blocking_errors().is_empty(), "{:?}", plan.blocking_errors());
    let created: Vec<&str> = plan.changes.iter().filter_map(|c| if let Change::CreateIndex { index, .. } = c { Some(index.name.as_str()) } else { None }).collect();
    assert_eq!(created, ["gsi3"]);
    let moved: Vec<&str> = plan.changes.iter().filter_map(|c| if let Change::Rewrite(r) = c { r.table_key.as_ref().map(|_| r.entity.as_str()) } else { None }).collect();
    assert_eq!(moved.len(), 6, "every entity moves to TENANT#: {moved:?}");

    let report = migration::apply(&client, &plan).await.unwrap();
    let total: usize = counts_before.values().sum();
    assert_eq!(report.moved as usize, total);
    assert_eq!(report.verification.as_ref().unwrap().counts.values().sum::<u64>() as usize, total);

    // Same items, same answers, through v2's keys.
    let table = Table::new(client.clone(), v2::design(&name).unwrap());
    assert_eq!(counts(&table).await, counts_before);
    for (o, old) in ORGS.iter().zip(&before) {
        let new = v2::read_patterns(&table, o.id, now).await.unwrap();
        assert_eq!(new.len(), old.len());
        for (a, b) in old.iter().zip(&new) {
            assert_eq!(a, b, "{} {}", o.id, a.id);
        }
    }
    // No item is left in v1's form.
    let raw = table.client().scan().table_name(&name).send().await.unwrap();
    assert!(raw.items().iter().all(|i| !i["pk"].as_s().unwrap().starts_with("ORG#")));

    // P16 on the migrated data: acme's tasks due in March, in date order.
    let due = v2::tasks_due(&table, "acme", "2026-03-01", "2026-03-31").await.unwrap();
    let mut expected = Vec::new();
    for p in ORGS[0].projects {
        for n in 1..=Seed::SMALL.tasks_per_project {
            if let Some(d) = new_task(ORGS[0].users, n).due.filter(|d| d.as_str() <= "2026-03-31") {
                expected.push((d, p.to_lowercase(), n));
            }
        }
    }
    expected.sort();
    let got: Vec<(String, String, u32)> = due.iter().map(|t| (t.due.clone().unwrap(), t.project_id.clone(), t.number)).collect();
    assert_eq!(got, expected);

    // The table records v2: a second plan has nothing to do.
    let again = migration::plan_v2(&client, &name).await.unwrap();
    assert!(again.is_empty(), "{:?}", again.changes);

    // v2 writes: a new task with a due date is in gsi3 at once; clearing
    // the date takes it out (sparse).
    let t = v2::create_task(&table, "initech", "tps", NewTask { title: "Cover sheets".into(), due: Some("2026-06-01".into()), ..NewTask::default() }).await.unwrap();
    assert_eq!(v2::tasks_due(&table, "initech", "2026-06-01", "2026-06-30").await.unwrap(), std::slice::from_ref(&t));
    let f = v2::Task::fields();
    table.update::<v2::Task>(&("initech".into(), "tps".into(), t.number)).set(f.due, None).send().await.unwrap();
    assert_eq!(v2::tasks_due(&table, "initech", "2026-06-01", "2026-06-30").await.unwrap(), []);
    singletable_tests::delete_table(&client, &name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn p16_tasks_due_on_a_fresh_v2_table() {
    let client = singletable_tests::client().await;
    let name = singletable_tests::unique_table_name("tracker_v2");
    let table = v2::create_table(&client, &name, false).await.unwrap();
    v2::seed(&table, &Seed::SMALL).await.unwrap();
    let due = v2::tasks_due(&table, "globex", "2026-04-01", "2026-04-30").await.unwrap();
    assert!(!due.is_empty());
    assert!(due.windows(2).all(|w| (&w[0].due, &w[0].project_id, w[0].number) < (&w[1].due, &w[1].project_id, w[1].number)));
    assert!(due.iter().all(|t| t.org_id == "globex" && t.due.as_deref().is_some_and(|d| d.starts_with("2026-04-"))));
    // Other tenants' tasks are in other partitions of the index.
    assert!(v2::tasks_due(&table, "nobody", "2026-01-01", "2026-12-31").await.unwrap().is_empty());
    // The v2 keys as stored.
    let raw = v2::Task { org_id: "acme".into(), project_id: "apollo".into(), number: 2, title: "t".into(), status: "todo".into(), assignee: Some("bob".into()), due: Some("2026-03-05".into()), estimate_hours: None, labels: vec![] }.to_item().unwrap();
    let s = |k: &str| raw[k].as_s().unwrap().clone();
    assert_eq!((s("pk"), s("sk")), ("TENANT#acme#PROJECT#apollo".into(), "TASK#000002".into()));
    assert_eq!((s("gsi2pk"), s("gsi3pk"), s("gsi3sk")), ("TENANT#acme#ASSIGNEE#bob".into(), "TENANT#acme".into(), "DUE#2026-03-05#PROJECT#apollo#TASK#000002".into()));
    singletable_tests::delete_table(&client, &name).await;
}
