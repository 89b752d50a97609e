//! The demo app, on the memory store, or on Redis, PostgreSQL, MariaDB/MySQL or SQLite when
//! `REDIS_URL` or `DATABASE_URL` says so.
//!
//! ```text
//! cargo run --example demo
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example demo
//! REDIS_URL=redis://127.0.0.1:6379 REDIS_LAYOUT=log cargo run --example demo
//! DATABASE_URL=postgres://root@127.0.0.1:5432/test cargo run --example demo
//! DATABASE_URL=mysql://root@127.0.0.1:3306/test cargo run --example demo
//! DATABASE_URL=sqlite:demo-sessions.db cargo run --example demo
//! ```
//!
//! then open <http://127.0.0.1:3000>. Set `RUST_LOG=session_runtime=debug` to watch the
//! session layer at work, and `DEMO_ADDR` to listen elsewhere. On a database the demo
//! creates its tables (`demo_session_records`, `demo_session_fields`) if they are missing,
//! and deletes expired sessions every five minutes.

use session_runtime::{Key, MemoryStore, RedisLayout, RedisStore, SessionLayer};
use session_suite::demo::{database_layer, serve, Watched};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A fresh key per run: restarting the demo logs everyone out. A real app loads its key
    // from its secret store with `Key::from_bytes`.
    let key = Key::generate();
    if let Ok(url) = std::env::var("DATABASE_URL") {
        let (layer, _cleanup, about) = database_layer(&url, key, "demo_").await?;
        println!("{about}");
        return serve(layer, about).await;
    }
    match std::env::var("REDIS_URL") {
        Ok(url) => {
            // Each layout under its own prefix: a store reads only the layout it writes.
            let (layout, prefix) = match std::env::var("REDIS_LAYOUT").as_deref() {
                Ok("log") => (RedisLayout::Log, "demo:session-log:"),
                Ok("hash") | Err(_) => (RedisLayout::Hash, "demo:session:"),
                Ok(other) => return Err(format!("REDIS_LAYOUT={other}: use hash or log").into()),
            };
            let store = RedisStore::connect(url.as_str())
                .await?
                .with_key_prefix(prefix)
                .with_layout(layout);
            let about = format!("Redis at {url} ({layout:?} layout)");
            println!("sessions in {about}");
            serve(SessionLayer::new(Watched(store), key), about).await
        }
        Err(_) => {
            println!("sessions in memory (set REDIS_URL or DATABASE_URL to use a database)");
            serve(
                SessionLayer::new(Watched(MemoryStore::new()), key),
                "memory",
            )
            .await
        }
    }
}
