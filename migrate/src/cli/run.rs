//! The entry point: parse, set up logging and AWS, run the command, turn
//! its error into a message (and an exit code).

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use singletable::TableDesign;

use super::args::{Cli, Command, MigrateCommand};
use super::aws::Aws;
use super::design::design_command;
use super::migrate::{apply_command, plan_command, request_command, restore_command, status_command};
use super::{json, logging, term};
use crate::error::MigrateError;

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
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors exit 1, never 2: 2 means "changes" to scripts
            // using --detailed-exitcode.
            return if e.use_stderr() { ExitCode::from(1) } else { ExitCode::SUCCESS };
        }
    };
    if let Command::Completions(c) = &cli.command {
        // Completions for the name the binary runs under: an application
        // embedding the CLI ships it under its own.
        let name = args
            .first()
            .and_then(|a| std::path::Path::new(a).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "singletable".into());
        clap_complete::generate(c.shell, &mut Cli::command(), name, &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    logging::init(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let json_lines = cli.command.json_lines();
    let verbose = cli.global.verbose > 0;
    match runtime.block_on(dispatch(cli, embedded)) {
        Ok(code) => code,
        Err((e, advice)) => {
            let text = match advice {
                // The SDK's own text is a nest of Debug output; it stays
                // available for -v.
                Some(advice) if verbose => format!("{e}\n\n{advice}"),
                Some(advice) => format!("{}: {advice}\n(details with -v)", operation(&e)),
                None => e.to_string(),
            };
            if json_lines {
                json::emit("error", "error", &text, None);
            }
            term::eline(&format!("Error: {text}"));
            ExitCode::from(1)
        }
    }
}

/// What failed, without the SDK's text: "DescribeTable on table `t`".
fn operation(e: &MigrateError) -> String {
    match e {
        MigrateError::Dynamo { operation, table, .. } => format!("{operation} on table `{table}` failed"),
        other => other.to_string(),
    }
}

async fn dispatch(cli: Cli, embedded: Option<TableDesign>) -> Result<ExitCode, (MigrateError, Option<String>)> {
    let global = cli.global;
    let command = match cli.command {
        Command::Design(command) => return design_command(command, global.region.as_deref(), embedded).map_err(|e| (e, None)),
        Command::Completions(_) => unreachable!("printed before the runtime starts"),
        Command::Migrate(command) => command,
    };
    let aws = Aws::load(&global).await.map_err(|e| (e, None))?;
    let result = match &command {
        MigrateCommand::Plan(args) => plan_command(&aws, args, embedded).await,
        MigrateCommand::Apply(args) => apply_command(&aws, args, global.quiet, embedded).await,
        MigrateCommand::Restore(args) => restore_command(&aws, args, global.quiet).await,
        MigrateCommand::Cutover(args) => request_command(&aws, &args.table, "cutover").await,
        MigrateCommand::Complete(args) => request_command(&aws, &args.table, "complete").await,
        MigrateCommand::Rollback(args) => request_command(&aws, &args.table, "rollback").await,
        MigrateCommand::Status(args) => status_command(&aws, &args.table).await,
    };
    result.map_err(|e| {
        let advice = aws.advice(&e);
        (e, advice)
    })
}
