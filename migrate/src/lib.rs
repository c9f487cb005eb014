//! # singletable-migrate
//!
//! Plans and applies key-design migrations of a DynamoDB single table.
//!
//! Planning is a pure function of (old design, new design, live table):
//! [`plan::diff`]. What only the data can tell is added by [`analyze`];
//! [`planner::make_plan`] does both against a live table, as
//! `singletable migrate plan` does. [`Migrator::start_online`] applies the
//! plan while the application keeps writing ([`online`]: expand, catch-up,
//! cut-over, contract, with no acknowledged write lost); [`Migrator::apply`]
//! applies it offline, for a maintenance window.
//!
//! ## Layers
//!
//! Bottom first; a file imports only from layers below its own (within
//! `apply` and `design`, from the files listed before it), so no two files
//! import each other, directly or through others:
//!
//! 1. `error`
//! 2. `raw`, `retry`
//! 3. `ddb_json`, `live`
//! 4. `fingerprint`, `reserved`
//! 5. `plan`
//! 6. `decide`
//! 7. `analyze`, `render`
//! 8. `planner`
//! 9. `apply` (`options`, `write`, `state`, `backfill`, `verify`,
//!    `schema`, then `mod.rs`)
//! 10. `design` (`fixtures`, `samples`, `show`, `iam`, `workbench`)
//! 11. `online` (`stream`, `state`, `replay`, `check`, `contract`, then
//!     `mod.rs`)
//! 12. `cli`

pub mod analyze;
pub mod apply;
mod civil;
#[cfg(feature = "cli")]
pub mod cli;
pub mod ddb_json;
mod decide;
pub mod design;
mod error;
pub mod fingerprint;
pub mod live;
pub mod online;
pub mod plan;
pub mod planner;
mod raw;
pub mod render;
pub mod reserved;
mod retry;
pub mod status;

pub use apply::{ApplyOptions, ApplyReport, Event, Migrator, Observer, Quiet};
pub use online::{ContentReport, CutoverReport, OnlineMigration, Phase, ReplayStatus};
pub use error::MigrateError;
pub use live::{describe, LiveIndex, LiveTable};
pub use plan::{diff, Action, Change, Defaults, EntityReport, Plan};
pub use planner::{PlanRequest, Planned};
pub use raw::RawItem;
pub use status::{status, MigrationStatus};
