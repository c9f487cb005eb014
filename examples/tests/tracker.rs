//! Every access pattern of the tracker (examples/README.md), against
//! DynamoDB Local: each test gets a fresh v1 table seeded with
//! `Seed::SMALL` (3 organizations, 8 projects of 12 tasks).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use singletable::{CancelKind, Error, Item, Table};
use singletable_examples::tracker::v1::{self, Comment, Invitation, OrgDirectory, Project, ProjectBoard, Task, User};
use singletable_examples::tracker::{comments_on, new_task, NewTask, Seed, ORGS};

const TASKS: u32 = Seed::SMALL.tasks_per_project;

async fn seeded(prefix: &str) -> Table {
    let client = singletable_tests::client().await;
    let name = singletable_tests::unique_table_name(prefix);
    let table = v1::create_table(&client, &name, false).await.unwrap();
    v1::seed(&table, &Seed::SMALL).await.unwrap();
    table
}

async fn drop_table(table: Table) {
    singletable_tests::delete_table(table.client(), table.name()).await;
}

/// Every item of the table or of one index.
async fn scan(table: &Table, index: Option<&str>) -> Vec<HashMap<String, AttributeValue>> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = table.client().scan().table_name(table.name()).set_index_name(index.map(String::from)).set_exclusive_start_key(start).send().await.unwrap();
        out.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            return out;
        }
    }
}

