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
//! `AWS_REGION`, profiles ...).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aws_sdk_dynamodb::Client;
use clap::{Args, Parser, Subcommand};
use singletable::TableDesign;

use crate::analyze::{analyze, parse_default, AnalyzeOptions, Defaults};
use crate::error::MigrateError;
use crate::fingerprint::fingerprint;
use crate::live::describe;
use crate::plan::{diff, Plan};
use crate::render::render_plan;
use crate::reserved::read_recorded_design;

/// `singletable`: DynamoDB single-table design toolkit.
#[derive(Debug, Parser)]
#[command(name = "singletable", version, about = "DynamoDB single-table design toolkit")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Plan and apply key-design migrations of a table.
    #[command(subcommand)]
    Migrate(MigrateCommand),
}

/// `singletable migrate ...`
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Show what changing the table to the new design would do, without
    /// changing anything.
    Plan(PlanArgs),
}

/// Which design and table to plan for: shared by `plan` and `apply`.
#[derive(Debug, Clone, Args)]
pub struct PlanInputs {
    /// The new design file (JSON, as `TableDesign::to_json` writes it).
    /// Optional when the binary embeds its design.
    #[arg(long, value_name = "FILE")]
    pub design: Option<PathBuf>,
    /// The live table (default: the design's table). With an unchanged key
    /// schema the design is applied to this table under this name.
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,
    /// The design the table was built with, for a table that has none
    /// recorded (one never migrated by singletable).
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// A value for an attribute old items lack, as Entity.attribute=value
    /// (repeatable).
    #[arg(long = "default", value_name = "ENTITY.ATTR=VALUE")]
    pub defaults: Vec<String>,
    /// Parallel scan segments.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub segments: u32,
    /// Write budget in write capacity units per second (estimates; apply
    /// keeps to it). Unthrottled when absent.
    #[arg(long, value_name = "WCU", value_parser = positive)]
    pub max_wcu: Option<f64>,
}

/// `singletable migrate plan`
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub inputs: PlanInputs,
    /// Save the plan (JSON, with a fingerprint of the table's state) for
    /// `migrate apply`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print the plan as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Exit 0 when there are no changes, 1 on errors, 2 when there are
    /// changes.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a positive number")),
    }
}

/// Runs the CLI on `args` (the program name first, as `std::env::args()`
/// gives) and returns the process exit code. `embedded` is the design a
/// binary was built with, used when `--design` is not given.
///
/// Exit codes: 0 success, 1 error (usage errors included); `migrate plan
/// --detailed-exitcode`: 0 no changes, 1 error or a plan apply would
/// refuse, 2 changes.
pub fn run<I, T>(args: I, embedded: Option<TableDesign>) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors exit 1, never 2: 2 means "changes" to scripts
            // using --detailed-exitcode.
            return if e.use_stderr() { ExitCode::from(1) } else { ExitCode::SUCCESS };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli, embedded)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn dispatch(cli: Cli, embedded: Option<TableDesign>) -> Result<ExitCode, MigrateError> {
    match cli.command {
        Command::Migrate(MigrateCommand::Plan(args)) => plan_command(&args, embedded).await,
    }
}

/// A DynamoDB client from the environment's AWS configuration.
pub async fn client() -> Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    Client::new(&config)
}

/// Reads and checks a design file.
pub fn read_design(path: &Path) -> Result<TableDesign, MigrateError> {
    let text = std::fs::read_to_string(path).map_err(|source| MigrateError::Io { path: path.display().to_string(), source })?;
    TableDesign::from_json(&text).map_err(|e| MigrateError::Other(format!("{}: {e}", path.display())))
}

