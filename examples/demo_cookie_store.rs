//! The demo app on the cookie store: no server-side state at all.
//!
//! ```text
//! cargo run --example demo_cookie_store
//! ```
//!
//! then open <http://127.0.0.1:3000>. The only difference from `demo` is the store.

use session_runtime::{CookieStore, Key, SessionLayer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One secret for both signing and encryption: each use derives its own subkey.
    let key = Key::generate();
    session_suite::demo::serve(SessionLayer::new(CookieStore::new(&key), key)).await
}
