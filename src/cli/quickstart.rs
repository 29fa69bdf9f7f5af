//! `repoctl quickstart`: a repository with a generated key, served on
//! 127.0.0.1, and the lines a newcomer needs to use it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::config::Config;
use crate::repo::{KeySource, Repository};
use crate::signing::KeyType;

/// Create (or reuse) ./repoctl-quickstart, serve it and print how to use it.
#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Where the repository lives.
    #[arg(long, default_value = "repoctl-quickstart")]
    dir: PathBuf,
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

pub fn run(args: QuickstartArgs) -> anyhow::Result<ExitCode> {
    let root = args.dir;
    let repo = if root.join(crate::config::FILE_NAME).exists() {
        eprintln!("reusing the repository in {}", root.display());
        Repository::open(&root)?
    } else {
        eprintln!(
            "creating a repository in {} (generating an RSA-4096 signing key takes a few seconds)...",
            root.display()
        );
        Repository::init(
            &root,
            crate::repo::InitOptions {
                config: Config::new_default(),
                key: KeySource::Generate(KeyType::Rsa4096),
            },
        )?
    };
    let listener = super::serve::bind(args.listen)?;
    let repo_cfg = &repo.config().repository;
    let url = format!("http://{}/", listener.local_addr()?);
    let dist = repo_cfg.dists.last().cloned().unwrap_or_default();
    let components = repo_cfg.components.join(" ");
    let root_shown = root.display();
    println!(
        "Repository: {root_shown} (dists {}, components {components})",
        repo_cfg.dists.join(", ")
    );
    println!();
    println!("On a client, install the key and the source:");
    println!("  sudo mkdir -p /etc/apt/keyrings");
    println!(
        "  curl -fsSL {url}key.asc | sudo tee /etc/apt/keyrings/repoctl-quickstart.asc >/dev/null"
    );
    println!("  echo 'deb [signed-by=/etc/apt/keyrings/repoctl-quickstart.asc] {url} {dist} {components}' | sudo tee /etc/apt/sources.list.d/repoctl-quickstart.list");
    println!("  sudo apt-get update");
    println!();
    println!("Upload a package (it is published before the command returns):");
    println!(
        "  repoctl --root {root_shown} add --dist {dist} --component dev vrmd-whois_42_all.deb"
    );
    println!("Or over HTTP, with a token:");
    println!("  TOKEN=$(repoctl --root {root_shown} token create $USER --upload {dist}/dev)");
    println!("  curl -fsS -H \"Authorization: Bearer $TOKEN\" -T vrmd-whois_42_all.deb '{url}api/v1/dists/{dist}/components/dev/packages?wait=published'");
    println!();
    drop(repo);
    super::serve::serve_blocking(root, listener)
}
