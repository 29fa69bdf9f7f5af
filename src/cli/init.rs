//! `repoctl init`: create a repository and publish its empty, signed tree.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::config::Config;
use crate::repo::{KeySource, Repository};
use crate::signing::KeyType;

/// Create a repository: repoctl.toml, a signing key, incoming/ and an empty,
/// signed public/ tree for every dist.
///
/// Example: repoctl --root /srv/repo init --dists precise,trusty --origin ACME --label ACME
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Dists to publish, comma-separated (each is Suite and Codename).
    #[arg(long, default_value = "precise,trusty")]
    dists: String,
    /// Components, comma-separated.
    #[arg(long, default_value = "main,dev")]
    components: String,
    /// Binary architectures, comma-separated (`all` packages go into each).
    #[arg(long, default_value = "amd64,i386")]
    architectures: String,
    /// Release `Origin:`; fixed once published.
    #[arg(long, default_value = "repoctl")]
    origin: String,
    /// Release `Label:`; fixed once published (defaults to the origin).
    #[arg(long)]
    label: Option<String>,
    /// Key to generate: rsa4096 (every apt since precise) or ed25519
    /// (modern clients only: gpgv 1.4 on precise/trusty cannot verify it).
    #[arg(long, default_value = "rsa4096", conflicts_with = "import_key")]
    key_type: KeyType,
    /// Use this armored secret key instead of generating one
    /// (e.g. `gpg --export-secret-keys --armor KEYID > key.asc`).
    #[arg(long, value_name = "FILE")]
    import_key: Option<PathBuf>,
}

pub fn run(root: &Path, args: InitArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::new_default();
    let repo = &mut config.repository;
    repo.dists = super::split_list(&args.dists);
    repo.components = super::split_list(&args.components);
    repo.architectures = super::split_list(&args.architectures);
    repo.label = args.label.unwrap_or_else(|| args.origin.clone());
    repo.origin = args.origin;
    let key = match args.import_key {
        Some(path) => KeySource::Import(path),
        None => {
            if args.key_type == KeyType::Ed25519 {
                tracing::warn!(
                    "an Ed25519 key cannot be verified by precise/trusty clients (gpgv 1.4); use rsa4096 if any remain"
                );
            }
            eprintln!("generating a {} signing key...", args.key_type);
            KeySource::Generate(args.key_type)
        }
    };
    let repository = Repository::init(root, crate::repo::InitOptions { config, key })?;
    let signer = repository.signer()?;
    println!("initialised repository at {}", root.display());
    for fingerprint in signer.keys().iter().map(|k| k.fingerprint()) {
        println!("signing key: {fingerprint}");
    }
    println!(
        "public key:  {}",
        repository.public_dir().join("key.asc").display()
    );
    println!(
        "serve it:    repoctl --root {} serve --listen 127.0.0.1:8080",
        root.display()
    );
    Ok(ExitCode::SUCCESS)
}
