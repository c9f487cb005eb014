//! The command line's grammar: every command, argument and flag, with
//! the help text clap prints. Nothing here runs anything.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// `singletable`: DynamoDB single-table design toolkit.
#[derive(Debug, Parser)]
#[command(name = "singletable", version, about = "DynamoDB single-table design toolkit")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes, before or after its name.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// The AWS profile to use (default: AWS_PROFILE, then `default`).
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// The AWS region (default: AWS_REGION, then the profile's). For
    /// `design iam`, the table's region named in the policy.
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// The DynamoDB endpoint, e.g. http://localhost:8000 for DynamoDB
    /// Local (also used for its streams). Wins over AWS_ENDPOINT_URL and
    /// AWS_ENDPOINT_URL_DYNAMODB.
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Log more: -v debug (retries, throttled writes), -vv trace. RUST_LOG,
    /// when set, replaces these levels.
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Errors, warnings and results only: no steps, progress or logs.
    #[arg(short, long, global = true)]
    pub quiet: bool,
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
    /// Print a completion script for a shell, e.g.
    /// `singletable completions bash > /etc/bash_completion.d/singletable`.
    Completions(CompletionsArgs),
}

/// `singletable completions`
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
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
    /// The design as JSON (the design file's format), for tools.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
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
    /// Ask a cut-over online apply to go back: once every new form is
    /// checked against its old form, the old design is recorded again and
    /// the old version may write (before `complete` only).
    Rollback(TableArgs),
    /// Show the phase of the online apply in progress on a table.
    Status(TableArgs),
}

/// `singletable migrate cutover|complete|rollback|status`
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
    /// Apply a freshly made plan without asking (needed when standard
    /// input is not a terminal, and with --json).
    #[arg(long)]
    pub auto_approve: bool,
    /// Report as newline-delimited JSON on standard output (one object
    /// per line: plan, step, progress, warning, message, summary, error).
    #[arg(long)]
    pub json: bool,
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
    /// Join an apply of this saved plan that runs elsewhere (another
    /// process, host or container started `migrate apply PLAN` and holds
    /// the lock) as one more worker: take a share of its scan segments,
    /// rewrite them, exit when every segment is done. Start as many as
    /// you like, at any time; `--max-wcu` is split among the live workers.
    #[arg(long, requires = "plan", conflicts_with_all = ["online", "offline", "auto_cutover", "auto_complete"])]
    pub worker: bool,
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
    /// Report as newline-delimited JSON on standard output.
    #[arg(long)]
    pub json: bool,
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

impl Command {
    /// Whether the command reports as JSON lines, so that an error is
    /// reported as one too.
    pub fn json_lines(&self) -> bool {
        matches!(
            self,
            Command::Migrate(MigrateCommand::Apply(ApplyArgs { json: true, .. }) | MigrateCommand::Restore(RestoreArgs { json: true, .. }))
        )
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

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
        let cli = parse(&["design", "iam", "--region", "eu-west-1", "--account", "123456789012", "--migrate"]).unwrap();
        assert_eq!(cli.global.region.as_deref(), Some("eu-west-1"));
        let Command::Design(DesignCommand::Iam(i)) = cli.command else { panic!() };
        assert!(i.migrate && !i.read_only && i.table_arn.is_none());
        assert!(parse(&["design", "iam", "--table-arn", "arn:aws:dynamodb:x:1:table/t", "--region", "x"]).is_err());
    }

    #[test]
    fn global_flags_go_before_or_after_the_command() {
        let parse = |args: &[&str]| Cli::try_parse_from(std::iter::once("singletable").chain(args.iter().copied()));
        let after = parse(&["migrate", "status", "--table", "t", "--region", "eu-west-1", "--profile", "prod", "-vv"]).unwrap();
        let before = parse(&["--region", "eu-west-1", "--profile", "prod", "-vv", "migrate", "status", "--table", "t"]).unwrap();
        for cli in [after, before] {
            assert_eq!((cli.global.region.as_deref(), cli.global.profile.as_deref(), cli.global.verbose), (Some("eu-west-1"), Some("prod"), 2));
        }
        let cli = parse(&["--endpoint-url", "http://localhost:8000", "-q", "design", "show"]).unwrap();
        assert_eq!((cli.global.endpoint_url.as_deref(), cli.global.quiet), (Some("http://localhost:8000"), true));
        assert!(parse(&["-q", "-v", "design", "show"]).is_err(), "-q and -v contradict");
        assert!(parse(&["design", "show", "--json", "--markdown"]).is_err());
        let Command::Completions(c) = parse(&["completions", "zsh"]).unwrap().command else { panic!() };
        assert_eq!(c.shell, clap_complete::Shell::Zsh);
        assert!(parse(&["completions", "tcsh"]).is_err());
        assert!(parse(&["migrate", "apply", "--json"]).unwrap().command.json_lines());
        assert!(!parse(&["migrate", "apply"]).unwrap().command.json_lines());
    }

    #[test]
    fn the_command_line_is_consistent() {
        // clap checks duplicate flags (a global --region against a
        // subcommand's own) only here, not at compile time.
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
