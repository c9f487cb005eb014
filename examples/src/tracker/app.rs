// The tracker's access patterns and seed data.
//
// This file is `include!`d by `v1.rs` and `v2.rs`, right after each
// version's entity types: the same application code compiles against both
// key designs. (So: no inner doc comments here, and every name it imports
// must not be imported by the including files.)

use std::time::{Duration, SystemTime};

use singletable::{CancelKind, Error, Item, KeyParts, Page, Table};

pub use super::NewTask;
use super::{Seed, Summary};

fn org(org_id: &str) -> KeyParts {
    KeyParts::new().set("org_id", org_id)
}

fn project_partition(org_id: &str, project_id: &str) -> KeyParts {
    KeyParts::new().set("org_id", org_id).set("project_id", project_id)
}

/// P1. One organization: `get` on its table key.
pub async fn get_organization(table: &Table, org_id: &str) -> Result<Option<Organization>, Error> {
    table.get::<Organization>(&(org_id.to_string(),)).await
}

/// P2. The organization, its users and its invitations in one query of
/// its partition, read into the [`OrgDirectory`] collection.
pub async fn org_directory(table: &Table, org_id: &str) -> Result<Vec<OrgDirectory>, Error> {
    let page = table.collection::<OrgDirectory>().pk(org(org_id)).all().await?;
    Ok(page.items)
}

/// P3. The users of an organization, by user id: the partition's sort
/// keys that begin with `USER#`.
pub async fn list_users(table: &Table, org_id: &str) -> Result<Vec<User>, Error> {
    table.query::<User>().pk(org(org_id)).sk_begins_with(KeyParts::new()).all().await
}

/// P4. Login: every organization a person (an e-mail) is a user of,
/// through `gsi1`.
pub async fn accounts_by_email(table: &Table, email: &str) -> Result<Vec<User>, Error> {
    table.query::<User>().index("gsi1").pk(KeyParts::new().set("email", email)).all().await
}

/// P5. Pending invitations of an organization. DynamoDB's time to live
/// deletes an expired invitation only some time after `expires_at` (up to
/// a few days), so the query filters out those past `now`.
pub async fn pending_invitations(table: &Table, org_id: &str, now: SystemTime) -> Result<Vec<Invitation>, Error> {
    let f = Invitation::fields();
    table.query::<Invitation>().pk(org(org_id)).sk_begins_with(KeyParts::new()).filter(f.expires_at.gt(now)).all().await
}

/// Invites `email` to an organization for `valid_for`. A pending
/// invitation is not overwritten ([`Error::ConditionFailed`]); an expired
/// one that time to live has not deleted yet is replaced.
pub async fn invite(
    table: &Table,
    org_id: &str,
    email: &str,
    role: &str,
    invited_by: &str,
    valid_for: Duration,
) -> Result<Invitation, Error> {
    let now = SystemTime::now();
    let invitation = Invitation {
        org_id: org_id.into(),
        email: email.into(),
        role: role.into(),
        invited_by: invited_by.into(),
        expires_at: now + valid_for,
    };
    let f = Invitation::fields();
    table.put_if(&invitation, f.expires_at.not_exists() | f.expires_at.le(now)).await?;
    Ok(invitation)
}

/// P6. Accepting an invitation, in one transaction: the invitation is
/// deleted on condition that it has not expired, and the user is created
/// (create-only) with the invitation's role. `Ok(None)` when there is no
/// pending invitation; a transaction cancelled because it expired or was
/// accepted in the meantime is [`Error::TransactionCanceled`].
pub async fn accept_invitation(
    table: &Table,
    org_id: &str,
    email: &str,
    user_id: &str,
    name: &str,
    now: SystemTime,
) -> Result<Option<User>, Error> {
    let key = (org_id.to_string(), email.to_string());
    let Some(invitation) = table.get::<Invitation>(&key).await? else { return Ok(None) };
    if invitation.expires_at <= now {
        return Ok(None);
    }
    let user = User { org_id: org_id.into(), user_id: user_id.into(), email: email.into(), name: name.into(), role: invitation.role };
    let f = Invitation::fields();
    table.transaction().delete_if::<Invitation>(&key, f.expires_at.gt(now)).create(&user).send().await?;
    Ok(Some(user))
}

