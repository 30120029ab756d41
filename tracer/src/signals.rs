//! Ctrl-C and SIGTERM end a run the same way.
use anyhow::Result;
use tokio::signal::unix::{signal, SignalKind};

/// Resolves on the first SIGINT or SIGTERM; returns the signal number.
pub async fn wait() -> Result<i32> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = int.recv() => Ok(libc::SIGINT),
        _ = term.recv() => Ok(libc::SIGTERM),
    }
}
