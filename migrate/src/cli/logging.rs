//! The log: tracing events of the toolkit and of the AWS SDK on standard
//! error, so that retries and throttling show with `-v`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use super::args::GlobalArgs;
use super::term;

/// The filter for the flags: the toolkit's crates at the level `-v`/`-q`
/// ask for, everything else (the SDK's runtime and config loader above
/// all, whose debug output is a line per request) at warn. Off EC2 the
/// region lookup's instance metadata fails, warning at length; without
/// `-v` that failure speaks through the CLI's own "no region" error.
fn directives(global: &GlobalArgs) -> String {
    let (ours, theirs, imds) = match (global.quiet, global.verbose) {
        (true, _) => ("error", "error", "error"),
        (false, 0) => ("info", "warn", "error"),
        (false, 1) => ("debug", "warn", "warn"),
        (false, _) => ("trace", "warn", "warn"),
    };
    format!("{theirs},singletable={ours},singletable_migrate={ours},aws_smithy_runtime={theirs},aws_config={theirs},aws_config::imds={imds}")
}

/// Installs the subscriber: RUST_LOG when set (the whole filter, as with
/// any Rust program), else the flags' levels. Leaves a subscriber already
/// installed alone, for applications that embed the CLI.
pub(super) fn init(global: &GlobalArgs) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            term::eline(&format!("Warning: RUST_LOG={spec} is not a valid filter ({e}); using the flags' levels"));
            EnvFilter::new(directives(global))
        }),
        _ => EnvFilter::new(directives(global)),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| term::Stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_set_the_toolkits_level_and_keep_the_sdk_at_warn() {
        let level = |verbose, quiet| directives(&GlobalArgs { verbose, quiet, ..GlobalArgs::default() });
        let sdk = |level: &str, imds: &str| format!("aws_smithy_runtime={level},aws_config={level},aws_config::imds={imds}");
        assert_eq!(level(0, false), format!("warn,singletable=info,singletable_migrate=info,{}", sdk("warn", "error")));
        assert_eq!(level(1, false), format!("warn,singletable=debug,singletable_migrate=debug,{}", sdk("warn", "warn")));
        assert_eq!(level(3, false), format!("warn,singletable=trace,singletable_migrate=trace,{}", sdk("warn", "warn")));
        assert_eq!(level(0, true), format!("error,singletable=error,singletable_migrate=error,{}", sdk("error", "error")));
        for v in 0..3 {
            assert!(EnvFilter::try_new(level(v, false)).is_ok());
        }
    }
}
