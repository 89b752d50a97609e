//! The demo app, on the memory store or, when `REDIS_URL` is set, on Redis.
//!
//! ```text
//! cargo run --example demo
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example demo
//! ```
//!
//! then open <http://127.0.0.1:3000>. Set `RUST_LOG=session_runtime=debug` to watch the
//! session layer at work, and `DEMO_ADDR` to listen elsewhere.

use session_runtime::{Key, MemoryStore, RedisStore, SessionLayer, SessionStore};
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
    let key = Key::generate();
    match std::env::var("REDIS_URL") {
        Ok(url) => {
            tracing::info!("sessions in Redis at {url}");
            let store = RedisStore::connect(url.as_str())
                .await?
                .with_key_prefix("demo:session:");
            serve(SessionLayer::new(store, key)).await
        }
        Err(_) => {
            tracing::info!("sessions in memory (set REDIS_URL to use Redis)");
            serve(SessionLayer::new(MemoryStore::new(), key)).await
        }
    }
}

async fn serve<S: SessionStore>(layer: SessionLayer<S>) -> Result<(), Box<dyn std::error::Error>> {
    // The demo serves plain HTTP on loopback; over HTTPS keep the default `Secure`.
    let app = session_suite::demo::routes().layer(layer.with_secure(false));
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
