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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::analyze::parse_default;
use crate::apply::{ApplyOptions, ApplyReport, Event, Migrator, Observer};
use crate::design::{iam, show, workbench};
use crate::error::MigrateError;
use crate::plan::{Defaults, Plan};
use crate::planner::{self, Note, PlanRequest};
use crate::render::render_plan;

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
    /// Show the key design, export it to NoSQL Workbench or import it
    /// back, and derive an IAM policy from it. No DynamoDB access.
    #[command(subcommand)]
    Design(DesignCommand),
}

/// `singletable design ...`
#[derive(Debug, Subcommand)]
pub enum DesignCommand {
    /// Draw the design: one row per entity, one column per key attribute
    /// (table and index keys), the key templates in the cells.
    Show(ShowArgs),
    /// Write the design as an AWS NoSQL Workbench data model.
    Export(ExportArgs),
    /// Read an AWS NoSQL Workbench data model into a design file.
    Import(ImportArgs),
    /// Print a least-privilege IAM policy for the table and its indexes.
    Iam(IamArgs),
}

/// The design a `design` command reads.
#[derive(Debug, Clone, Args)]
pub struct DesignInput {
    /// The design file (JSON, as `TableDesign::to_json` writes it).
    /// Optional when the binary embeds its design.
    #[arg(long, value_name = "FILE")]
    pub design: Option<PathBuf>,
}

/// `singletable design show`
#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub input: DesignInput,
    /// Markdown (pipe tables) to paste into docs, instead of plain text.
    #[arg(long)]
    pub markdown: bool,
}

/// `singletable design export`
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub input: DesignInput,
    /// Export a NoSQL Workbench data model (the only format so far).
    #[arg(long, required = true)]
    pub workbench: bool,
    /// Where to write the model (default: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Sample items per entity.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub samples: u16,
    /// The model's author.
    #[arg(long, value_name = "NAME", default_value = "")]
    pub author: String,
    /// The model's name (default: the table name).
    #[arg(long, value_name = "NAME")]
    pub model_name: Option<String>,
}

/// `singletable design import`
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The NoSQL Workbench data model to read.
    #[arg(long, value_name = "FILE", required = true)]
    pub workbench: PathBuf,
    /// Where to write the design file (default: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The model's table to read, when it has several.
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,
}

/// `singletable design iam`
#[derive(Debug, Clone, Args)]
pub struct IamArgs {
    #[command(flatten)]
    pub input: DesignInput,
    /// The table's ARN. Without it (or --region/--account) the policy
    /// names the design's table in any region and account.
    #[arg(long, value_name = "ARN", conflicts_with_all = ["region", "account", "partition"])]
    pub table_arn: Option<String>,
    /// The table's region.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// The table's AWS account id.
    #[arg(long, value_name = "ACCOUNT")]
    pub account: Option<String>,
    /// The AWS partition.
    #[arg(long, value_name = "PARTITION", default_value = "aws")]
    pub partition: String,
    /// Only the reads (with --migrate: what `migrate plan` needs).
    #[arg(long)]
    pub read_only: bool,
    /// Add the actions of `singletable migrate` (CreateTable, UpdateTable,
    /// time to live and continuous backups). A copy into a new table also
    /// needs read access to the old one: generate its policy with
    /// --read-only --table-arn OLD_ARN.
    #[arg(long)]
    pub migrate: bool,
}

/// `singletable migrate ...`
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Show what changing the table to the new design would do, without
    /// changing anything.
    Plan(PlanArgs),
    /// Change the table: a saved plan as is, or plan now and ask first.
    Apply(ApplyArgs),
    /// Put back the items of an export file written before a destructive
    /// step.
    Restore(RestoreArgs),
    /// Ask the online apply running on a table to cut over: run it once the
    /// application has stopped writing the old form.
    Cutover(TableArgs),
    /// Ask the online apply running on a table to finish: delete the old
    /// forms (contract) and verify.
    Complete(TableArgs),
    /// Show the phase of the online apply in progress on a table.
    Status(TableArgs),
}

/// `singletable migrate cutover|complete|status`
#[derive(Debug, Clone, Args)]
pub struct TableArgs {
    /// The table.
    #[arg(long, value_name = "NAME")]
    pub table: String,
}