/// P7. An organization's projects, a page at a time, through `gsi1`. Pass
/// the previous page's cursor (as an HTTP API would get it back from its
/// client) for the next page.
pub async fn list_projects(table: &Table, org_id: &str, page_size: usize, cursor: Option<&str>) -> Result<Page<Project>, Error> {
    table.query::<Project>().index("gsi1").pk(org(org_id)).page_size(page_size).page(cursor).await
}

/// A new project (create-only).
pub async fn create_project(table: &Table, org_id: &str, project_id: &str, name: &str, description: &str) -> Result<Project, Error> {
    let mut project = Project {
        org_id: org_id.into(),
        project_id: project_id.into(),
        name: name.into(),
        description: description.into(),
        task_count: 0,
        version: 0,
        created_at: None,
        updated_at: None,
    };
    // Version 0 means "new": `save` refuses to overwrite an existing
    // project, and copies the stored version and timestamps back.
    table.save(&mut project).await?;
    Ok(project)
}

/// P8. Edits a project with optimistic locking: read it, apply `edit`,
/// save at the version read. When another writer saved in between (a
/// version conflict), read it again and re-apply the edit, at most
/// `attempts` times. Returns the saved project and how many saves it took.
pub async fn edit_project(
    table: &Table,
    org_id: &str,
    project_id: &str,
    attempts: u32,
    edit: impl Fn(&mut Project),
) -> Result<(Project, u32), Error> {
    let key = (org_id.to_string(), project_id.to_string());
    let mut tries = 0;
    loop {
        tries += 1;
        let mut project = table.get::<Project>(&key).await?.ok_or_else(|| not_found::<Project>(&key))?;
        edit(&mut project);
        match table.save(&mut project).await {
            Ok(()) => return Ok((project, tries)),
            Err(Error::VersionConflict { .. }) if tries < attempts => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Saves a project read earlier, at the version it was read: the
/// building block of [`edit_project`], which a caller holding a project
/// across a user's think time uses directly.
pub async fn save_project(table: &Table, project: &mut Project) -> Result<(), Error> {
    table.save(project).await
}

fn not_found<T: Item>(key: &T::Key) -> Error {
    match T::key_of(key) {
        Ok(k) => Error::NotFound { entity: T::DESIGN.entity.to_string(), pk: k.pk, sk: k.sk },
        Err(e) => e,
    }
}

/// P9. A project board: the project, its tasks and their comments, in one
/// query of the project's partition (the [`ProjectBoard`] collection).
pub async fn project_board(table: &Table, org_id: &str, project_id: &str) -> Result<Vec<ProjectBoard>, Error> {
    let page = table.collection::<ProjectBoard>().pk(project_partition(org_id, project_id)).all().await?;
    Ok(page.items)
}

/// P10. Creates a task, in one transaction with the project's counter:
/// the project's `task_count` goes from `n` to `n + 1` on condition that
/// it is still `n`, and task number `n + 1` is created (create-only).
/// Either both happen or neither; a concurrent creation makes the
/// condition fail, and the task is numbered again (at most 5 times).
pub async fn create_task(table: &Table, org_id: &str, project_id: &str, new: NewTask) -> Result<Task, Error> {
    let key = (org_id.to_string(), project_id.to_string());
    let p = Project::fields();
    let mut tries = 0;
    loop {
        tries += 1;
        let project = table.get::<Project>(&key).await?.ok_or_else(|| not_found::<Project>(&key))?;
        let task = Task {
            org_id: org_id.into(),
            project_id: project_id.into(),
            number: project.task_count + 1,
            title: new.title.clone(),
            status: "todo".into(),
            assignee: new.assignee.clone(),
            due: new.due.clone(),
            estimate_hours: new.estimate_hours,
            labels: new.labels.clone(),
        };
        let result = table
            .transaction()
            .update(table.update::<Project>(&key).add(p.task_count, 1).condition(p.task_count.eq(project.task_count)))
            .create(&task)
            .send()
            .await;
        match result {
            Ok(()) => return Ok(task),
            Err(Error::TransactionCanceled { ref reasons, .. })
                if tries < 5
                    && reasons.iter().all(|r| matches!(r.kind, CancelKind::ConditionFailed { .. } | CancelKind::AlreadyExists | CancelKind::Conflict)) =>
            {
                continue
            }
            Err(e) => return Err(e),
        }
    }
}

/// P11. A project's tasks in number order, a page at a time: the sort
/// keys that begin with `TASK#`. (Comments share the prefix; they are read
/// and left out, so a page may hold fewer than `page_size` tasks.)
pub async fn list_tasks(
    table: &Table,
    org_id: &str,
    project_id: &str,
    page_size: usize,
    cursor: Option<&str>,
) -> Result<Page<Task>, Error> {
    table
        .query::<Task>()
        .pk(project_partition(org_id, project_id))
        .sk_begins_with(KeyParts::new())
        .page_size(page_size)
        .page(cursor)
        .await
}

/// P12. Tasks `from..=to` of a project: sort keys between `TASK#{from:06}`
/// and `TASK#{to:06}`.
pub async fn tasks_in_range(table: &Table, org_id: &str, project_id: &str, from: u32, to: u32) -> Result<Vec<Task>, Error> {
    table
        .query::<Task>()
        .pk(project_partition(org_id, project_id))
        .sk_between(KeyParts::new().set("number", from), KeyParts::new().set("number", to))
        .all()
        .await
}

/// P13. One task and its comments (oldest first), in one query: the sort
/// keys that begin with `TASK#{number:06}`.
pub async fn task_thread(table: &Table, org_id: &str, project_id: &str, number: u32) -> Result<Option<(Task, Vec<Comment>)>, Error> {
    let page = table
        .collection::<ProjectBoard>()
        .pk(project_partition(org_id, project_id))
        .sk_begins_with(format!("TASK#{number:06}"))
        .all()
        .await?;
    let mut task = None;
    let mut comments = Vec::new();
    for member in page.items {
        match member {
            ProjectBoard::Task(t) => task = Some(t),
            ProjectBoard::Comment(c) => comments.push(c),
            ProjectBoard::Project(_) => {}
        }
    }
    Ok(task.map(|t| (t, comments)))
}

/// Adds a comment to a task.
pub async fn add_comment(table: &Table, comment: &Comment) -> Result<(), Error> {
    table.create(comment).await
}

/// P14. The tasks assigned to a user, across the organization's projects,
/// through the sparse index `gsi2`: unassigned tasks are not in it.
pub async fn tasks_assigned_to(table: &Table, org_id: &str, user_id: &str) -> Result<Vec<Task>, Error> {
    table.query::<Task>().index("gsi2").pk(KeyParts::new().set("org_id", org_id).set("assignee", user_id)).all().await
}

/// P15. Assigns a task (`None`: unassigns it). The update rewrites the
/// task's `gsi2` key from the new assignee in the same request, or removes
/// the task from the sparse index; it applies only to an existing task.
pub async fn assign_task(table: &Table, org_id: &str, project_id: &str, number: u32, assignee: Option<&str>) -> Result<Task, Error> {
    let f = Task::fields();
    table
        .update::<Task>(&(org_id.to_string(), project_id.to_string(), number))
        .set(f.assignee, assignee.map(str::to_string))
        .send()
        .await
}

/// P15. Moves a task to another status (`todo`, `doing`, `done`).
pub async fn set_task_status(table: &Table, org_id: &str, project_id: &str, number: u32, status: &str) -> Result<Task, Error> {
    let f = Task::fields();
    table.update::<Task>(&(org_id.to_string(), project_id.to_string(), number)).set(f.status, status).send().await
}

/// Creates the table of this version's design (deleting a table of the
/// same name first when `fresh`).
pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str, fresh: bool) -> Result<Table, Error> {
    let table = Table::new(client.clone(), design(name)?);
    if fresh && client.describe_table().table_name(name).send().await.is_ok() {
        table.delete_table().await?;
    }
    table.create_table().await?;
    Ok(table)
}

/// Fills the table with the sample organizations of [`Seed`]: through the
/// access patterns where they write (projects, a few tasks through
/// [`create_task`], invitations), in batches for the bulk of tasks and
/// comments. Returns how many items of each entity it wrote.
pub async fn seed(table: &Table, seed: &Seed) -> Result<Vec<(&'static str, usize)>, Error> {
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    let mut counts = vec![("Organization", 0), ("User", 0), ("Invitation", 0), ("Project", 0), ("Task", 0), ("Comment", 0)];
    let mut batch = table.batch_write();
    for o in super::ORGS {
        batch = batch.put(&Organization { org_id: o.id.into(), name: o.name.into(), plan: o.plan.into(), created_at: None });
        counts[0].1 += 1;
        for (i, u) in o.users.iter().enumerate() {
            let role = if i == 0 { "owner" } else { "member" };
            batch = batch.put(&User {
                org_id: o.id.into(),
                user_id: u.to_string(),
                email: format!("{u}@example.com"),
                name: super::display_name(u),
                role: role.into(),
            });
            counts[1].1 += 1;
        }
    }
    batch.send().await?;

    for o in super::ORGS {
        for invitee in o.invitations {
            invite(table, o.id, &format!("{invitee}@example.com"), "member", o.users[0], 7 * day).await?;
            counts[2].1 += 1;
        }
        for (p, name) in o.projects.iter().enumerate() {
            let project_id = name.to_lowercase();
            let description = format!("{name}: project {} of {}", p + 1, o.name);
            create_project(table, o.id, &project_id, name, &description).await?;
            counts[3].1 += 1;
            let tasks = seed.tasks_per_project;
            // The first tasks go through the transaction of P10, the rest
            // in batches, with the project's counter set to match.
            let by_transaction = tasks.min(3);
            for n in 1..=by_transaction {
                create_task(table, o.id, &project_id, super::new_task(o.users, n)).await?;
            }
            let mut batch = table.batch_write();
            let mut comments = 0;
            for n in by_transaction + 1..=tasks {
                let new = super::new_task(o.users, n);
                let status = super::STATUSES[(n % 3) as usize];
                batch = batch.put(&Task {
                    org_id: o.id.into(),
                    project_id: project_id.clone(),
                    number: n,
                    title: new.title,
                    status: status.into(),
                    assignee: new.assignee,
                    due: new.due,
                    estimate_hours: new.estimate_hours,
                    labels: new.labels,
                });
            }
            for n in 1..=tasks {
                for c in 0..super::comments_on(n) {
                    let author = o.users[(n as usize + c) % o.users.len()];
                    batch = batch.put(&Comment {
                        org_id: o.id.into(),
                        project_id: project_id.clone(),
                        number: n,
                        posted_ms: seed.epoch_ms + u64::from(n) * 60_000 + c as u64 * 1_000,
                        author: author.into(),
                        body: format!("{} on #{n}: {}", super::display_name(author), super::COMMENT_TEXT[(n as usize + c) % super::COMMENT_TEXT.len()]),
                    });
                    comments += 1;
                }
            }
            batch.send().await?;
            if tasks > by_transaction {
                let f = Project::fields();
                table.update::<Project>(&(o.id.to_string(), project_id.clone())).set(f.task_count, tasks).send().await?;
            }
            counts[4].1 += tasks as usize;
            counts[5].1 += comments;
        }
    }
    // An invitation past its expiry that time to live has not deleted yet.
    let expired = Invitation {
        org_id: "acme".into(),
        email: "hal@example.com".into(),
        role: "member".into(),
        invited_by: "ann".into(),
        expires_at: now - day,
    };
    table.put(&expired).await?;
    counts[2].1 += 1;
    Ok(counts)
}

/// What every read-only access pattern returns for one organization: one
/// [`Summary`] per pattern, with the full results (`detail`) to compare
/// two runs and a short line to print. The demo runs it before and after
/// the migration: the same answers from the other key design.
pub async fn read_patterns(table: &Table, org_id: &str, now: SystemTime) -> Result<Vec<Summary>, Error> {
    let mut out = Vec::new();
    let detail = |v: &dyn std::fmt::Debug| format!("{v:#?}");

    let o = get_organization(table, org_id).await?;
    out.push(Summary::new("P1", "get organization", o.as_ref().map_or("none".into(), |o| format!("{} ({} plan)", o.name, o.plan)), detail(&o)));

    let dir = org_directory(table, org_id).await?;
    let kinds = count_by(dir.iter().map(|m| singletable::Collection::entity(m)));
    out.push(Summary::new("P2", "org directory (collection)", kinds, detail(&dir)));

    let users = list_users(table, org_id).await?;
    out.push(Summary::new("P3", "users", join(users.iter().map(|u| format!("{} ({})", u.user_id, u.role))), detail(&users)));

    let first = users.first().map(|u| u.email.clone()).unwrap_or_default();
    let accounts = accounts_by_email(table, &first).await?;
    out.push(Summary::new(
        "P4",
        "accounts by e-mail (gsi1)",
        format!("{first} -> {}", join(accounts.iter().map(|u| format!("{}/{}", u.org_id, u.user_id)))),
        detail(&accounts),
    ));

    let pending = pending_invitations(table, org_id, now).await?;
    out.push(Summary::new("P5", "pending invitations (TTL)", join(pending.iter().map(|i| i.email.clone())), detail(&pending)));

    let mut projects = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = list_projects(table, org_id, 2, cursor.as_deref()).await?;
        pages += 1;
        projects.extend(page.items);
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    out.push(Summary::new(
        "P7",
        "projects, 2 per page (gsi1, cursor)",
        format!("{} in {pages} pages: {}", projects.len(), join(projects.iter().map(|p| p.project_id.clone()))),
        detail(&projects),
    ));

    let Some(project) = projects.first() else { return Ok(out) };
    let pid = project.project_id.clone();
    let board = project_board(table, org_id, &pid).await?;
    out.push(Summary::new(
        "P9",
        "project board (collection)",
        format!("{pid}: {}", count_by(board.iter().map(|m| singletable::Collection::entity(m)))),
        detail(&board),
    ));

    let mut tasks = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = list_tasks(table, org_id, &pid, 25, cursor.as_deref()).await?;
        pages += 1;
        tasks.extend(page.items);
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    out.push(Summary::new("P11", "tasks, 25 items read per page", format!("{pid}: {} tasks in {pages} pages", tasks.len()), detail(&tasks)));

    let range = tasks_in_range(table, org_id, &pid, 8, 12).await?;
    out.push(Summary::new("P12", "tasks #8..=#12 (sk between)", join(range.iter().map(|t| format!("#{}", t.number))), detail(&range)));

    let thread = task_thread(table, org_id, &pid, 3).await?;
    let line = match &thread {
        Some((t, comments)) => format!("#{} {:?}: {} comments", t.number, t.title, comments.len()),
        None => "none".into(),
    };
    out.push(Summary::new("P13", "task with its comments", line, detail(&thread)));

    let mut assigned = Vec::new();
    let mut by_user = Vec::new();
    for u in &users {
        let tasks = tasks_assigned_to(table, org_id, &u.user_id).await?;
        assigned.push(format!("{} {}", u.user_id, tasks.len()));
        by_user.push(tasks);
    }
    let unassigned = tasks.iter().filter(|t| t.assignee.is_none()).count();
    out.push(Summary::new(
        "P14",
        "tasks per assignee (gsi2, sparse)",
        format!("{} ({unassigned} unassigned tasks of {pid} are not in the index)", assigned.join(", ")),
        detail(&by_user),
    ));
    Ok(out)
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// "1 Organization, 4 User, 2 Invitation", in order of first appearance.
fn count_by<'a>(entities: impl Iterator<Item = &'a str>) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for e in entities {
        match counts.iter_mut().find(|(n, _)| *n == e) {
            Some((_, c)) => *c += 1,
            None => counts.push((e, 1)),
        }
    }
    join(counts.into_iter().map(|(e, c)| format!("{c} {e}")))
}
