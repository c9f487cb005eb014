//! # singletable-migrate
//!
//! Plans and applies key-design migrations of a DynamoDB single table.
//!
//! Planning is a pure function of (old design, new design, live table):
//! [`plan::diff`]. What only the data can tell is added by [`analyze`].

pub mod analyze;
pub mod apply;
#[cfg(feature = "cli")]
pub mod cli;
pub mod ddb_json;
pub mod design;
mod error;
pub mod fingerprint;
pub mod live;
pub mod plan;
pub mod render;
pub mod reserved;

pub use apply::{ApplyOptions, ApplyReport, Defaults, Event, Migrator, Observer, Quiet};
pub use error::MigrateError;
pub use live::{describe, LiveIndex, LiveTable};
pub use plan::{diff, Action, Change, Plan};