/// `singletable migrate apply`
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// A plan saved by `migrate plan --out`; applied without asking. When
    /// absent, a plan is made from the design flags and confirmed first.
    #[arg(value_name = "PLAN_FILE")]
    pub plan: Option<PathBuf>,
    #[command(flatten)]
    pub inputs: PlanInputs,
    /// Apply a freshly made plan without asking.
    #[arg(long)]
    pub auto_approve: bool,
    /// Migrate while the application keeps writing (the safe way on a live
    /// table): the stream is turned on, the backfill copies items while a
    /// replay of the stream carries the application's changes over; then
    /// it waits for `singletable migrate cutover` (once the application
    /// has stopped writing the old form) and `singletable migrate
    /// complete`. Needed when the plan rewrites items, unless --offline.
    #[arg(long, conflicts_with = "offline")]
    pub online: bool,
    /// For a maintenance window: rewrite items assuming nobody writes the
    /// table meanwhile. Writes made during the run are NOT carried over
    /// (an update may be lost, a deleted item may come back).
    #[arg(long)]
    pub offline: bool,
    /// With --online: cut over as soon as the new forms have caught up,
    /// without waiting for `migrate cutover` (only when the application
    /// does not write the old form any more, or never did).
    #[arg(long, requires = "online")]
    pub auto_cutover: bool,
    /// With --online: complete (contract) right after cut-over, without
    /// waiting for `migrate complete`.
    #[arg(long, requires = "online")]
    pub auto_complete: bool,
    /// Allow destructive changes (deleting an index, removing an entity's
    /// items after exporting them).
    #[arg(long)]
    pub allow_destroy: bool,
    /// Where exports of items about to be destroyed are written.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub export_dir: PathBuf,
    /// Seconds the apply lock lasts without a heartbeat (a crashed apply
    /// blocks others this long).
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub lease_seconds: u64,
    /// Requests in flight at once over all segments (default: one per
    /// segment).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: Option<u32>,
    /// Items per scan page, and so per checkpoint: what a crash can cost
    /// (default 2000, fewer when DynamoDB's 1 MB page fills first).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub page_size: Option<i32>,
}

