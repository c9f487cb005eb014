//! `singletable migrate ...`: plan, apply (offline or online), restore,
//! and the requests to an online apply running elsewhere. Each command
//! hands the work to the library and shows what it reports.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use serde_json::json;
use singletable::TableDesign;

use super::args::{ApplyArgs, PlanArgs, PlanInputs, RestoreArgs};
use super::aws::Aws;
use super::design::read_design;
use super::json;
use super::output::Progress;
use super::term::eline;
use crate::analyze::parse_default;
use crate::apply::{ApplyOptions, ApplyReport, Migrator};
use crate::error::MigrateError;
use crate::plan::{Change, Defaults, Plan};
use crate::planner::{self, Note, PlanRequest};
use crate::render::render_plan;

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

pub(super) async fn plan_command(aws: &Aws, args: &PlanArgs, embedded: Option<TableDesign>) -> Result<ExitCode, MigrateError> {
    let client = aws.dynamodb();
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

/// What to do instead of answering a prompt nobody can see.
const NO_PROMPT: &str = "pass --auto-approve to apply the plan shown without asking, or save it with \
                         `singletable migrate plan --out FILE` and apply the file";

/// Asks on the terminal, as Terraform does; anything but `yes` declines.
/// Without a terminal on standard input there is nobody to ask: reading
/// it would hang on an open pipe or take end of input for "no".
fn confirmed() -> Result<bool, MigrateError> {
    use std::io::{BufRead, Write};
    if !std::io::stdin().is_terminal() {
        return Err(MigrateError::Other(format!("cannot ask whether to apply: standard input is not a terminal; {NO_PROMPT}")));
    }
    print!("\nDo you want to perform these actions?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    Ok(std::io::stdin().lock().read_line(&mut answer).is_ok() && answer.trim() == "yes")
}

pub(super) async fn apply_command(aws: &Aws, args: &ApplyArgs, quiet: bool, embedded: Option<TableDesign>) -> Result<ExitCode, MigrateError> {
    let client = aws.dynamodb();
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
            // Standard output carries the JSON lines: no prompt there.
            if args.json && !args.auto_approve {
                return Err(MigrateError::Other(format!("--json cannot ask whether to apply; {NO_PROMPT}")));
            }
            let plan = make_plan(&client, &args.inputs, embedded.as_ref()).await?;
            Progress::new(args.json, quiet).plan(&plan);
            if !plan.blocking_errors().is_empty() {
                if args.json {
                    return Err(MigrateError::Other("apply refuses this plan: it has errors (see the plan)".into()));
                }
                return Ok(ExitCode::from(1));
            }
            // An empty plan still goes to the migrator, which tidies up
            // after an apply killed past its last step; nothing to confirm.
            if !plan.is_empty() && !args.auto_approve && !confirmed()? {
                println!("\nApply cancelled.");
                return Ok(ExitCode::from(1));
            }
            plan
        }
    };
    let rewrites = plan.changes.iter().any(|c| matches!(c, Change::Rewrite(_) | Change::RemoveEntity { .. }));
    if rewrites && !args.online && !args.offline && !args.worker {
        return Err(MigrateError::Other(
            "this plan rewrites items: choose --online (the application keeps writing; safe on a live table) or --offline \
             (a maintenance window: writes made during the run are not carried over)"
                .into(),
        ));
    }
    let cancel = Arc::new(AtomicBool::new(false));
    {
        // First Ctrl-C: stop at the next page with checkpoints saved.
        // Second: leave at once (the checkpoints still hold).
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eline("\nInterrupted: stopping at the next page boundary (Ctrl-C again to quit now)...");
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
    let progress = Arc::new(Progress::new(args.json, quiet).with_plan(&plan));
    let result = if args.worker {
        Migrator::new(client).with_streams(aws.streams()).work(&plan, &opts, progress.clone(), Duration::from_secs(120)).await
    } else if args.online && !plan.is_empty() {
        online_apply(aws, client, &plan, &opts, args, &progress).await
    } else {
        Migrator::new(client).apply(&plan, &opts, progress.clone()).await
    };
    progress.finish();
    // A plan made here is on screen already; when empty, it says all.
    progress.summary(&plan, &result?, args.plan.is_none());
    Ok(ExitCode::SUCCESS)
}

/// The online apply's phases, each waiting for its request unless told
/// to go on by itself.
async fn online_apply(aws: &Aws, client: Client, plan: &Plan, opts: &ApplyOptions, args: &ApplyArgs, progress: &Arc<Progress>) -> Result<ApplyReport, MigrateError> {
    let migrator = Migrator::new(client).with_streams(aws.streams());
    let mut online = migrator.start_online(plan, opts, progress.clone()).await?;
    // Expand → cut-over → (rollback → expand → cut-over ...) → contract.
    loop {
        if online.phase() == crate::online::Phase::Expand {
            online.wait_caught_up().await?;
            if !args.auto_cutover {
                progress.finish();
                progress.note(&format!(
                    "\nThe new forms have caught up and the replay keeps them so. Switch the application to the new version: \
                     stop the old version's writes (a new version built with `Table::migrating_from` may write throughout), then run\n\n    \
                     singletable migrate cutover --table {}\n\n\
                     (a plain new version starts writing once cut-over is done).",
                    plan.table
                ));
                online.wait_for_request("cutover").await?;
            }
            let cut = online.cutover().await?;
            progress.note(&format!(
                "Cut over in {:.1} s: drained {} stream records, {} items verified attribute for attribute; the new design is recorded. \
                 The new version may write now.",
                cut.took.as_secs_f64(),
                cut.drained,
                cut.content.compared + cut.content.in_place
            ));
        }
        if args.auto_complete || online.phase() != crate::online::Phase::CutOver {
            break;
        }
        progress.finish();
        progress.note(&format!(
            "\nThe old forms stay (the way back: `singletable migrate rollback --table {0}`) until you run\n\n    \
             singletable migrate complete --table {0}\n",
            plan.table
        ));
        if online.wait_for_any(&["complete", "rollback"]).await? == "complete" {
            break;
        }
        let checked = online.rollback().await?;
        progress.note(&format!(
            "Rolled back: {} items checked; the old design is recorded again and the old form is the truth. \
             The old version may write; cut over again when ready.",
            checked.compared
        ));
    }
    online.complete().await
}

pub(super) async fn restore_command(aws: &Aws, args: &RestoreArgs, quiet: bool) -> Result<ExitCode, MigrateError> {
    let progress = Progress::new(args.json, quiet);
    progress.step(None, &format!("Restoring the items of {} into `{}`...", args.file.display(), args.table));
    let result = Migrator::new(aws.dynamodb()).restore_observed(&args.table, &args.file, &progress).await;
    progress.finish();
    let written = result?;
    let message = format!("Restored {written} items from {} into `{}`.", args.file.display(), args.table);
    if progress.is_json() {
        json::emit("info", "summary", &message, Some(json!({"table": args.table, "file": args.file, "restored": written})));
    } else {
        println!("{message}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The table's key attribute names, where the toolkit's own items live.
async fn key_attrs(client: &Client, table: &str) -> Result<(String, String), MigrateError> {
    let live = crate::live::describe(client, table).await?;
    match (live.exists, live.pk_attr, live.sk_attr) {
        (true, Some(pk), Some(sk)) => Ok((pk, sk)),
        _ => Err(MigrateError::Other(format!("table `{table}` does not exist or has no sort key"))),
    }
}

/// `migrate cutover|complete`: leaves a request the online apply picks up.
pub(super) async fn request_command(aws: &Aws, table: &str, what: &str) -> Result<ExitCode, MigrateError> {
    let client = aws.dynamodb();
    let (pk, sk) = key_attrs(&client, table).await?;
    let phase = crate::online::request(&client, table, &pk, &sk, what).await?;
    println!("Asked the online apply of `{table}` (phase {phase:?}) to {what}; it does so within a second or two.");
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn status_command(aws: &Aws, table: &str) -> Result<ExitCode, MigrateError> {
    let client = aws.dynamodb();
    let (pk, sk) = key_attrs(&client, table).await?;
    let status = crate::status::status(&client, table, &pk, &sk).await?;
    print!("Table `{table}`:\n{status}");
    Ok(ExitCode::SUCCESS)
}
