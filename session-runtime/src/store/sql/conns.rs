//! Connections the store keeps between calls, so that sqlx's pool adds no round trip.
//!
//! sqlx's pool pings a connection each time one is handed back (and, unless
//! `test_before_acquire(false)`, each time one is handed out): a round trip per statement on
//! top of the statement's own. The store instead keeps the connections it used, checked out,
//! and reuses them; the pool still bounds their number and opens them. Connections the store
//! has not needed for a second go back to the pool (a background task returns them), so an
//! app that shares the pool with the store is not starved, and `Pool::close` is not held up.
//! A connection that failed is never kept, and one failure to reach the server drops every
//! kept connection (after a restart they are all dead).

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, Weak,
    },
    time::{Duration, Instant},
};

use sqlx::{pool::PoolConnection, Database, Pool};

/// How long a kept connection may sit unused before it goes back to the pool.
const IDLE: Duration = Duration::from_secs(1);

/// The pool and the connections kept from it.
pub(super) struct Conns<DB: Database> {
    pool: Pool<DB>,
    /// Unused connections, last used last; at most `keep`.
    idle: Mutex<Vec<(PoolConnection<DB>, Instant)>>,
    keep: usize,
    /// Whether the task that hands unused connections back runs (started at first use, so
    /// that building a store needs no runtime).
    tending: AtomicBool,
    /// Calls waiting for the pool: while there are any, a finished call hands its connection
    /// back to the pool (to them) instead of keeping it.
    waiting: AtomicUsize,
}

/// Counts a call waiting for the pool, for as long as it waits (cancelled or not).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<DB: Database> std::fmt::Debug for Conns<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conns")
            .field("pool_size", &self.pool.size())
            .field("kept", &self.lock().len())
            .field("keep", &self.keep)
            .finish()
    }
}

impl<DB: Database> Drop for Conns<DB> {
    fn drop(&mut self) {
        let kept = std::mem::take(&mut *self.lock());
        if tokio::runtime::Handle::try_current().is_ok() {
            // Back to the pool, through its usual return path (which needs a runtime).
            drop(kept);
        } else {
            // The store dropped outside a runtime (after `block_on` returned, say): close
            // the connections here, telling the pool they are gone.
            for (conn, _) in kept {
                drop(conn.detach());
            }
        }
    }
}

/// A connection checked out for one store call: handed back with [`Conns::put`] after a
/// call that succeeded; dropped (back to the pool, which checks it) otherwise.
pub(super) type Conn<DB> = PoolConnection<DB>;

impl<DB: Database> Conns<DB> {
    /// Keeps up to `keep` of `pool`'s connections between calls (0: none, every call goes
    /// through the pool).
    pub(super) fn new(pool: Pool<DB>, keep: usize) -> Arc<Self> {
        Arc::new(Self {
            pool,
            idle: Mutex::new(Vec::new()),
            keep,
            tending: AtomicBool::new(false),
            waiting: AtomicUsize::new(0),
        })
    }

    /// The pool.
    pub(super) fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(PoolConnection<DB>, Instant)>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A connection: a kept one, or one from the pool. `fresh` skips the kept ones (a retry
    /// after a dead connection).
    pub(super) async fn get(self: &Arc<Self>, fresh: bool) -> Result<Conn<DB>, sqlx::Error> {
        if fresh {
            self.drop_kept();
        } else if self.keep > 0 {
            self.tend();
            if let Some((conn, _)) = self.lock().pop() {
                return Ok(conn);
            }
        }
        let _waiting = Waiting::new(&self.waiting);
        self.pool.acquire().await
    }

    /// Keeps `conn` for the next call, after a call that succeeded on it.
    pub(super) fn put(&self, conn: Conn<DB>) {
        if self.pool.is_closed() || self.waiting.load(Ordering::Acquire) > 0 {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < self.keep {
            idle.push((conn, Instant::now()));
        }
        // Otherwise `conn` drops after the lock: back to the pool.
    }

    /// Hands every kept connection back to the pool.
    fn drop_kept(&self) {
        let kept = std::mem::take(&mut *self.lock());
        drop(kept);
    }

    /// Starts, once, the task that hands unused connections back: every second, and at
    /// once when the pool is closed. It ends with the store.
    fn tend(self: &Arc<Self>) {
        // A load first: after the first call this is a read, not a write, on every call.
        if self.tending.load(Ordering::Relaxed) || self.tending.swap(true, Ordering::Relaxed) {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        let closed = self.pool.close_event();
        tokio::spawn(async move {
            let mut closed = std::pin::pin!(closed);
            loop {
                if tokio::time::timeout(IDLE, &mut closed).await.is_ok() {
                    if let Some(conns) = weak.upgrade() {
                        conns.drop_kept();
                    }
                    return;
                }
                let Some(conns) = weak.upgrade() else { return };
                let stale: Vec<_> = {
                    let mut idle = conns.lock();
                    let now = Instant::now();
                    // Oldest first: the connections unused the longest sit at the front.
                    let fresh_from = idle
                        .iter()
                        .position(|(_, used)| now.duration_since(*used) < IDLE)
                        .unwrap_or(idle.len());
                    idle.drain(..fresh_from).collect()
                };
                drop(stale);
            }
        });
    }
}