/// `singletable migrate restore`
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The export file (JSON lines of typed DynamoDB JSON).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The table to put the items back into.
    #[arg(long, value_name = "NAME")]
    pub table: String,
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
        Command::Migrate(MigrateCommand::Apply(args)) => apply_command(&args, embedded).await,
        Command::Design(command) => design_command(command, embedded),
        Command::Migrate(MigrateCommand::Restore(args)) => {
            let written = Migrator::new(client().await).restore(&args.table, &args.file).await?;
            println!("Restored {written} items from {} into `{}`.", args.file.display(), args.table);
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate(MigrateCommand::Cutover(args)) => request_command(&args.table, "cutover").await,
        Command::Migrate(MigrateCommand::Complete(args)) => request_command(&args.table, "complete").await,
        Command::Migrate(MigrateCommand::Status(args)) => {
            let client = client().await;
            let (pk, sk) = key_attrs(&client, &args.table).await?;
            match crate::online::phase(&client, &args.table, &pk, &sk).await? {
                Some(phase) => println!("Table `{}`: an online apply is in phase {phase:?}.", args.table),
                None => println!("Table `{}`: no online apply in progress.", args.table),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn design_input(input: &DesignInput, embedded: Option<TableDesign>) -> Result<TableDesign, MigrateError> {
    match (&input.design, embedded) {
        (Some(path), _) => read_design(path),
        (None, Some(d)) => Ok(d),
        (None, None) => Err(MigrateError::Other("no design given: pass --design FILE".into())),
    }
}

/// Writes `text` to `out`, or to standard output.
fn emit(out: Option<&Path>, text: &str, what: &str) -> Result<(), MigrateError> {
    match out {
        Some(path) => {
            std::fs::write(path, text).map_err(|source| MigrateError::Io { path: path.display().to_string(), source })?;
            eprintln!("Wrote {what} to {}.", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// Now, or `SOURCE_DATE_EPOCH` for reproducible files, in seconds.
fn now_secs() -> i64 {
    std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.trim().parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
    })
}

fn design_command(command: DesignCommand, embedded: Option<TableDesign>) -> Result<ExitCode, MigrateError> {
    match command {
        DesignCommand::Show(args) => {
            let design = design_input(&args.input, embedded)?;
            print!("{}", if args.markdown { show::render_markdown(&design) } else { show::render_text(&design) });
        }
        DesignCommand::Export(args) => {
            let design = design_input(&args.input, embedded)?;
            let opts = workbench::ExportOptions {
                samples: args.samples.into(),
                author: args.author.clone(),
                date: workbench::workbench_date(now_secs()),
                model_name: args.model_name.clone(),
            };
            let export = workbench::export(&design, &opts)?;
            for w in &export.warnings {
                eprintln!("Warning: {w}");
            }
            emit(args.out.as_deref(), &export.model.to_json(), "the NoSQL Workbench model")?;
        }
        DesignCommand::Import(args) => {
            let path = &args.workbench;
            let text = std::fs::read_to_string(path).map_err(|source| MigrateError::Io { path: path.display().to_string(), source })?;
            let model = workbench::Model::from_json(&text).map_err(|e| MigrateError::Other(format!("{}: {e}", path.display())))?;
            let import = workbench::import(&model, args.table.as_deref())?;
            for w in &import.warnings {
                eprintln!("Warning: {w}");
            }
            emit(args.out.as_deref(), &import.design.to_json(), "the design")?;
        }
        DesignCommand::Iam(args) => {
            let design = design_input(&args.input, embedded)?;
            let arn = match &args.table_arn {
                Some(arn) => iam::TableArn::parse(arn),
                None => {
                    if args.region.is_none() || args.account.is_none() {
                        eprintln!(
                            "Note: no --table-arn (or --region and --account): the policy names table `{}` in {}.",
                            design.table,
                            match (&args.region, &args.account) {
                                (None, None) => "any region and account",
                                (Some(_), None) => "any account",
                                _ => "any region",
                            }
                        );
                    }
                    iam::TableArn::new(&args.partition, args.region.as_deref(), args.account.as_deref(), &design.table)
                }
            }
            .map_err(MigrateError::Other)?;
            let policy = iam::policy(&design, &iam::IamOptions { arn, read_only: args.read_only, migrate: args.migrate });
            print!("{}", policy.to_json());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A DynamoDB client from the environment's AWS configuration.
pub async fn client() -> Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    Client::new(&config)
}

/// A DynamoDB Streams client from the same configuration. DynamoDB Local
/// serves streams on its one endpoint: when only `AWS_ENDPOINT_URL_DYNAMODB`
/// names an endpoint, the streams client uses it too.
pub async fn streams_client() -> aws_sdk_dynamodbstreams::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let mut builder = aws_sdk_dynamodbstreams::config::Builder::from(&config);
    let own = std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB_STREAMS").is_some();
    if let (false, Some(url)) = (own, std::env::var("AWS_ENDPOINT_URL_DYNAMODB").ok()) {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_dynamodbstreams::Client::from_conf(builder.build())
}

/// The table's key attribute names, where the toolkit's own items live.
async fn key_attrs(client: &Client, table: &str) -> Result<(String, String), MigrateError> {
    let live = crate::live::describe(client, table).await?;
    match (live.exists, live.pk_attr, live.sk_attr) {
        (true, Some(pk), Some(sk)) => Ok((pk, sk)),
        _ => Err(MigrateError::Other(format!("table `{table}` does not exist or has no sort key"))),
    }
}

async fn request_command(table: &str, what: &str) -> Result<ExitCode, MigrateError> {
    let client = client().await;
    let (pk, sk) = key_attrs(&client, table).await?;
    let phase = crate::online::request(&client, table, &pk, &sk, what).await?;
    println!("Asked the online apply of `{table}` (phase {phase:?}) to {what}; it does so within a second or two.");
    Ok(ExitCode::SUCCESS)
}

/// Reads and checks a design file.
pub fn read_design(path: &Path) -> Result<TableDesign, MigrateError> {
    let text = std::fs::read_to_string(path).map_err(|source| MigrateError::Io { path: path.display().to_string(), source })?;
    TableDesign::from_json(&text).map_err(|e| MigrateError::Other(format!("{}: {e}", path.display())))
}

/// Makes a plan as `migrate plan` does, with the library's [`planner`]:
/// reads the new design (file or embedded) and `--from`, parses the
/// `--default`s, plans, and prints the planner's notes to standard error.
pub async fn make_plan(client: &Client, inputs: &PlanInputs, embedded: Option<&TableDesign>) -> Result<Plan, MigrateError> {
    let design = match (&inputs.design, embedded) {
        (Some(path), _) => read_design(path)?,
        (None, Some(d)) => d.clone(),
        (None, None) => return Err(MigrateError::Other("no design given: pass --design FILE".into())),
    };
    let from = inputs.from.as_deref().map(read_design).transpose()?;
    let mut defaults = Defaults::new();
    for spec in &inputs.defaults {
        let (k, v) = parse_default(spec, &design)?;
        defaults.insert(k, v);
    }
    let mut request = PlanRequest::new(design).defaults(defaults).segments(inputs.segments).max_wcu(inputs.max_wcu);
    request.table = inputs.table.clone();
    request.from = from;
    let planned = planner::make_plan(client, &request).await?;
    for note in &planned.notes {
        match note {
            Note::RecordedDesignWins { table } => eprintln!(
                "Note: table `{table}` records the design it was last migrated to; it is used, and --from {} is ignored.",
                inputs.from.as_deref().unwrap_or(Path::new("")).display()
            ),
        }
    }
    Ok(planned.plan)
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

fn read_plan(path: &Path) -> Result<Plan, MigrateError> {
    let text = std::fs::read_to_string(path).map_err(|source| MigrateError::Io { path: path.display().to_string(), source })?;
    serde_json::from_str(&text).map_err(|e| MigrateError::Other(format!("{}: not a saved plan: {e}", path.display())))
}

/// Asks on the terminal, as Terraform does; anything but `yes` declines.
fn confirmed() -> bool {
    use std::io::{BufRead, Write};
    print!("\nDo you want to perform these actions?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).is_ok() && answer.trim() == "yes"
}

async fn apply_command(args: &ApplyArgs, embedded: Option<TableDesign>) -> Result<ExitCode, MigrateError> {
    let client = client().await;
    let plan = match &args.plan {
        Some(path) => {
            // A saved plan carries its design, table and defaults: flags
            // that would change them are refused, not silently ignored.
            let inputs = &args.inputs;
            let ignored: Vec<&str> = [
                (inputs.design.is_some(), "--design"),
                (inputs.from.is_some(), "--from"),
                (inputs.table.is_some(), "--table"),
                (!inputs.defaults.is_empty(), "--default"),
            ]
            .into_iter()
            .filter_map(|(given, flag)| given.then_some(flag))
            .collect();
            if !ignored.is_empty() {
                return Err(MigrateError::Other(format!(
                    "{} cannot change a saved plan ({}): plan again with them, or apply the plan without them",
                    ignored.join(", "),
                    path.display()
                )));
            }
            read_plan(path)?
        }
        None => {
            let plan = make_plan(&client, &args.inputs, embedded.as_ref()).await?;
            print!("{}", render_plan(&plan));
            if !plan.blocking_errors().is_empty() {
                return Ok(ExitCode::from(1));
            }
            // An empty plan still goes to the migrator, which tidies up
            // after an apply killed past its last step; nothing to confirm.
            if !plan.is_empty() && !args.auto_approve && !confirmed() {
                println!("\nApply cancelled.");
                return Ok(ExitCode::from(1));
            }
            plan
        }
    };
    let cancel = Arc::new(AtomicBool::new(false));
    {
        // First Ctrl-C: stop at the next page with checkpoints saved.
        // Second: leave at once (the checkpoints still hold).
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\nInterrupted: stopping at the next page boundary (Ctrl-C again to quit now)...");
                cancel.store(true, Ordering::SeqCst);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
    }
    let opts = ApplyOptions {
        segments: args.inputs.segments,
        concurrency: args.concurrency,
        max_wcu: args.inputs.max_wcu,
        allow_destroy: args.allow_destroy,
        export_dir: args.export_dir.clone(),
        defaults: Defaults::new(),
        lease: Duration::from_secs(args.lease_seconds),
        owner: format!("singletable migrate apply (pid {})", std::process::id()),
        page_size: args.page_size,
        cancel,
    };
    let rewrites = plan.changes.iter().any(|c| matches!(c, crate::plan::Change::Rewrite(_) | crate::plan::Change::RemoveEntity { .. }));
    if rewrites && !args.online && !args.offline {
        return Err(MigrateError::Other(
            "this plan rewrites items: choose --online (the application keeps writing; safe on a live table) or --offline \
             (a maintenance window: writes made during the run are not carried over)"
                .into(),
        ));
    }
    let observer = Arc::new(Progress::new());
    if args.online && !plan.is_empty() {
        let result = online_apply(client, &plan, &opts, args, observer.clone()).await;
        observer.finish();
        let report = result?;
        print!("{}", render_report(&plan, &report));
        return Ok(ExitCode::SUCCESS);
    }
    let result = Migrator::new(client).apply(&plan, &opts, observer.clone()).await;
    observer.finish();
    let report = result?;
    // A plan made here is on screen already; an empty one says all.
    if !(args.plan.is_none() && plan.is_empty()) {
        print!("{}", render_report(&plan, &report));
    }
    Ok(ExitCode::SUCCESS)
}

/// The online apply's phases, each waiting for its request unless told
/// to go on by itself.
async fn online_apply(client: Client, plan: &Plan, opts: &ApplyOptions, args: &ApplyArgs, observer: Arc<Progress>) -> Result<ApplyReport, MigrateError> {
    let migrator = Migrator::new(client).with_streams(streams_client().await);
    let mut online = migrator.start_online(plan, opts, observer.clone()).await?;
    if online.phase() == crate::online::Phase::Expand {
        online.wait_caught_up().await?;
        if !args.auto_cutover {
            observer.finish();
            eprintln!(
                "\nThe new forms have caught up and the replay keeps them so. Switch the application to the new version: \
                 stop the old version's writes, then run\n\n    singletable migrate cutover --table {}\n\n\
                 (the new version starts writing once cut-over is done).",
                plan.table
            );
            online.wait_for_request("cutover").await?;
        }
        let cut = online.cutover().await?;
        eprintln!(
            "Cut over in {:.1} s: drained {} stream records, {} items verified attribute for attribute; the new design is recorded. \
             The new version may write now.",
            cut.took.as_secs_f64(),
            cut.drained,
            cut.content.compared + cut.content.in_place
        );
    }
    if !args.auto_complete {
        eprintln!(
            "\nThe old forms stay (the way back) until you run\n\n    singletable migrate complete --table {}\n",
            plan.table
        );
        online.wait_for_request("complete").await?;
    }
    online.complete().await
}

/// The closing summary of an apply.
pub fn render_report(plan: &Plan, report: &ApplyReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if plan.is_empty() {
        out.push_str("\nNo changes. The table matches the design.\n");
        return out;
    }
    let _ = writeln!(
        out,
        "\nApply complete! Items: {} moved, {} updated in place, {} deleted ({} scanned{}).",
        report.moved,
        report.updated,
        report.deleted,
        report.scanned,
        if report.resumed { ", resumed from checkpoints" } else { "" }
    );
    if let Some(v) = &report.verification {
        let counts: Vec<String> = v.counts.iter().map(|(e, n)| format!("{e} {n}")).collect();
        let _ = writeln!(out, "Verified: every item conforms to the new design ({}).", counts.join(", "));
    }
    for path in &report.exports {
        let _ = writeln!(out, "Exported destroyed items to {} (undo: singletable migrate restore {} --table {}).", path.display(), path.display(), plan.table);
    }
    for w in &report.warnings {
        let _ = writeln!(out, "Warning: {w}");
    }
    if !report.cutover.is_empty() {
        let _ = writeln!(out, "\nCut-over:");
        for step in &report.cutover {
            let _ = writeln!(out, "  {step}");
        }
    }
    out
}

/// Shows apply progress: a bar with items/s and ETA on a terminal, plain
/// log lines (at most one every few seconds) otherwise.
pub struct Progress {
    tty: bool,
    started: std::time::Instant,
    last: std::sync::Mutex<(std::time::Instant, bool)>,
}

impl Progress {
    pub fn new() -> Self {
        use std::io::IsTerminal;
        let now = std::time::Instant::now();
        Progress { tty: std::io::stderr().is_terminal(), started: now, last: std::sync::Mutex::new((now, false)) }
    }

    /// Ends the bar's line.
    pub fn finish(&self) {
        let mut last = self.last.lock().expect("progress");
        if self.tty && last.1 {
            eprintln!();
            last.1 = false;
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Observer for Progress {
    fn event(&self, event: Event) {
        let mut last = self.last.lock().expect("progress");
        match event {
            Event::Step { number, total, text } => {
                if last.1 {
                    eprintln!();
                    last.1 = false;
                }
                eprintln!("[{number}/{total}] {text}");
            }
            Event::Warning(text) => {
                if last.1 {
                    eprintln!();
                    last.1 = false;
                }
                eprintln!("Warning: {text}");
            }
            Event::Progress { scanned, written, total } => {
                let now = std::time::Instant::now();
                let every = if self.tty { Duration::from_millis(100) } else { Duration::from_secs(5) };
                if now.duration_since(last.0) < every {
                    return;
                }
                last.0 = now;
                let secs = now.duration_since(self.started).as_secs_f64().max(1e-3);
                let rate = scanned as f64 / secs;
                let eta = total
                    .filter(|t| *t > scanned && rate > 0.0)
                    .map(|t| format!(", ETA {:.0}s", (t - scanned) as f64 / rate))
                    .unwrap_or_default();
                let of = total.map(|t| format!("/{t}")).unwrap_or_default();
                if self.tty {
                    let bar = total
                        .filter(|t| *t > 0)
                        .map(|t| {
                            let filled = ((scanned.min(t) as f64 / t as f64) * 30.0) as usize;
                            format!("[{}{}] ", "#".repeat(filled), ".".repeat(30 - filled))
                        })
                        .unwrap_or_default();
                    eprint!("\r{bar}{scanned}{of} items scanned, {written} written, {rate:.0} items/s{eta}   ");
                    last.1 = true;
                } else {
                    eprintln!("progress: {scanned}{of} items scanned, {written} written, {rate:.0} items/s{eta}");
                }
            }
        }
    }
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
        let Command::Migrate(MigrateCommand::Plan(p)) = cli.command else { panic!() };
        assert_eq!(p.inputs.design.as_deref(), Some(Path::new("new.json")));
        assert_eq!(p.inputs.table.as_deref(), Some("t"));
        assert_eq!(p.inputs.defaults, ["User.region=eu", "User.n=1"]);
        assert_eq!((p.inputs.segments, p.inputs.max_wcu), (8, Some(250.0)));
        assert!(p.json && p.detailed_exitcode);
        assert!(Cli::try_parse_from(["singletable", "migrate", "plan", "--segments", "0"]).is_err());
        assert!(Cli::try_parse_from(["singletable", "migrate", "plan", "--max-wcu", "-1"]).is_err());
        let defaults = Cli::try_parse_from(["singletable", "migrate", "plan"]).unwrap();
        let Command::Migrate(MigrateCommand::Plan(p)) = defaults.command else { panic!() };
        assert_eq!((p.inputs.segments, p.inputs.max_wcu, p.json), (4, None, false));
    }

    #[test]
    fn parses_the_design_commands() {
        let parse = |args: &[&str]| Cli::try_parse_from(std::iter::once("singletable").chain(args.iter().copied()));
        let Command::Design(DesignCommand::Show(s)) = parse(&["design", "show", "--design", "d.json", "--markdown"]).unwrap().command else { panic!() };
        assert!(s.markdown && s.input.design.is_some());
        let Command::Design(DesignCommand::Export(e)) = parse(&["design", "export", "--workbench", "--samples", "5"]).unwrap().command else { panic!() };
        assert_eq!((e.workbench, e.samples, e.out), (true, 5, None));
        assert!(parse(&["design", "export"]).is_err(), "a format is required");
        let Command::Design(DesignCommand::Import(i)) = parse(&["design", "import", "--workbench", "m.json", "--out", "d.json"]).unwrap().command else { panic!() };
        assert_eq!(i.workbench, Path::new("m.json"));
        assert!(parse(&["design", "import"]).is_err());
        let Command::Design(DesignCommand::Iam(i)) = parse(&["design", "iam", "--region", "eu-west-1", "--account", "123456789012", "--migrate"]).unwrap().command else { panic!() };
        assert!(i.migrate && !i.read_only && i.table_arn.is_none());
        assert!(parse(&["design", "iam", "--table-arn", "arn:aws:dynamodb:x:1:table/t", "--region", "x"]).is_err());
    }

}
