//! The singletable demo: one table holding users, projects and tasks of a
//! multi-tenant project tracker.
//!
//! Run it with `scripts/demo.sh`, which starts DynamoDB Local and points
//! `AWS_ENDPOINT_URL_DYNAMODB` at it. Credentials, region and endpoint
//! come from the usual aws-config sources, so the demo also runs against
//! any other endpoint you give it.

use anyhow::{bail, Context, Result};
use aws_config::BehaviorVersion;
use singletable::{Error, Item, KeyParts, Table, TableDesign};

/// A user of an organization; also findable by e-mail through `gsi1`.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "User", pk = "ORG#{org_id}", sk = "USER#{user_id}")]
#[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
struct User {
    org_id: String,
    user_id: String,
    email: String,
    name: String,
}

/// A project; its tasks live in the same partition.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Project", pk = "ORG#{org_id}", sk = "PROJECT#{project_id}")]
struct Project {
    org_id: String,
    project_id: String,
    title: String,
}

/// A task. Its number is zero-padded so tasks sort in numeric order, and
/// `gsi2` is sparse: only assigned tasks appear in it.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Task", pk = "ORG#{org_id}", sk = "TASK#{project_id}#{number:06}")]
#[item(index(name = "gsi2", pk = "ASSIGNEE#{assignee}", sk = "TASK#{org_id}#{project_id}#{number:06}"))]
struct Task {
    org_id: String,
    project_id: String,
    number: u32,
    title: String,
    assignee: Option<String>,
    labels: Vec<String>,
    estimate_hours: Option<f64>,
}

fn task(project: &str, number: u32, title: &str, assignee: Option<&str>) -> Task {
    Task {
        org_id: "acme".into(),
        project_id: project.into(),
        number,
        title: title.into(),
        assignee: assignee.map(String::from),
        labels: vec!["demo".into()],
        estimate_hours: Some(number as f64 * 1.5),
    }
}

async fn count_items(table: &Table) -> Result<i32> {
    let out = table.client().scan().table_name(table.name()).select(aws_sdk_dynamodb::types::Select::Count).send().await?;
    Ok(out.count())
}

