//! The demo app on the memory store.
//!
//! ```text
//! cargo run --example demo
//! ```
//!
//! then open <http://127.0.0.1:3000>. Set `RUST_LOG=session_runtime=debug` to watch the
//! session layer at work.

use session_runtime::{Key, MemoryStore, SessionLayer};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    // A fresh key per run: restarting the demo logs everyone out. A real app loads its key
    // from its secret store with `Key::from_bytes`.
    let layer = SessionLayer::new(MemoryStore::new(), Key::generate())
        // The demo serves plain HTTP on loopback; over HTTPS keep the default `Secure`.
        .with_secure(false);
    let app = session_suite::demo::routes().layer(layer);

    let addr = std::env::var("DEMO_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!("demo listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
