//! Item collections (one partition, several entity types) read into a
//! `#[derive(Collection)]` enum, against DynamoDB Local.

mod common;

use futures::StreamExt;
use singletable::{Collection, Error, Item, KeyParts, Table};

#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
#[item(index(name = "gsi1", pk = "TEAM#{team}", sk = "USER#{id}"))]
struct User {
    org: String,
    id: String,
    team: String,
}

#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Project", pk = "ORG#{org}", sk = "PROJECT#{id}")]
#[item(index(name = "gsi1", pk = "TEAM#{team}", sk = "PROJECT#{id}"))]
struct Project {
    org: String,
    id: String,
    team: String,
    title: String,
}

#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Task", pk = "ORG#{org}", sk = "PROJECT#{project}#TASK#{id}")]
struct Task {
    org: String,
    project: String,
    id: String,
    done: bool,
}

/// Stored in the same partitions, but in no collection below.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Invoice", pk = "ORG#{org}", sk = "INVOICE#{n:04}")]
struct Invoice {
    org: String,
    n: u32,
}

/// Partitioned by another template: not part of an org's collection.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Team", pk = "TEAMS#{org}", sk = "TEAM#{name}")]
struct Team {
    org: String,
    name: String,
}

#[derive(Collection, Debug, Clone, PartialEq)]
enum Org {
    User(User),
    Project(Project),
    Task(Task),
}

#[derive(Collection, Debug, Clone, PartialEq)]
enum People {
    User(User),
}

#[derive(Collection, Debug, Clone, PartialEq)]
enum Mixed {
    User(User),
    Team(Team),
}

#[derive(Collection, Debug)]
enum Foreign {
    Stranger(Stranger),
}

#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Stranger", pk = "ORG#{org}", sk = "S")]
struct Stranger {
    org: String,
}

fn org(name: &str) -> KeyParts {
    KeyParts::new().set("org", name)
}

struct Data {
    users: Vec<User>,
    projects: Vec<Project>,
    tasks: Vec<Task>,
    invoices: Vec<Invoice>,
}

async fn filled_table(prefix: &str) -> (Table, Data) {
    let table = common::new_table(
        prefix,
        vec![User::DESIGN.clone(), Project::DESIGN.clone(), Task::DESIGN.clone(), Invoice::DESIGN.clone(), Team::DESIGN.clone()],
    )
    .await;
    let users: Vec<User> = (0..4).map(|i| User { org: "acme".into(), id: format!("u{i}"), team: "red".into() }).collect();
    let projects: Vec<Project> =
        (0..2).map(|i| Project { org: "acme".into(), id: format!("p{i}"), team: "red".into(), title: format!("P{i}") }).collect();
    let tasks: Vec<Task> =
        (0..3).map(|i| Task { org: "acme".into(), project: "p0".into(), id: format!("t{i}"), done: i == 1 }).collect();
    let invoices: Vec<Invoice> = (0..2).map(|n| Invoice { org: "acme".into(), n }).collect();
    table
        .batch_write()
        .put_all(&users)
        .put_all(&projects)
        .put_all(&tasks)
        .put_all(&invoices)
        .put(&User { org: "other".into(), id: "x".into(), team: "blue".into() })
        .put(&Team { org: "acme".into(), name: "red".into() })
        .send()
        .await
        .unwrap();
    (table, Data { users, projects, tasks, invoices })
}

