//! `singletable design ...`: the design drawn, exported, imported and
//! turned into an IAM policy. No DynamoDB access.

use std::path::Path;
use std::process::ExitCode;

use singletable::TableDesign;

use super::args::{DesignCommand, DesignInput};
use crate::design::{iam, show, workbench};
use crate::error::MigrateError;

/// Reads and checks a design file.
pub fn read_design(path: &Path) -> Result<TableDesign, MigrateError> {
    let text = std::fs::read_to_string(path).map_err(|source| MigrateError::Io { path: path.display().to_string(), source })?;
    TableDesign::from_json(&text).map_err(|e| MigrateError::Other(format!("{}: {e}", path.display())))
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

/// Runs a `design` command; `region` is the global `--region`, the
/// table's region for `design iam`.
pub(super) fn design_command(command: DesignCommand, region: Option<&str>, embedded: Option<TableDesign>) -> Result<ExitCode, MigrateError> {
    match command {
        DesignCommand::Show(args) => {
            let design = design_input(&args.input, embedded)?;
            print!(
                "{}",
                if args.json {
                    design.to_json()
                } else if args.markdown {
                    show::render_markdown(&design)
                } else {
                    show::render_text(&design)
                }
            );
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
                    if region.is_none() || args.account.is_none() {
                        eprintln!(
                            "Note: no --table-arn (or --region and --account): the policy names table `{}` in {}.",
                            design.table,
                            match (region, &args.account) {
                                (None, None) => "any region and account",
                                (Some(_), None) => "any account",
                                _ => "any region",
                            }
                        );
                    }
                    iam::TableArn::new(&args.partition, region, args.account.as_deref(), &design.table)
                }
            }
            .map_err(MigrateError::Other)?;
            let policy = iam::policy(&design, &iam::IamOptions { arn, read_only: args.read_only, migrate: args.migrate });
            print!("{}", policy.to_json());
        }
    }
    Ok(ExitCode::SUCCESS)
}
