//! Version 2 of the tracker's key design: every partition of a tenant
//! (table and index) begins `TENANT#{org_id}`, and `gsi3` lists an
//! organization's tasks by due date.
//!
//! | entity | pk | sk | gsi1pk / gsi1sk | gsi2pk / gsi2sk (sparse) | gsi3pk / gsi3sk (sparse, new) |
//! | --- | --- | --- | --- | --- | --- |
//! | Organization | `TENANT#{org_id}` | `ORG` | | | |
//! | User | `TENANT#{org_id}` | `USER#{user_id}` | `EMAIL#{email}` / `ORG#{org_id}` | | |
//! | Invitation | `TENANT#{org_id}` | `INVITE#{email}` | | | |
//! | Project | `TENANT#{org_id}#PROJECT#{project_id}` | `PROJECT` | `TENANT#{org_id}` / `PROJECT#{project_id}` | | |
//! | Task | `TENANT#{org_id}#PROJECT#{project_id}` | `TASK#{number:06}` | | `TENANT#{org_id}#ASSIGNEE#{assignee}` / `TASK#{project_id}#{number:06}` | `TENANT#{org_id}` / `DUE#{due}#PROJECT#{project_id}#TASK#{number:06}` |
//! | Comment | `TENANT#{org_id}#PROJECT#{project_id}` | `TASK#{number:06}#COMMENT#{posted_ms:013}#{author}` | | | |
//!
//! The entity types have the same fields as [`v1`](super::v1)'s, and the
//! access patterns are the same code (`app.rs`), plus [`tasks_due`].
//! The login index `gsi1` of users stays keyed by e-mail: it is the one
//! lookup made before the tenant is known.

#[derive(singletable::Item, Debug, Clone, PartialEq)]
#[item(entity = "Organization", pk = "TENANT#{org_id}", sk = "ORG")]
pub struct Organization {
    pub org_id: String,
    pub name: String,
    /// `free`, `team` or `enterprise`.
    pub plan: String,
    #[item(created_at)]
    pub created_at: Option<std::time::SystemTime>,
}

/// A member of one organization. The same person (e-mail) may be a user
/// of several organizations: `gsi1` finds all of them at login.
#[derive(singletable::Item, Debug, Clone, PartialEq)]
#[item(entity = "User", pk = "TENANT#{org_id}", sk = "USER#{user_id}")]
#[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "ORG#{org_id}"))]
pub struct User {
    pub org_id: String,
    pub user_id: String,
    pub email: String,
    pub name: String,
    /// `owner`, `admin` or `member`.
    pub role: String,
}

/// An invitation to join an organization. DynamoDB's time to live deletes
/// it some time after `expires_at`; until then reads filter it out.
#[derive(singletable::Item, Debug, Clone, PartialEq)]
#[item(entity = "Invitation", pk = "TENANT#{org_id}", sk = "INVITE#{email}")]
pub struct Invitation {
    pub org_id: String,
    pub email: String,
    pub role: String,
    pub invited_by: String,
    #[item(ttl)]
    pub expires_at: std::time::SystemTime,
}

/// A project: the head of its own partition, which holds its tasks and
/// their comments. Listed per organization through `gsi1`. Versioned:
/// concurrent edits are detected, not lost.
#[derive(singletable::Item, Debug, Clone, PartialEq)]
#[item(entity = "Project", pk = "TENANT#{org_id}#PROJECT#{project_id}", sk = "PROJECT")]
#[item(index(name = "gsi1", pk = "TENANT#{org_id}", sk = "PROJECT#{project_id}"))]
pub struct Project {
    pub org_id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    /// How many tasks were ever created: the next task's number is
    /// `task_count + 1`.
    pub task_count: u32,
    #[item(version)]
    pub version: u64,
    #[item(created_at)]
    pub created_at: Option<std::time::SystemTime>,
    #[item(updated_at)]
    pub updated_at: Option<std::time::SystemTime>,
}

/// A task, numbered within its project (zero-padded in the key so tasks
/// sort numerically). Only assigned tasks are in `gsi2`, only tasks with
/// a due date in `gsi3` (both sparse).
#[derive(singletable::Item, Debug, Clone, PartialEq)]
#[item(entity = "Task", pk = "TENANT#{org_id}#PROJECT#{project_id}", sk = "TASK#{number:06}")]
#[item(index(name = "gsi2", pk = "TENANT#{org_id}#ASSIGNEE#{assignee}", sk = "TASK#{project_id}#{number:06}"))]
#[item(index(name = "gsi3", pk = "TENANT#{org_id}", sk = "DUE#{due}#PROJECT#{project_id}#TASK#{number:06}"))]
pub struct Task {
    pub org_id: String,
    pub project_id: String,
    pub number: u32,
    pub title: String,
    /// `todo`, `doing` or `done`.
    pub status: String,
    pub assignee: Option<String>,
    /// The due date, `YYYY-MM-DD`.
    pub due: Option<String>,
    pub estimate_hours: Option<f64>,
    pub labels: Vec<String>,
}

/// A comment on a task, stored right after the task it belongs to.
#[derive(singletable::Item, Debug, Clone, PartialEq)]
#[item(
    entity = "Comment",
    pk = "TENANT#{org_id}#PROJECT#{project_id}",
    sk = "TASK#{number:06}#COMMENT#{posted_ms:013}#{author}"
)]
pub struct Comment {
    pub org_id: String,
    pub project_id: String,
    pub number: u32,
    /// Milliseconds since the epoch.
    pub posted_ms: u64,
    pub author: String,
    pub body: String,
}

/// An organization's partition: the organization, its users and its
/// invitations, read in one query.
#[derive(singletable::Collection, Debug, Clone, PartialEq)]
pub enum OrgDirectory {
    Organization(Organization),
    User(User),
    Invitation(Invitation),
}

/// A project's partition: the project, its tasks and their comments, in
/// key order (the project, then each task followed by its comments).
#[derive(singletable::Collection, Debug, Clone, PartialEq)]
pub enum ProjectBoard {
    Project(Project),
    Task(Task),
    Comment(Comment),
}

/// The design of the table holding version 2.
pub fn design(table: &str) -> Result<singletable::TableDesign, singletable::Error> {
    singletable::TableDesign::new(table)
        .entity::<Organization>()
        .entity::<User>()
        .entity::<Invitation>()
        .entity::<Project>()
        .entity::<Task>()
        .entity::<Comment>()
        .build()
}

include!("app.rs");

/// P16 (new in v2). An organization's tasks due between two dates
/// (`YYYY-MM-DD`, inclusive), earliest first, across its projects: `gsi3`,
/// sort keys between `DUE#{from}` and `DUE#{to}`. Tasks without a due date
/// are not in the index.
pub async fn tasks_due(table: &Table, org_id: &str, from: &str, to: &str) -> Result<Vec<Task>, Error> {
    table
        .query::<Task>()
        .index("gsi3")
        .pk(org(org_id))
        .sk_between(KeyParts::new().set("due", from), KeyParts::new().set("due", to))
        .all()
        .await
}