/// Makes a plan as `migrate plan` does: reads the new design (file or
/// embedded), the live table and its recorded design (else `--from`),
/// diffs, scans, and fingerprints the table.
pub async fn make_plan(client: &Client, inputs: &PlanInputs, embedded: Option<&TableDesign>) -> Result<Plan, MigrateError> {
    let mut new = match (&inputs.design, embedded) {
        (Some(path), _) => read_design(path)?,
        (None, Some(d)) => d.clone(),
        (None, None) => return Err(MigrateError::Other("no design given: pass --design FILE".into())),
    };
    let table = inputs.table.clone().unwrap_or_else(|| new.table.clone());
    let live = describe(client, &table).await?;
    let same_keys = live.pk_attr.as_deref() == Some(new.pk_attr.as_str()) && live.sk_attr.as_deref() == Some(new.sk_attr.as_str());
    if !live.exists || same_keys {
        // The design goes to the table named, under that name.
        new.table = table.clone();
    }
    let recorded = match (&live.pk_attr, &live.sk_attr) {
        (Some(pk), Some(sk)) if live.exists => read_recorded_design(client, &table, pk, sk).await?,
        _ => None,
    };
    let given = inputs.from.as_deref().map(read_design).transpose()?;
    if let (Some(r), Some(g)) = (&recorded, &given) {
        if r.entities != g.entities || r.indexes != g.indexes {
            eprintln!(
                "Note: table `{table}` records the design it was last migrated to; it is used, and --from {} is ignored.",
                inputs.from.as_deref().unwrap_or(Path::new("")).display()
            );
        }
    }
    let old = recorded.clone().or(given);
    let changes = diff(old.as_ref(), &new, &live)?;
    let mut defaults = Defaults::new();
    for spec in &inputs.defaults {
        let (k, v) = parse_default(spec, &new)?;
        defaults.insert(k, v);
    }
    let opts = AnalyzeOptions { segments: inputs.segments, defaults, max_wcu: inputs.max_wcu };
    let entities = analyze(client, &table, old.as_ref(), &new, &changes, &opts).await?;
    Ok(Plan { table, from: old, to: new, changes, entities, fingerprint: fingerprint(&live, recorded.as_ref()) })
}

async fn plan_command(args: &PlanArgs, embedded: Option<TableDesign>) -> Result<ExitCode, MigrateError> {
    let client = client().await;
    let plan = make_plan(&client, &args.inputs, embedded.as_ref()).await?;
    let json = serde_json::to_string_pretty(&plan).map_err(|e| MigrateError::Other(format!("plan as JSON: {e}")))? + "\n";
    if args.json {
        print!("{json}");
    } else {
        print!("{}", render_plan(&plan));
    }
    let errors = plan.blocking_errors();
    if let Some(path) = &args.out {
        if errors.is_empty() {
            std::fs::write(path, &json).map_err(|source| MigrateError::Io { path: path.display().to_string(), source })?;
            let note = format!("\nSaved the plan to {} (fingerprint {}).", path.display(), plan.fingerprint);
            if args.json {
                eprintln!("{}", note.trim_start());
            } else {
                println!("{note}");
            }
        } else {
            eprintln!("Error: the plan was not saved to {}: it has errors that block apply.", path.display());
        }
    }
    Ok(if !errors.is_empty() {
        ExitCode::from(1)
    } else if args.detailed_exitcode && !plan.is_empty() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_plan_command() {
        let cli = Cli::try_parse_from([
            "singletable", "migrate", "plan", "--design", "new.json", "--table", "t", "--from", "old.json",
            "--out", "plan.json", "--json", "--detailed-exitcode", "--default", "User.region=eu",
            "--default", "User.n=1", "--segments", "8", "--max-wcu", "250",
        ])
        .unwrap();
        let Command::Migrate(MigrateCommand::Plan(p)) = cli.command;
        assert_eq!(p.inputs.design.as_deref(), Some(Path::new("new.json")));
        assert_eq!(p.inputs.table.as_deref(), Some("t"));
        assert_eq!(p.inputs.defaults, ["User.region=eu", "User.n=1"]);
        assert_eq!((p.inputs.segments, p.inputs.max_wcu), (8, Some(250.0)));
        assert!(p.json && p.detailed_exitcode);
        assert!(Cli::try_parse_from(["singletable", "migrate", "plan", "--segments", "0"]).is_err());
        assert!(Cli::try_parse_from(["singletable", "migrate", "plan", "--max-wcu", "-1"]).is_err());
        let defaults = Cli::try_parse_from(["singletable", "migrate", "plan"]).unwrap();
        let Command::Migrate(MigrateCommand::Plan(p)) = defaults.command;
        assert_eq!((p.inputs.segments, p.inputs.max_wcu, p.json), (4, None, false));
    }

}