/// The collection in key order: INVOICE# < PROJECT#p0 < PROJECT#p0#TASK# < PROJECT#p1 < USER#.
fn expected_org(d: &Data) -> Vec<Org> {
    let mut v: Vec<Org> = vec![Org::Project(d.projects[0].clone())];
    v.extend(d.tasks.iter().cloned().map(Org::Task));
    v.push(Org::Project(d.projects[1].clone()));
    v.extend(d.users.iter().cloned().map(Org::from));
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_reads_into_the_enum_and_reports_other_entities() {
    let (table, data) = filled_table("coll_all").await;
    let page = table.collection::<Org>().pk(org("acme")).all().await.unwrap();
    assert_eq!(page.items, expected_org(&data));
    assert_eq!(page.cursor, None);
    // The invoices are not dropped: they come back as stored.
    assert_eq!(page.unknown.len(), 2);
    for (raw, invoice) in page.unknown.iter().zip(&data.invoices) {
        assert_eq!(Invoice::from_item(raw.clone()).unwrap(), *invoice);
    }
    let entities: Vec<&str> = page.items.iter().map(Collection::entity).collect();
    assert_eq!(entities, ["Project", "Task", "Task", "Task", "Project", "User", "User", "User", "User"]);

    // A narrower collection: everything but users is unknown.
    let people = table.collection::<People>().pk(org("acme")).consistent(true).all().await.unwrap();
    assert_eq!(people.items, data.users.iter().cloned().map(People::User).collect::<Vec<_>>());
    assert_eq!(people.unknown.len(), 2 + 2 + 3);

    // Sort key prefix, order and limit.
    let projects = table.collection::<Org>().pk(org("acme")).sk_begins_with("PROJECT#p0").all().await.unwrap();
    assert_eq!(projects.items, expected_org(&data)[..4]);
    let last = table.collection::<Org>().pk(org("acme")).reverse().limit(2).all().await.unwrap();
    assert_eq!(last.items, [Org::User(data.users[3].clone()), Org::User(data.users[2].clone())]);
    singletable_tests::delete_table(table.client(), table.name()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_yields_unknown_items_as_errors_and_goes_on() {
    let (table, data) = filled_table("coll_stream").await;
    let results: Vec<Result<Org, Error>> = table.collection::<Org>().pk(org("acme")).page_size(3).stream().collect().await;
    assert_eq!(results.len(), 11);
    let mut members = Vec::new();
    for r in results.iter().take(2) {
        match r {
            Err(Error::UnknownEntity { collection, found, expected, pk, sk }) => {
                assert_eq!(*collection, "Org");
                assert_eq!(found.as_deref(), Some("Invoice"));
                assert_eq!(expected, "User, Project, Task");
                assert_eq!(pk.as_deref(), Some("ORG#acme"));
                assert!(sk.as_deref().unwrap().starts_with("INVOICE#"));
            }
            other => panic!("expected UnknownEntity, got {other:?}"),
        }
    }
    let message = results[0].as_ref().unwrap_err().to_string();
    assert_eq!(message, "collection `Org`: entity `Invoice` at (ORG#acme, INVOICE#0000) is not one of its entities (User, Project, Task)");
    for r in results.into_iter().skip(2) {
        members.push(r.unwrap());
    }
    assert_eq!(members, expected_org(&data));
    singletable_tests::delete_table(table.client(), table.name()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn collections_page_with_cursors_and_query_indexes() {
    let (table, data) = filled_table("coll_page").await;
    let mut items = Vec::new();
    let mut unknown = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = table.collection::<Org>().pk(org("acme")).page_size(4).page(cursor.as_deref()).await.unwrap();
        assert!(page.items.len() + page.unknown.len() <= 4);
        items.extend(page.items);
        unknown += page.unknown.len();
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(items, expected_org(&data));
    assert_eq!(unknown, 2);

    // The team's users and projects, through the GSI both write.
    let red = table.collection::<Org>().index("gsi1").pk(KeyParts::new().set("team", "red")).all().await.unwrap();
    let mut expected: Vec<Org> = data.projects.iter().cloned().map(Org::Project).collect();
    expected.extend(data.users.iter().cloned().map(Org::User));
    assert_eq!(red.items, expected);
    assert!(red.unknown.is_empty());
    singletable_tests::delete_table(table.client(), table.name()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn collections_refuse_what_cannot_be_one_partition() {
    let (table, _) = filled_table("coll_refuse").await;
    // A member the table's design does not know.
    let err = table.collection::<Foreign>().pk(org("acme")).all().await.unwrap_err();
    assert!(matches!(&err, Error::Design(m) if m.contains("`Stranger` is not part of the design")), "{err}");
    // Members whose partition templates disagree for the parts given.
    let err = table.collection::<Mixed>().pk(org("acme")).all().await.unwrap_err();
    assert!(matches!(&err, Error::InvalidArgument { argument: "pk", reason } if reason.contains("ORG#acme") && reason.contains("TEAMS#acme")), "{err}");
    // Parts that no member's partition template takes.
    let err = table.collection::<Org>().pk(KeyParts::new().set("nope", "x")).all().await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { argument: "key parts", .. } | Error::MissingKeyField { .. }), "{err:?}");
    singletable_tests::delete_table(table.client(), table.name()).await;
}

#[test]
fn the_derive_dispatches_encodes_and_converts() {
    let task = Task { org: "acme".into(), project: "p".into(), id: "t".into(), done: false };
    let member: Org = task.clone().into();
    assert_eq!(member.entity(), "Task");
    let item = member.to_item().unwrap();
    assert_eq!(item, task.to_item().unwrap());
    assert_eq!(Org::from_item(item).unwrap(), Org::Task(task));
    assert_eq!(<Org as Collection>::NAME, "Org");
    let names: Vec<&str> = Org::ENTITIES.iter().map(|e| e.entity.as_ref()).collect();
    assert_eq!(names, ["User", "Project", "Task"]);
    // An item without an entity-type attribute.
    let mut bare = Invoice { org: "acme".into(), n: 1 }.to_item().unwrap();
    bare.remove("_et");
    let err = Org::from_item(bare).unwrap_err();
    assert!(err.to_string().contains("an item without an entity-type attribute at (ORG#acme, INVOICE#0001)"), "{err}");
}
