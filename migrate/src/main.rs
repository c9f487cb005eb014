//! The `singletable` command. Everything lives in
//! [`singletable_migrate::cli`], so applications can embed the same CLI
//! with their design compiled in.

fn main() -> std::process::ExitCode {
    singletable_migrate::cli::run(std::env::args_os(), None)
}
