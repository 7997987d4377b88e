//! `palisade serve`: the HTTP server, until SIGINT or SIGTERM.

use anyhow::Context;
use palisade_core::Config;
use palisade_server::AppState;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let state = AppState::open(config.clone()).await.context("palisade could not start")?;
    let listener = tokio::net::TcpListener::bind(&config.listen).await.with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    eprintln!(
        "palisade listening on http://{addr}/ (database {}, files in {})",
        config.database.display_url(&config.data_dir),
        state.blobs.location()
    );
    palisade_server::serve(state, listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