fn key(org: &str, project: &str) -> (String, String) {
    (org.to_string(), project.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_writes_what_it_reports() {
    let table = seeded("tracker_seed").await;
    let items = scan(&table, None).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for i in &items {
        *counts.entry(i["_et"].as_s().unwrap().clone()).or_default() += 1;
    }
    let projects: usize = ORGS.iter().map(|o| o.projects.len()).sum();
    let comments: usize = (1..=TASKS).map(comments_on).sum::<usize>() * projects;
    assert_eq!(counts["Organization"], ORGS.len());
    assert_eq!(counts["User"], ORGS.iter().map(|o| o.users.len()).sum::<usize>());
    assert_eq!(counts["Invitation"], ORGS.iter().map(|o| o.invitations.len()).sum::<usize>() + 1);
    assert_eq!(counts["Project"], projects);
    assert_eq!(counts["Task"], projects * TASKS as usize);
    assert_eq!(counts["Comment"], comments);
    drop_table(table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn p1_get_an_organization() {
    let table = seeded("tracker_p1").await;
    let acme = v1::get_organization(&table, "acme").await.unwrap().unwrap();
    assert_eq!((acme.org_id.as_str(), acme.name.as_str(), acme.plan.as_str()), ("acme", "Acme Corp", "team"));
    assert!(acme.created_at.is_some(), "created_at is set by the first write");
    assert_eq!(v1::get_organization(&table, "nobody").await.unwrap(), None);
    drop_table(table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn p2_org_directory_is_one_collection_query() {
    let table = seeded("tracker_p2").await;
    let dir = v1::org_directory(&table, "acme").await.unwrap();
    // Key order: INVITE# < ORG < USER#.
    let entities: Vec<&str> = dir.iter().map(singletable::Collection::entity).collect();
    assert_eq!(entities, ["Invitation", "Invitation", "Invitation", "Organization", "User", "User", "User", "User"]);
    let OrgDirectory::Organization(org) = &dir[3] else { panic!("{dir:?}") };
    assert_eq!(org.name, "Acme Corp");
    let users: Vec<&str> = dir.iter().filter_map(|m| if let OrgDirectory::User(u) = m { Some(u.user_id.as_str()) } else { None }).collect();
    assert_eq!(users, ["ann", "bob", "cat", "dan"]);
    // Another tenant's partition holds only its own items.
    let initech = v1::org_directory(&table, "initech").await.unwrap();
    assert_eq!(initech.len(), 1 + 2);
    drop_table(table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn p3_users_of_an_organization() {
    let table = seeded("tracker_p3").await;
    let users = v1::list_users(&table, "globex").await.unwrap();
    let ids: Vec<(&str, &str)> = users.iter().map(|u| (u.user_id.as_str(), u.role.as_str())).collect();
    assert_eq!(ids, [("ann", "member"), ("eve", "owner"), ("joe", "member")]);
    assert!(users.iter().all(|u| u.org_id == "globex"));
    drop_table(table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn p4_accounts_by_email_across_organizations() {
    let table = seeded("tracker_p4").await;
    let ann = v1::accounts_by_email(&table, "ann@example.com").await.unwrap();
    let orgs: Vec<&str> = ann.iter().map(|u| u.org_id.as_str()).collect();
    assert_eq!(orgs, ["acme", "globex"]);
    assert_eq!(v1::accounts_by_email(&table, "nobody@example.com").await.unwrap(), []);
    drop_table(table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn p5_pending_invitations_leave_out_expired_ones_and_ttl_is_set() {
    let table = seeded("tracker_p5").await;
    let now = SystemTime::now();
    let pending = v1::pending_invitations(&table, "acme", now).await.unwrap();
    let emails: Vec<&str> = pending.iter().map(|i| i.email.as_str()).collect();
    assert_eq!(emails, ["gus@example.com", "ivy@example.com"], "hal's expired invitation is left out");
    // Stored as epoch seconds in the TTL attribute, which the table's TTL reads.
    let raw = scan(&table, None).await.into_iter().find(|i| i.get("email").and_then(|v| v.as_s().ok()).map(String::as_str) == Some("hal@example.com") && i["_et"].as_s().unwrap() == "Invitation").unwrap();
    let expires: u64 = raw["expires_at"].as_n().unwrap().parse().unwrap();
    let now_secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(expires < now_secs && expires > now_secs - 2 * 86_400, "{expires} vs {now_secs}");
    let ttl = table.client().describe_time_to_live().table_name(table.name()).send().await.unwrap();
    let ttl = ttl.time_to_live_description.unwrap();
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
    // A week later, nothing is pending.
    assert_eq!(v1::pending_invitations(&table, "acme", now + Duration::from_secs(8 * 86_400)).await.unwrap(), []);
    // A pending invitation is not overwritten.
    v1::invite(&table, "initech", "zoe@example.com", "admin", "lou", Duration::from_secs(3600)).await.unwrap();
    let again = v1::invite(&table, "initech", "zoe@example.com", "member", "mia", Duration::from_secs(3600)).await.unwrap_err();
    assert!(matches!(again, Error::ConditionFailed { .. }), "{again:?}");
    let pending = v1::pending_invitations(&table, "initech", SystemTime::now()).await.unwrap();
    assert_eq!(pending.iter().map(|i| (i.email.as_str(), i.role.as_str())).collect::<Vec<_>>(), [("zoe@example.com", "admin")]);
    // An expired one is replaced: hal is invited again.
    v1::invite(&table, "acme", "hal@example.com", "admin", "bob", Duration::from_secs(3600)).await.unwrap();
    let pending = v1::pending_invitations(&table, "acme", SystemTime::now()).await.unwrap();
    assert_eq!(pending.iter().map(|i| i.email.as_str()).collect::<Vec<_>>(), ["gus@example.com", "hal@example.com", "ivy@example.com"]);
    drop_table(table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn p6_accepting_an_invitation_is_one_transaction() {
    let table = seeded("tracker_p6").await;
    let now = SystemTime::now();
    let gus = v1::accept_invitation(&table, "acme", "gus@example.com", "gus", "Gus", now).await.unwrap().unwrap();
    assert_eq!((gus.role.as_str(), gus.email.as_str()), ("member", "gus@example.com"));
    assert_eq!(table.get::<User>(&key("acme", "gus")).await.unwrap(), Some(gus));
    assert_eq!(table.get::<Invitation>(&key("acme", "gus@example.com")).await.unwrap(), None);
    // Accepted once: no pending invitation any more.
    assert_eq!(v1::accept_invitation(&table, "acme", "gus@example.com", "gus2", "Gus", now).await.unwrap(), None);
    // Expired (TTL has not deleted it yet): refused.
    assert_eq!(v1::accept_invitation(&table, "acme", "hal@example.com", "hal", "Hal", now).await.unwrap(), None);
    assert!(table.get::<User>(&key("acme", "hal")).await.unwrap().is_none());
    // The user id is taken: the transaction is cancelled, and the
    // invitation is still there.
    let err = v1::accept_invitation(&table, "acme", "ivy@example.com", "bob", "Ivy", now).await.unwrap_err();
    let Error::TransactionCanceled { reasons, .. } = &err else { panic!("{err:?}") };
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert_eq!((reasons[0].action, reasons[0].operation), (1, "Put"));
    assert!(matches!(reasons[0].kind, CancelKind::AlreadyExists), "{reasons:?}");
    assert!(table.get::<Invitation>(&key("acme", "ivy@example.com")).await.unwrap().is_some());
    assert_eq!(table.get::<User>(&key("acme", "bob")).await.unwrap().unwrap().name, "Bob");
    drop_table(table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn p7_projects_page_by_page_with_a_cursor() {
    let table = seeded("tracker_p7").await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = v1::list_projects(&table, "acme", 2, cursor.as_deref()).await.unwrap();
        assert!(page.items.len() <= 2);
        pages += 1;
        seen.extend(page.items.into_iter().map(|p| p.project_id));
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["apollo", "gemini", "mercury", "skylab", "voyager"]);
    assert!((3..=4).contains(&pages), "{pages} pages");
    // A cursor is bound to its query: acme's is refused for globex.
    let first = v1::list_projects(&table, "acme", 2, None).await.unwrap();
    let err = v1::list_projects(&table, "globex", 2, first.cursor.as_deref()).await.unwrap_err();
    assert!(matches!(err, Error::Cursor { .. }), "{err:?}");
    let cursor = first.cursor.unwrap();
    let mut tampered: Vec<char> = cursor.chars().collect();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == 'x' { 'y' } else { 'x' };
    let tampered: String = tampered.into_iter().collect();
    let err = v1::list_projects(&table, "acme", 2, Some(&tampered)).await.unwrap_err();
    assert!(matches!(err, Error::Cursor { .. }), "{err:?}");
    drop_table(table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn p8_optimistic_locking_detects_and_retries_conflicts() {
    let table = seeded("tracker_p8").await;
    let stale = table.get::<Project>(&key("acme", "apollo")).await.unwrap().unwrap();
    // Another writer: creating a task bumps the project's version.
    v1::create_task(&table, "acme", "apollo", NewTask { title: "meanwhile".into(), ..NewTask::default() }).await.unwrap();
    let mut mine = Project { description: "mine".into(), ..stale.clone() };
    let err = v1::save_project(&table, &mut mine).await.unwrap_err();
    match &err {
        Error::VersionConflict { expected, found, .. } => assert_eq!((*expected, *found), (stale.version, Some(stale.version + 1))),
        other => panic!("expected a version conflict, got {other:?}"),
    }
    let stored = table.get::<Project>(&key("acme", "apollo")).await.unwrap().unwrap();
    assert_eq!(stored.description, stale.description, "the stale save wrote nothing");
    assert_eq!(stored.task_count, TASKS + 1);

    // Six editors at once, each appending to the description: every edit
    // lands (no lost update), each a version of its own.
    let editors = (0..6).map(|i| {
        let table = table.clone();
        tokio::spawn(async move {
            v1::edit_project(&table, "acme", "apollo", 50, move |p| p.description.push_str(&format!(" e{i}"))).await.unwrap()
        })
    });
    let results: Vec<(Project, u32)> = futures::future::join_all(editors).await.into_iter().map(Result::unwrap).collect();
    let after = table.get::<Project>(&key("acme", "apollo")).await.unwrap().unwrap();
    assert_eq!(after.version, stored.version + 6);
    for i in 0..6 {
        assert!(after.description.contains(&format!(" e{i}")), "{}", after.description);
    }
    assert_eq!(after.task_count, TASKS + 1, "edits keep the counter");
    let retried: u32 = results.iter().map(|(_, n)| n - 1).sum();
    eprintln!("6 concurrent editors needed {retried} retries");
    drop_table(table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn p9_project_board_is_one_collection_query() {
    let table = seeded("tracker_p9").await;
    let board = v1::project_board(&table, "acme", "gemini").await.unwrap();
    let ProjectBoard::Project(p) = &board[0] else { panic!("the project comes first: {:?}", board[0]) };
    assert_eq!((p.project_id.as_str(), p.task_count), ("gemini", TASKS));
    // Then every task, each followed by its comments.
    let mut expected = Vec::new();
    for n in 1..=TASKS {
        expected.push(format!("Task {n}"));
        expected.extend((0..comments_on(n)).map(|_| format!("Comment {n}")));
    }
    let got: Vec<String> = board[1..]
        .iter()
        .map(|m| match m {
            ProjectBoard::Task(t) => format!("Task {}", t.number),
            ProjectBoard::Comment(c) => format!("Comment {}", c.number),
            ProjectBoard::Project(p) => panic!("a second project {p:?}"),
        })
        .collect();
    assert_eq!(got, expected);
    assert!(board.iter().all(|m| match m {
        ProjectBoard::Project(p) => p.org_id == "acme",
        ProjectBoard::Task(t) => t.project_id == "gemini",
        ProjectBoard::Comment(c) => c.project_id == "gemini",
    }));
    drop_table(table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn p10_creating_a_task_bumps_the_counter_in_the_same_transaction() {
    let table = seeded("tracker_p10").await;
    let new = NewTask { title: "Write the release notes".into(), assignee: Some("dan".into()), due: Some("2026-05-01".into()), ..NewTask::default() };
    let task = v1::create_task(&table, "acme", "skylab", new).await.unwrap();
    assert_eq!(task.number, TASKS + 1);
    assert_eq!(table.get::<Task>(&("acme".into(), "skylab".into(), TASKS + 1)).await.unwrap(), Some(task.clone()));
    assert_eq!(table.get::<Project>(&key("acme", "skylab")).await.unwrap().unwrap().task_count, TASKS + 1);

    // Five creations at once get five distinct, consecutive numbers.
    let creators = (0..5).map(|i| {
        let table = table.clone();
        tokio::spawn(async move { v1::create_task(&table, "acme", "skylab", NewTask { title: format!("parallel {i}"), ..NewTask::default() }).await })
    });
    let mut numbers = Vec::new();
    let mut conflicts = 0;
    for r in futures::future::join_all(creators).await {
        match r.unwrap() {
            Ok(t) => numbers.push(t.number),
            // After five lost races in a row create_task gives up.
            Err(Error::TransactionCanceled { .. }) => conflicts += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    numbers.sort();
    let first = TASKS + 2;
    assert_eq!(numbers, (first..first + numbers.len() as u32).collect::<Vec<_>>(), "{conflicts} gave up");
    let project = table.get::<Project>(&key("acme", "skylab")).await.unwrap().unwrap();
    assert_eq!(project.task_count, TASKS + 1 + numbers.len() as u32);

    // With a stale counter, the transaction writes neither item.
    let p = Project::fields();
    let orphan = Task { number: 999, ..task.clone() };
    let err = table
        .transaction()
        .update(table.update::<Project>(&key("acme", "skylab")).add(p.task_count, 1).condition(p.task_count.eq(TASKS)))
        .create(&orphan)
        .send()
        .await
        .unwrap_err();
    let Error::TransactionCanceled { reasons, .. } = &err else { panic!("{err:?}") };
    assert_eq!(reasons[0].action, 0);
    assert!(matches!(reasons[0].kind, CancelKind::ConditionFailed { .. }), "{reasons:?}");
    assert_eq!(table.get::<Task>(&("acme".into(), "skylab".into(), 999)).await.unwrap(), None);
    assert_eq!(table.get::<Project>(&key("acme", "skylab")).await.unwrap().unwrap().task_count, project.task_count);

    // No project, no task.
    let err = v1::create_task(&table, "acme", "nope", NewTask::default()).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    drop_table(table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn p11_tasks_page_by_page_in_number_order() {
    let table = seeded("tracker_p11").await;
    let mut numbers = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = v1::list_tasks(&table, "globex", "atlas", 5, cursor.as_deref()).await.unwrap();
        assert!(page.items.len() <= 5);
        numbers.extend(page.items.iter().map(|t| t.number));
        pages += 1;
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(numbers, (1..=TASKS).collect::<Vec<_>>(), "numeric order: #2 before #10");
    assert!(pages >= 3, "{pages}");
    drop_table(table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn p12_a_range_of_tasks() {
    let table = seeded("tracker_p12").await;
    let range = v1::tasks_in_range(&table, "acme", "mercury", 8, 11).await.unwrap();
    assert_eq!(range.iter().map(|t| t.number).collect::<Vec<_>>(), [8, 9, 10, 11]);
    let expected = new_task(ORGS[0].users, 9);
    assert_eq!((range[1].title.as_str(), range[1].due.as_deref()), (expected.title.as_str(), expected.due.as_deref()));
    assert_eq!(v1::tasks_in_range(&table, "acme", "mercury", 100, 200).await.unwrap(), []);
    drop_table(table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn p13_a_task_with_its_comments() {
    let table = seeded("tracker_p13").await;
    let (task, comments) = v1::task_thread(&table, "acme", "apollo", 3).await.unwrap().unwrap();
    assert_eq!(task.number, 3);
    assert_eq!(comments.len(), 2);
    assert!(comments.iter().all(|c| c.number == 3));
    assert!(comments[0].posted_ms < comments[1].posted_ms, "oldest first");
    // A new comment comes last.
    let c = Comment { org_id: "acme".into(), project_id: "apollo".into(), number: 3, posted_ms: comments[1].posted_ms + 1, author: "bob".into(), body: "+1".into() };
    v1::add_comment(&table, &c).await.unwrap();
    let (_, comments) = v1::task_thread(&table, "acme", "apollo", 3).await.unwrap().unwrap();
    assert_eq!(comments.last(), Some(&c));
    // Task 1 has none; task 10 is not task 1's neighbour in the prefix.
    let (t1, none) = v1::task_thread(&table, "acme", "apollo", 1).await.unwrap().unwrap();
    assert_eq!((t1.number, none.len()), (1, 0));
    assert_eq!(v1::task_thread(&table, "acme", "apollo", 500).await.unwrap(), None);
    drop_table(table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn p14_tasks_by_assignee_through_a_sparse_index() {
    let table = seeded("tracker_p14").await;
    let all: Vec<Task> = table.scan::<Task>().all().await.unwrap();
    for o in ORGS {
        for u in o.users {
            let mine = v1::tasks_assigned_to(&table, o.id, u).await.unwrap();
            let mut expected: Vec<&Task> = all.iter().filter(|t| t.org_id == o.id && t.assignee.as_deref() == Some(*u)).collect();
            expected.sort_by_key(|t| (t.project_id.clone(), t.number));
            assert_eq!(mine.iter().collect::<Vec<_>>(), expected, "{}/{u}", o.id);
        }
    }
    // Sparse: the index holds exactly the assigned tasks.
    let in_index = scan(&table, Some("gsi2")).await;
    let assigned = all.iter().filter(|t| t.assignee.is_some()).count();
    assert!(assigned < all.len());
    assert_eq!(in_index.len(), assigned);
    assert!(in_index.iter().all(|i| i["_et"].as_s().unwrap() == "Task"));
    drop_table(table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn p15_assigning_and_unassigning_keeps_the_index_true() {
    let table = seeded("tracker_p15").await;
    // Task 5 is unassigned in the seed.
    let key5 = ("acme".to_string(), "voyager".to_string(), 5u32);
    assert_eq!(table.get::<Task>(&key5).await.unwrap().unwrap().assignee, None);
    let in_index = |tasks: &[Task]| tasks.iter().any(|t| t.project_id == "voyager" && t.number == 5);

    let t = v1::assign_task(&table, "acme", "voyager", 5, Some("bob")).await.unwrap();
    assert_eq!(t.assignee.as_deref(), Some("bob"));
    assert!(in_index(&v1::tasks_assigned_to(&table, "acme", "bob").await.unwrap()));

    v1::assign_task(&table, "acme", "voyager", 5, Some("cat")).await.unwrap();
    assert!(!in_index(&v1::tasks_assigned_to(&table, "acme", "bob").await.unwrap()));
    assert!(in_index(&v1::tasks_assigned_to(&table, "acme", "cat").await.unwrap()));

    let t = v1::set_task_status(&table, "acme", "voyager", 5, "done").await.unwrap();
    assert_eq!((t.status.as_str(), t.assignee.as_deref()), ("done", Some("cat")));

    v1::assign_task(&table, "acme", "voyager", 5, None).await.unwrap();
    assert!(!in_index(&v1::tasks_assigned_to(&table, "acme", "cat").await.unwrap()));
    let raw = table.client().get_item().table_name(table.name()).set_key(Some(HashMap::from([
        ("pk".to_string(), AttributeValue::S("ORG#acme#PROJECT#voyager".into())),
        ("sk".to_string(), AttributeValue::S("TASK#000005".into())),
    ]))).send().await.unwrap().item.unwrap();
    assert!(!raw.contains_key("gsi2pk") && !raw.contains_key("gsi2sk") && !raw.contains_key("assignee"), "{raw:?}");

    // Only existing tasks are updated.
    let err = v1::assign_task(&table, "acme", "voyager", 777, Some("bob")).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    drop_table(table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_writes_are_refused_before_sending() {
    let table = seeded("tracker_refusals").await;
    let before = scan(&table, None).await.len();
    let ann = table.get::<User>(&key("acme", "ann")).await.unwrap().unwrap();
    assert!(matches!(table.put(&User { user_id: String::new(), ..ann }).await, Err(Error::EmptyKey { .. })));
    let task = table.get::<Task>(&("acme".into(), "apollo".into(), 1)).await.unwrap().unwrap();
    let clash = Task { project_id: "apollo#2".into(), assignee: Some("ann".into()), ..task.clone() };
    assert!(matches!(table.put(&clash).await, Err(Error::KeyDelimiter { .. })));
    assert!(matches!(table.put(&Task { estimate_hours: Some(f64::NAN), ..task }).await, Err(Error::InvalidValue { .. })));
    assert_eq!(scan(&table, None).await.len(), before);
    drop_table(table).await;
}
