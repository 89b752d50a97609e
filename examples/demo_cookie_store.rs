//! The demo app on the cookie store: no server-side state at all.
//!
//! ```text
//! cargo run --example demo_cookie_store
//! ```
//!
//! then open <http://127.0.0.1:3000>. The differences from `demo`: the store, and no "your
//! sessions" page (a cookie store cannot list or revoke sessions: there are none on the
//! server).

use session_runtime::{CookieStore, Key, SessionLayer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One secret for both signing and encryption: each use derives its own subkey.
    let key = Key::generate();
    session_suite::demo::serve_routes(
        session_suite::demo::routes_without_index(),
        SessionLayer::new(session_suite::demo::Watched(CookieStore::new(&key)), key),
        "the cookie itself (CookieStore: nothing on the server)",
    )
    .await
}
