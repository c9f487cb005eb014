use singletable::Error;

/// Everything that can go wrong planning or applying a migration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The `singletable` crate refused: a design is invalid, a key cannot
    /// be rendered, or one of its operations failed. Its message names
    /// the entity, attribute or table first.
    #[error(transparent)]
    Core(#[from] Error),

    /// The table holds no recorded design and none was given.
    #[error("table `{table}` has no recorded design: give the design it was built with (--from FILE)")]
    NoRecordedDesign { table: String },

    /// The base key schema would have to change in place.
    #[error("table `{table}`: {reason} cannot change in place; give the new design another table name to copy into")]
    KeySchemaInPlace { table: String, reason: String },

    /// A saved plan no longer matches the table.
    #[error("table `{table}` changed since the plan was made (fingerprint {planned} -> {now}); plan again")]
    StalePlan { table: String, planned: String, now: String },

    /// Another apply holds the table's migration lock.
    #[error("table `{table}` is locked by another apply ({owner}, lease until {expires_at}); wait for it or let the lease expire")]
    Locked { table: String, owner: String, expires_at: String },

    /// The plan has errors (collisions, missing attributes ...).
    #[error("the plan for table `{table}` cannot be applied:\n  {}", errors.join("\n  "))]
    Blocked { table: String, errors: Vec<String> },

    /// A destructive change was not allowed explicitly.
    #[error("table `{table}`: the plan destroys {what}; allow it explicitly (--allow-destroy)")]
    Destructive { table: String, what: String },

    /// Another worker took a scan segment this worker was writing (it was
    /// paused past its lease); its write was refused, and the new owner
    /// goes on from the segment's checkpoint. Handled inside the apply.
    #[error("table `{table}`: a scan segment went to another worker; this worker's write for it was refused")]
    SegmentLost { table: String },

    /// The apply was interrupted (Ctrl-C) at a page boundary.
    #[error("apply on table `{table}` interrupted; its progress is saved: run apply again to resume")]
    Interrupted { table: String },

    /// Verification after apply found a problem.
    #[error("verification of table `{table}` failed:\n  {}", problems.join("\n  "))]
    Verification { table: String, problems: Vec<String> },

    /// A request to DynamoDB failed.
    #[error("{operation} on table `{table}` failed: {message}")]
    Dynamo { operation: &'static str, table: String, message: String },

    /// Reading or writing a local file failed.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },

    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl MigrateError {
    pub(crate) fn dynamo<E: std::error::Error + 'static>(operation: &'static str, table: &str, err: E) -> Self {
        MigrateError::Dynamo {
            operation,
            table: table.to_string(),
            message: aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string(),
        }
    }
}
