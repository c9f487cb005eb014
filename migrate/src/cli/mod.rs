//! The `singletable` command line, as a library so that an application can
//! ship it with its design compiled in:
//!
//! ```no_run
//! # fn design() -> singletable::TableDesign { unimplemented!() }
//! // src/bin/migrate.rs of your crate
//! fn main() -> std::process::ExitCode {
//!     singletable_migrate::cli::run(std::env::args(), Some(design()))
//! }
//! ```
//!
//! With a design embedded, `--design FILE` becomes optional. This is the
//! CLI layer: unlike the rest of the crate it prints, and its DynamoDB
//! client follows the usual AWS configuration (`AWS_ENDPOINT_URL_DYNAMODB`,
//! `AWS_REGION`, profiles ...) with `--profile`, `--region` and
//! `--endpoint-url` over it.
//!
//! Its files, bottom first (each uses only those above it):
//!
//! - `args`: the grammar (clap), nothing that runs
//! - `aws`: clients from the AWS configuration, advice on its errors
//! - `term`: standard error shared by bars, step lines and logs
//! - `logging`: the tracing subscriber, `-v` / `-q` / `RUST_LOG`
//! - `json`: `--json` report lines
//! - `output`: progress bars, plain lines or JSON; the closing summary
//! - `design`: `design show|export|import|iam`
//! - `migrate`: `migrate plan|apply|restore|cutover|complete|status`
//! - `run`: parsing, dispatch, errors, `completions`

mod args;
mod aws;
mod design;
mod json;
mod logging;
mod migrate;
mod output;
mod run;
mod term;

pub use args::{
    ApplyArgs, Cli, Command, CompletionsArgs, DesignCommand, DesignInput, ExportArgs, GlobalArgs, IamArgs, ImportArgs, MigrateCommand,
    PlanArgs, PlanInputs, RestoreArgs, ShowArgs, TableArgs,
};
pub use aws::{client, streams_client, Aws};
pub use design::read_design;
pub use migrate::make_plan;
pub use output::{render_report, Progress};
pub use run::run;
