//! Example applications of `singletable`, shared by the demo binary and
//! the tests.
//!
//! [`tracker`] is a multi-tenant project tracker in one DynamoDB table:
//! organizations, users, invitations, projects, tasks and comments, with
//! the access patterns listed in `examples/README.md`, in two versions of
//! its key design ([`tracker::v1`] and [`tracker::v2`]) and the migration
//! between them.

pub mod tracker;
