//! Graceful shutdown: SIGINT or SIGTERM cancels one token that every task watches.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGINT or SIGTERM.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received, draining");
        cancel.cancel();
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot watch SIGTERM; only SIGINT stops the service");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs `drain` but gives up after `grace`, logging what happened.
pub async fn bounded(grace: Duration, drain: impl Future<Output = ()>) {
    if tokio::time::timeout(grace, drain).await.is_err() {
        tracing::warn!(grace_secs = grace.as_secs(), "shutdown did not finish in time; stopping anyway");
    }
}

/// Logs a finished background task's error with its cause chain.
pub fn report_exit<E: std::error::Error>(task: &str, result: Result<(), E>) {
    if let Err(err) = result {
        tracing::error!(task, error = %crate::error::chain(&err), "background task failed");
    }
}

/// Runs a service until SIGINT/SIGTERM, then gives its drain at most `grace`.
pub async fn run_until_signal<F>(grace: Duration, run: impl FnOnce(CancellationToken) -> F) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let token = on_signal();
    let handle = tokio::spawn(run(token.clone()));
    token.cancelled().await;
    let mut result = Ok(());
    bounded(grace, async {
        result = handle.await.map_err(anyhow::Error::from).and_then(|r| r);
    })
    .await;
    result
}
