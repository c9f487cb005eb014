//! The tracker (`singletable_examples::tracker`, key design v2) as two AWS
//! Lambda functions on one table with a `NEW_AND_OLD_IMAGES` stream:
//!
//! * [`stream::handle`] reads the table's stream. It decodes every record
//!   into [`TrackerItem`] with [`singletable::Change`], writes a
//!   [`Notification`] to a user's inbox when a task is assigned to them,
//!   and reports the record it could not handle as a batch item failure
//!   (by its sequence number), so Lambda retries from that record instead
//!   of the whole batch.
//! * [`api::handle`] answers JSON requests ([`api::Request`]): create and
//!   read projects and tasks, assign tasks, read an inbox.
//!
//! Both handlers are plain async functions of a [`Table`] and the event,
//! tested against DynamoDB Local without the Lambda runtime
//! (`tests/handlers.rs`); the binaries `tracker-stream` and `tracker-api`
//! build the table once per cold start ([`table_from_env`]) and hand it to
//! `lambda_runtime`. `examples/README.md` shows how to build and deploy
//! them.

// The handlers return `singletable::Error` as the library gives it, so
// that callers can match on it; boxing it would only hide the variants.
#![allow(clippy::result_large_err)]

use aws_config::BehaviorVersion;
use singletable::{StreamView, Table, TableDesign};
use singletable_examples::tracker::v2::{Comment, Invitation, Organization, Project, Task, User};

pub mod api;
pub mod stream;

/// The environment variable naming the table, set in the functions'
/// configuration.
pub const TABLE_NAME_ENV: &str = "TABLE_NAME";

/// A notification in a user's inbox: a task was assigned to them. The
/// stream handler writes it; [`api::Request::Inbox`] reads it.
///
/// The inbox is a partition of the tenant (`TENANT#{org_id}#...`), so the
/// v2 design's `dynamodb:LeadingKeys` policy covers it too. The sort key
/// is the sequence number of the stream record that caused it: Lambda
/// delivers a record at least once, and a second delivery overwrites the
/// same item instead of notifying twice.
#[derive(singletable::Item, Debug, Clone, PartialEq)]
#[item(entity = "Notification", pk = "TENANT#{org_id}#INBOX#{user_id}", sk = "NOTE#{seq}")]
pub struct Notification {
    pub org_id: String,
    pub user_id: String,
    /// The stream record's sequence number, zero-padded to 40 digits (the
    /// most DynamoDB uses) so that an inbox sorts in stream order.
    pub seq: String,
    pub project_id: String,
    pub number: u32,
    pub title: String,
    /// Who had the task before, if anyone.
    pub previous_assignee: Option<String>,
}

/// Every entity of the table: what a stream record may hold. The stream
/// handler's own notifications are in it too, so that their records
/// decode (and are then left alone) instead of failing the batch.
#[derive(singletable::Collection, Debug, Clone, PartialEq)]
pub enum TrackerItem {
    Organization(Organization),
    User(User),
    Invitation(Invitation),
    Project(Project),
    Task(Task),
    Comment(Comment),
    Notification(Notification),
}

/// The table's design: the tracker's v2 entities, the notifications, and
/// a stream with both images (the stream handler compares a task's
/// assignee before and after).
pub fn design(table: &str) -> Result<TableDesign, singletable::Error> {
    TableDesign::new(table)
        .entity::<Organization>()
        .entity::<User>()
        .entity::<Invitation>()
        .entity::<Project>()
        .entity::<Task>()
        .entity::<Comment>()
        .entity::<Notification>()
        .stream(StreamView::NewAndOldImages)
        .build()
}

/// Why a function could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The function's configuration does not name the table.
    #[error("the environment variable {TABLE_NAME_ENV} (the table's name) is not set")]
    NoTableName,
    /// The table name does not make a valid design.
    #[error("table design: {0}")]
    Design(#[from] singletable::Error),
}

/// The table named by [`TABLE_NAME_ENV`], with a client configured from
/// the function's environment (region, execution role). Called once per
/// cold start: every invocation the execution environment then serves
/// reuses the client's connections and credentials.
pub async fn table_from_env() -> Result<Table, SetupError> {
    let name = std::env::var(TABLE_NAME_ENV).ok().filter(|n| !n.is_empty()).ok_or(SetupError::NoTableName)?;
    let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
    Ok(Table::new(aws_sdk_dynamodb::Client::new(&config), design(&name)?))
}