#[tokio::main]
async fn main() -> Result<()> {
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table_name = std::env::args().nth(1).unwrap_or_else(|| "singletable-demo".to_string());

    let design = TableDesign::new(&table_name).entity::<User>().entity::<Project>().entity::<Task>().build()?;
    println!("== Design of table `{}`", design.table);
    println!("   keys: {} (partition), {} (sort); entity type in `{}`", design.pk_attr, design.sk_attr, User::DESIGN.entity_attr);
    for e in &design.entities {
        print!("   {:<8} pk = {:<14} sk = {:<36}", e.entity, e.pk.template.source, e.sk.template.source);
        for i in e.indexes.iter() {
            let sk = i.sk.as_ref().map(|k| k.template.source.as_ref()).unwrap_or("-");
            print!(" {}: {} / {}{}", i.name, i.pk.template.source, sk, if i.is_sparse() { " (sparse)" } else { "" });
        }
        println!();
    }

    let table = Table::new(client.clone(), design);
    // A re-run starts from a clean table.
    if client.describe_table().table_name(&table_name).send().await.is_ok() {
        table.delete_table().await?;
    }
    table.create_table().await.context("creating the table")?;
    println!("\n== Created table `{table_name}` with GSIs gsi1, gsi2");

    let users = [
        User { org_id: "acme".into(), user_id: "ann".into(), email: "ann@acme.test".into(), name: "Ann".into() },
        User { org_id: "acme".into(), user_id: "bob".into(), email: "bob@acme.test".into(), name: "Bob".into() },
    ];
    let projects = [
        Project { org_id: "acme".into(), project_id: "apollo".into(), title: "Apollo".into() },
        Project { org_id: "acme".into(), project_id: "gemini".into(), title: "Gemini".into() },
    ];
    let tasks = [
        task("apollo", 1, "Design the lander", Some("ann")),
        task("apollo", 2, "Build the lander", Some("bob")),
        task("apollo", 10, "Fly to the moon", Some("ann")),
        task("gemini", 1, "Dock two capsules", None),
    ];
    for u in &users {
        table.create(u).await?;
    }
    for p in &projects {
        table.create(p).await?;
    }
    for t in &tasks {
        table.put(t).await?;
    }
    println!("== Wrote {} users, {} projects, {} tasks", users.len(), projects.len(), tasks.len());
    let sample = tasks[2].to_item()?;
    let mut keys: Vec<_> = ["pk", "sk", "gsi2pk", "gsi2sk", "_et"].iter().map(|k| format!("{k}={}", sample[*k].as_s().unwrap())).collect();
    keys.sort();
    println!("   task 10 is stored with {}", keys.join(", "));

    match table.create(&users[0]).await {
        Err(Error::AlreadyExists { pk, sk, .. }) => println!("== Create-only put of ann again refused: ({pk}, {sk}) already exists"),
        other => bail!("expected AlreadyExists, got {other:?}"),
    }

    let ann: Option<User> = table.get::<User>(&("acme".into(), "ann".into())).await?;
    println!("\n== Get User (acme, ann): {ann:?}");
    if ann.as_ref() != Some(&users[0]) {
        bail!("read back a different user");
    }

    let apollo: Vec<Task> =
        table.query::<Task>().pk(KeyParts::new().set("org_id", "acme")).sk_begins_with(KeyParts::new().set("project_id", "apollo")).all().await?;
    println!("== Query tasks of project apollo (sk begins_with TASK#apollo#), in numeric order:");
    for t in &apollo {
        println!("   #{:<3} {:<20} assignee={:?}", t.number, t.title, t.assignee);
    }
    if apollo.iter().map(|t| t.number).collect::<Vec<_>>() != [1, 2, 10] {
        bail!("tasks did not come back in numeric order");
    }

    let first_two: Vec<Task> = table
        .query::<Task>()
        .pk(KeyParts::new().set("org_id", "acme"))
        .sk_between(
            KeyParts::new().set("project_id", "apollo").set("number", 1u32),
            KeyParts::new().set("project_id", "apollo").set("number", 2u32),
        )
        .all()
        .await?;
    println!("== Query apollo tasks 1..=2 (sk between): {:?}", first_two.iter().map(|t| &t.title).collect::<Vec<_>>());

    let everyone: Vec<User> = table.query::<User>().pk(KeyParts::new().set("org_id", "acme")).all().await?;
    println!("== Query users of acme (other entities in the partition are filtered out): {:?}", everyone.iter().map(|u| &u.name).collect::<Vec<_>>());

    let by_email: Vec<User> = table.query::<User>().index("gsi1").pk(KeyParts::new().set("email", "bob@acme.test")).all().await?;
    println!("\n== GSI query gsi1: user with e-mail bob@acme.test -> {:?}", by_email.iter().map(|u| &u.user_id).collect::<Vec<_>>());

    let anns_tasks: Vec<Task> = table.query::<Task>().index("gsi2").pk(KeyParts::new().set("assignee", "ann")).all().await?;
    println!("== GSI query gsi2 (sparse): tasks assigned to ann -> {:?}", anns_tasks.iter().map(|t| &t.title).collect::<Vec<_>>());

    let before = count_items(&table).await?;
    let bad = User { user_id: String::new(), ..users[1].clone() };
    match table.put(&bad).await {
        Err(e @ Error::EmptyKey { .. }) => println!("\n== Put of a user with an empty user_id refused before sending:\n   {e}"),
        other => bail!("expected EmptyKey, got {other:?}"),
    }
    let clash = Task { project_id: "apollo#2".into(), ..tasks[0].clone() };
    match table.put(&clash).await {
        Err(e @ Error::KeyDelimiter { .. }) => println!("== Put of a task whose project id holds the delimiter refused:\n   {e}"),
        other => bail!("expected KeyDelimiter, got {other:?}"),
    }
    let nan = Task { estimate_hours: Some(f64::NAN), ..tasks[0].clone() };
    match table.put(&nan).await {
        Err(e @ Error::InvalidValue { .. }) => println!("== Put of a task with a NaN estimate refused:\n   {e}"),
        other => bail!("expected InvalidValue, got {other:?}"),
    }
    let after = count_items(&table).await?;
    println!("   items in the table before and after the refused writes: {before} and {after}");
    if before != after {
        bail!("a refused write changed the table");
    }

    table.delete::<Task>(&("acme".into(), "gemini".into(), 1)).await?;
    let gone = table.get::<Task>(&("acme".into(), "gemini".into(), 1)).await?;
    println!("\n== Deleted task gemini #1; get now returns {gone:?}");
    println!("== Done: {} items left in `{table_name}`", count_items(&table).await?);
    Ok(())
}
