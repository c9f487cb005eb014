//! Version 1 of the tracker's key design: partitions keyed `ORG#{org_id}`.
//!
//! | entity | pk | sk | gsi1pk / gsi1sk | gsi2pk / gsi2sk (sparse) |
//! | --- | --- | --- | --- | --- |
//! | Organization | `ORG#{org_id}` | `ORG` | | |
//! | User | `ORG#{org_id}` | `USER#{user_id}` | `EMAIL#{email}` / `ORG#{org_id}` | |
//! | Invitation | `ORG#{org_id}` | `INVITE#{email}` | | |
//! | Project | `ORG#{org_id}#PROJECT#{project_id}` | `PROJECT` | `ORG#{org_id}` / `PROJECT#{project_id}` | |
//! | Task | `ORG#{org_id}#PROJECT#{project_id}` | `TASK#{number:06}` | | `ASSIGNEE#{org_id}#{assignee}` / `TASK#{project_id}#{number:06}` |
//! | Comment | `ORG#{org_id}#PROJECT#{project_id}` | `TASK#{number:06}#COMMENT#{posted_ms:013}#{author}` | | |
//!
//! The access patterns (the functions of this module) come from
//! `app.rs`, which [`v2`](super::v2) compiles too: only the templates
//! change between the versions, never the application code.

/// A tenant.
#[derive(singletable::Item, Debug, Clone, PartialEq)]
#[item(entity = "Organization", pk = "ORG#{org_id}", sk = "ORG")]
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
#[item(entity = "User", pk = "ORG#{org_id}", sk = "USER#{user_id}")]
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
#[item(entity = "Invitation", pk = "ORG#{org_id}", sk = "INVITE#{email}")]
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
#[item(entity = "Project", pk = "ORG#{org_id}#PROJECT#{project_id}", sk = "PROJECT")]
#[item(index(name = "gsi1", pk = "ORG#{org_id}", sk = "PROJECT#{project_id}"))]
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
/// sort numerically). Only assigned tasks are in `gsi2` (sparse).
#[derive(singletable::Item, Debug, Clone, PartialEq)]
#[item(entity = "Task", pk = "ORG#{org_id}#PROJECT#{project_id}", sk = "TASK#{number:06}")]
#[item(index(name = "gsi2", pk = "ASSIGNEE#{org_id}#{assignee}", sk = "TASK#{project_id}#{number:06}"))]
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
    pk = "ORG#{org_id}#PROJECT#{project_id}",
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

/// The design of the table holding version 1.
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
