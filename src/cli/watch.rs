//! `repoctl watch`: take .debs dropped into incoming/ (scp, sftp, rsync).

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Args;

/// Watch incoming/<dist>/<component>/ and add every complete .deb dropped there.
///
/// `repoctl serve` does the same; run `watch` alone when uploads come only
/// through scp or sftp. A file is taken once nobody writes it any more, added
/// and published, then deleted from incoming/. A file that is not a valid
/// .deb (or a symlink, a hard link, or in an unknown dist/component) moves to
/// incoming/rejected/ with <file>.reason beside it. Names that writers rename
/// at the end (.part, .tmp, .filepart, hidden files) wait for the rename.
/// Timing: [incoming] rescan_ms and settle_ms in repoctl.toml. Runs until
/// SIGTERM or Ctrl-C; a pass in progress finishes first.
///
/// Example:
///   scp vrmd-whois_42_all.deb upload@repo:incoming/trusty/dev/
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Take what is there once, then exit (for cron or a one-off import).
    #[arg(long)]
    once: bool,
}

pub fn run(root: &Path, args: WatchArgs) -> anyhow::Result<ExitCode> {
    let mut watcher = crate::incoming::Watcher::open(root)?;
    if args.once {
        let pass = watcher.pass()?;
        eprintln!(
            "{} added, {} rejected, {} still being written",
            pass.added, pass.rejected, pass.waiting
        );
        return Ok(ExitCode::SUCCESS);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = Arc::clone(&stop);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.spawn(async move {
        crate::server::shutdown_signal().await;
        on_signal.store(true, Ordering::SeqCst);
    });
    eprintln!("watching {}", root.join("incoming").display());
    let result = std::thread::scope(|scope| {
        let worker = scope.spawn(|| watcher.run(&stop));
        // Keep the runtime's signal task alive while the watcher runs.
        runtime.block_on(async {
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
        worker.join()
    });
    match result {
        Ok(outcome) => outcome?,
        Err(_) => anyhow::bail!("the watcher panicked"),
    }
    Ok(ExitCode::SUCCESS)
}
