//! The API handler: one JSON request, one JSON response, through the
//! tracker's access patterns (`singletable_examples::tracker::v2`).
//!
//! Invoked directly (`aws lambda invoke`, a Step Functions task, another
//! service's SDK); behind API Gateway the same [`handle`] would sit under
//! `lambda_http`, with the request read from the body.

use serde::{Deserialize, Serialize};
use singletable::{Error, KeyParts, Table};
use singletable_examples::tracker::v2::{self, NewTask, Project, Task};

use crate::Notification;

/// The most notifications [`Request::Inbox`] returns, newest first.
pub const INBOX_LIMIT: usize = 50;

/// A request, tagged by `op`:
/// `{"op": "get_task", "org_id": "acme", "project_id": "apollo", "number": 1}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// A new project (refused if it exists).
    CreateProject {
        org_id: String,
        project_id: String,
        name: String,
        #[serde(default)]
        description: String,
    },
    GetProject { org_id: String, project_id: String },
    /// A new task, numbered by the project's counter (P10).
    CreateTask {
        org_id: String,
        project_id: String,
        title: String,
        #[serde(default)]
        assignee: Option<String>,
        /// `YYYY-MM-DD`.
        #[serde(default)]
        due: Option<String>,
        #[serde(default)]
        estimate_hours: Option<f64>,
        #[serde(default)]
        labels: Vec<String>,
    },
    GetTask { org_id: String, project_id: String, number: u32 },
    /// Assigns an existing task; `null` unassigns it (P15).
    AssignTask { org_id: String, project_id: String, number: u32, assignee: Option<String> },
    /// A user's latest notifications.
    Inbox { org_id: String, user_id: String },
}

/// A response, tagged by `result`. Refusals the caller can act on (no
/// such item, already exists, a key value the design cannot store) are
/// responses; failures of the service are [`ApiError`]s, which Lambda
/// reports as a function error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Project(ProjectView),
    Task(TaskView),
    Inbox { notifications: Vec<NotificationView> },
    NotFound { message: String },
    Conflict { message: String },
    BadRequest { message: String },
}

/// A project as the API shows it (the stored timestamps left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectView {
    pub org_id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub task_count: u32,
    pub version: u64,
}

impl From<Project> for ProjectView {
    fn from(p: Project) -> Self {
        ProjectView {
            org_id: p.org_id,
            project_id: p.project_id,
            name: p.name,
            description: p.description,
            task_count: p.task_count,
            version: p.version,
        }
    }
}

/// A task as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskView {
    pub org_id: String,
    pub project_id: String,
    pub number: u32,
    pub title: String,
    pub status: String,
    pub assignee: Option<String>,
    pub due: Option<String>,
    pub estimate_hours: Option<f64>,
    pub labels: Vec<String>,
}

impl From<Task> for TaskView {
    fn from(t: Task) -> Self {
        TaskView {
            org_id: t.org_id,
            project_id: t.project_id,
            number: t.number,
            title: t.title,
            status: t.status,
            assignee: t.assignee,
            due: t.due,
            estimate_hours: t.estimate_hours,
            labels: t.labels,
        }
    }
}

/// A notification as the API shows it (the padded sequence number is a
/// storage detail).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationView {
    pub project_id: String,
    pub number: u32,
    pub title: String,
    pub previous_assignee: Option<String>,
}

impl From<Notification> for NotificationView {
    fn from(n: Notification) -> Self {
        NotificationView { project_id: n.project_id, number: n.number, title: n.title, previous_assignee: n.previous_assignee }
    }
}

/// A failure of the service (DynamoDB unreachable, throttled, a
/// transaction that kept conflicting): the caller may retry.
#[derive(Debug, thiserror::Error)]
#[error("tracker API: {0}")]
pub struct ApiError(#[from] pub Error);

impl From<ApiError> for lambda_runtime::Diagnostic {
    fn from(e: ApiError) -> Self {
        lambda_runtime::Diagnostic { error_type: "ApiError".into(), error_message: e.to_string() }
    }
}

/// Answers one request.
pub async fn handle(table: &Table, request: Request) -> Result<Response, ApiError> {
    answer(table, request).await.or_else(refusal)
}

async fn answer(table: &Table, request: Request) -> Result<Response, Error> {
    Ok(match request {
        Request::CreateProject { org_id, project_id, name, description } => {
            Response::Project(v2::create_project(table, &org_id, &project_id, &name, &description).await?.into())
        }
        Request::GetProject { org_id, project_id } => {
            let found = table.get::<Project>(&(org_id.clone(), project_id.clone())).await?;
            found.map_or_else(|| not_found(format!("no project `{project_id}` in `{org_id}`")), |p| Response::Project(p.into()))
        }
        Request::CreateTask { org_id, project_id, title, assignee, due, estimate_hours, labels } => {
            let new = NewTask { title, assignee, due, estimate_hours, labels };
            Response::Task(v2::create_task(table, &org_id, &project_id, new).await?.into())
        }
        Request::GetTask { org_id, project_id, number } => {
            let found = table.get::<Task>(&(org_id.clone(), project_id.clone(), number)).await?;
            found.map_or_else(|| not_found(format!("no task #{number} in project `{project_id}` of `{org_id}`")), |t| Response::Task(t.into()))
        }
        Request::AssignTask { org_id, project_id, number, assignee } => {
            Response::Task(v2::assign_task(table, &org_id, &project_id, number, assignee.as_deref()).await?.into())
        }
        Request::Inbox { org_id, user_id } => {
            let inbox = KeyParts::new().set("org_id", org_id.as_str()).set("user_id", user_id.as_str());
            let notes = table.query::<Notification>().pk(inbox).reverse().limit(INBOX_LIMIT).all().await?;
            Response::Inbox { notifications: notes.into_iter().map(NotificationView::from).collect() }
        }
    })
}

fn not_found(message: String) -> Response {
    Response::NotFound { message }
}

/// Errors that are the request's fault become responses; the rest stay
/// errors.
fn refusal(e: Error) -> Result<Response, ApiError> {
    let message = e.to_string();
    match e {
        Error::NotFound { .. } => Ok(Response::NotFound { message }),
        Error::AlreadyExists { .. } | Error::VersionConflict { .. } | Error::ConditionFailed { .. } => Ok(Response::Conflict { message }),
        Error::EmptyKey { .. }
        | Error::KeyDelimiter { .. }
        | Error::KeyFormat { .. }
        | Error::KeyTooLong { .. }
        | Error::InvalidValue { .. }
        | Error::ItemTooLarge { .. } => Ok(Response::BadRequest { message }),
        e => Err(ApiError(e)),
    }
}
