//! The `repoctl` binary: parse the command line, set up logging, run the
//! command, print the error chain once and map it to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = repoctl::cli::Cli::parse();
    repoctl::cli::init_logging(&cli.global);
    match repoctl::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", repoctl::repo::error_chain(error.as_ref()));
            if let Some(hint) = repoctl::cli::hint(&error) {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(1)
        }
    }
}
