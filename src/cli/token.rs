//! `repoctl token`: create, list and revoke the tokens the HTTP API accepts.

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::repo::tokens::TokenInfo;
use crate::repo::Repository;

/// Manage API tokens (uploads, queries and operator actions over HTTP).
///
/// A token is printed once, when it is created, and only its hash is kept.
/// Upload tokens may upload to their dist/component scopes only; --operator
/// tokens may also run every state-changing operator action. Any token may
/// read the query API and, when [server] private = true, the apt tree (as the
/// password of HTTP basic auth, with the token's name as the login).
///
/// Examples:
///   TOKEN=$(repoctl token create ci-builder --upload trusty/dev,precise/dev)
///   repoctl token create alice --operator
///   repoctl token list
///   repoctl token revoke ci-builder
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token and print it, alone on one line (the only stdout).
    Create {
        /// A name for who holds it (a build host, a person), e.g. ci-builder.
        name: String,
        /// Where it may upload: DIST/COMPONENT pairs, comma-separated.
        #[arg(long, value_delimiter = ',', value_name = "DIST/COMPONENT,...")]
        upload: Vec<String>,
        /// May also copy, move, remove, prune, roll back, restore, gc and
        /// repair (and upload anywhere).
        #[arg(long)]
        operator: bool,
        /// Print {token, name, uploads, operator, created_at} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (names and scopes; tokens themselves are never shown).
    #[command(alias = "ls")]
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token at once; requests presenting it then get 401.
    Revoke { name: String },
}

pub fn run(root: &Path, args: TokenArgs) -> anyhow::Result<ExitCode> {
    let mut repo = Repository::open(root)?;
    match args.command {
        TokenCommand::Create {
            name,
            upload,
            operator,
            json,
        } => {
            let (token, info) = repo.create_token(&name, &upload, operator, &super::cli_actor())?;
            if json {
                let mut value = serde_json::to_value(&info)?;
                value["token"] = serde_json::Value::String(token);
                println!("{value}");
            } else {
                println!("{token}");
                eprintln!(
                    "created token {} ({}); it is shown only this once, store it now",
                    info.name,
                    describe(&info)
                );
            }
        }
        TokenCommand::List { json } => {
            let tokens = repo.list_tokens()?;
            if json {
                println!("{}", serde_json::to_string(&tokens)?);
            } else if tokens.is_empty() {
                eprintln!("no tokens; create one with `repoctl token create NAME --upload DIST/COMPONENT`");
            } else {
                for info in &tokens {
                    let state = if info.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "live"
                    };
                    println!("{}\t{state}\t{}", info.name, describe(info));
                }
            }
        }
        TokenCommand::Revoke { name } => {
            let info = repo.revoke_token(&name, &super::cli_actor())?;
            eprintln!("revoked token {}", info.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(info: &TokenInfo) -> String {
    let uploads = if info.uploads.is_empty() {
        "no uploads".to_string()
    } else {
        format!("uploads to {}", info.uploads.join(","))
    };
    if info.operator {
        format!("operator, {uploads}")
    } else {
        uploads
    }
}
