//! The command line: one file per command. This is the only code that
//! prints results to stdout; diagnostics go to stderr through `tracing`.
//!
//! Exit codes: 0 done, 1 refused or a problem found, 2 usage (clap).

mod add;
mod build;
mod copy;
mod gc;
mod history;
mod init;
mod lifecycle;
mod list;
mod next_version;
mod prune;
mod publish;
mod quickstart;
mod reindex;
mod remove;
mod rollback;
mod serve;
mod token;
mod verify;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// A private APT repository: ingest .debs, publish signed indices, serve them.
///
/// Every command works on the repository at --root (default: $REPOCTL_ROOT,
/// then the current directory). Results go to stdout (--json where scripts
/// parse them); messages go to stderr.
#[derive(Debug, Parser)]
#[command(name = "repoctl", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The repository's root directory (default: the current directory).
    #[arg(long, global = true, env = "REPOCTL_ROOT")]
    pub root: Option<PathBuf>,
    /// More messages on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log format on stderr: `text`, or `json` for log collectors.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Init(init::InitArgs),
    Add(add::AddArgs),
    #[command(alias = "ls")]
    List(list::ListArgs),
    Publish(publish::PublishArgs),
    NextVersion(next_version::NextVersionArgs),
    Serve(serve::ServeArgs),
    Quickstart(quickstart::QuickstartArgs),
    Reindex(reindex::ReindexArgs),
    Token(token::TokenArgs),
    Watch(watch::WatchArgs),
    Verify(verify::VerifyArgs),
    Copy(copy::CopyArgs),
    /// Like copy, then take the version out of the source.
    Move(copy::CopyArgs),
    Remove(remove::RemoveArgs),
    Prune(prune::PruneArgs),
    Rollback(rollback::RollbackArgs),
    Restore(rollback::RestoreArgs),
    Gc(gc::GcArgs),
    History(history::HistoryArgs),
    Build(build::BuildArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // `build` takes a repository only when one is named (never the app dir).
    let root_given = cli.global.root.is_some();
    let root = cli.global.root.unwrap_or_else(|| PathBuf::from("."));
    match cli.command {
        Command::Init(args) => init::run(&root, args),
        Command::Add(args) => add::run(&root, args),
        Command::List(args) => list::run(&root, args),
        Command::Publish(args) => publish::run(&root, args),
        Command::NextVersion(args) => next_version::run(&root, args),
        Command::Serve(args) => serve::run(&root, args),
        Command::Quickstart(args) => quickstart::run(args),
        Command::Reindex(args) => reindex::run(&root, args),
        Command::Token(args) => token::run(&root, args),
        Command::Watch(args) => watch::run(&root, args),
        Command::Verify(args) => verify::run(&root, args),
        Command::Copy(args) => copy::run(&root, args, false),
        Command::Move(args) => copy::run(&root, args, true),
        Command::Remove(args) => remove::run(&root, args),
        Command::Prune(args) => prune::run(&root, args),
        Command::Rollback(args) => rollback::rollback(&root, args),
        Command::Restore(args) => rollback::restore(&root, args),
        Command::Gc(args) => gc::run(&root, args),
        Command::History(args) => history::run(&root, args),
        Command::Build(args) => build::run(&root, root_given, args),
    }
}

/// The `hint:` line for an error, from the first cause that has one.
pub fn hint(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<crate::repo::RepoError>() {
            e.hint()
        } else if let Some(e) = cause.downcast_ref::<crate::signing::SigningError>() {
            e.hint()
        } else if let Some(e) = cause.downcast_ref::<crate::repo::next_version::NextVersionError>()
        {
            e.hint()
        } else if let Some(e) = cause.downcast_ref::<crate::remote::RemoteError>() {
            e.hint()
        } else if let Some(e) = cause.downcast_ref::<crate::repo::lifecycle::LifecycleError>() {
            e.hint()
        } else if let Some(e) = cause.downcast_ref::<crate::build::BuildError>() {
            e.hint()
        } else if let Some(e) = cause.downcast_ref::<crate::http_client::HttpError>() {
            e.hint()
        } else if let Some(e) = cause.downcast_ref::<crate::build::deploy::DeployError>() {
            e.hint()
        } else {
            cause.downcast_ref::<Problem>().map(|p| p.hint.clone())
        }
    })
}

/// A refusal found by the command line itself, with its fix.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Problem {
    message: String,
    hint: String,
}

impl Problem {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Problem {
        Problem {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

pub fn init_logging(global: &GlobalArgs) {
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if global.log_format == "json" {
        builder.json().init();
    } else {
        builder.without_time().init();
    }
}

/// The user name recorded in the history for CLI changes.
fn cli_actor() -> crate::repo::Actor {
    let name = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    crate::repo::Actor {
        door: crate::repo::Door::Cli,
        name,
    }
}

/// Prints `value` as pretty JSON on stdout.
fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn split_list(text: &str) -> Vec<String> {
    text.split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}
