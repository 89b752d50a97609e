//! The demo app on the cookie store: no server-side state at all.
//!
//! ```text
//! cargo run --example demo_cookie_store
//! ```
//!
//! then open <http://127.0.0.1:3000>. The only difference from `demo` is the store.

use session_runtime::{CookieStore, Key, SessionLayer};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    // One secret for both signing and encryption: each use derives its own subkey.
    let key = Key::generate();
    let layer = SessionLayer::new(CookieStore::new(&key), key)
        // The demo serves plain HTTP on loopback; over HTTPS keep the default `Secure`.
        .with_secure(false);
    let app = session_suite::demo::routes().layer(layer);

    let addr = std::env::var("DEMO_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(
        "demo (cookie store) listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
