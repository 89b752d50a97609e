//! Connections the store keeps between calls, so that sqlx's pool adds no round trip.
//!
//! sqlx's pool pings a connection each time one is handed back (and, unless
//! `test_before_acquire(false)`, each time one is handed out): a round trip per statement on
//! top of the statement's own. The store instead keeps the connections it used, checked out,
//! and reuses them; the pool still bounds their number and opens them. When every kept
//! connection is in use and the pool has none to open, a call waits both for the pool and
//! for a store call to finish: a finished call hands its connection straight to the store
//! call that has waited longest, so a store that is busier than its pool still pays no ping.
//! At most once per [`RETURN_EVERY`] a connection that could be handed on goes back through
//! the pool instead, so that other users of a shared pool, waiting in its queue, are served
//! while the store is saturated.
//! Connections the store has not needed for a second go back to the pool (a background task
//! returns them), so an app that shares the pool with the store is not starved when the
//! store is idle, and `Pool::close` is not held up. A connection the store has held for the
//! pool's `max_lifetime` goes back to it (which closes it) instead of being kept or handed
//! on. A connection that failed is never kept nor handed on, and one failure to reach the
//! server drops every kept connection (after a restart they are all dead).

use std::{
    collections::VecDeque,
    future::Future,
    ops::{Deref, DerefMut},
    pin::{pin, Pin},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard, Weak,
    },
    task::Poll,
    time::{Duration, Instant},
};

use sqlx::{pool::PoolConnection, Database, Pool};
use tokio::sync::oneshot;

/// How long a kept connection may sit unused before it goes back to the pool.
const IDLE: Duration = Duration::from_secs(1);

/// While store calls wait for connections, a finished call hands its connection back
/// through the pool (paying its ping) instead of to the next of them once per this much
/// time: the pool gives it to whoever has waited longest in its own queue, a store call or
/// another user of the pool. Under a saturating load of thousands of statements a second,
/// that is one statement in a hundred or fewer; another user of the pool waits about this
/// long once the store calls queued before it are served.
pub(super) const RETURN_EVERY: Duration = Duration::from_millis(10);

/// The pool and the connections kept from it.
pub(super) struct Conns<DB: Database> {
    pool: Pool<DB>,
    state: Mutex<State<DB>>,
    keep: usize,
    /// Whether the task that hands unused connections back runs (started at first use, so
    /// that building a store needs no runtime).
    tending: AtomicBool,
}

/// What [`Conns`] guards with its lock.
struct State<DB: Database> {
    /// Unused connections, last used last; at most `keep`.
    idle: Vec<(Conn<DB>, Instant)>,
    /// Store calls waiting for a connection, longest-waiting first. A sender whose call
    /// stopped waiting (the pool served it first, or it was cancelled) is closed; such
    /// senders are skipped and pruned.
    waiting: VecDeque<oneshot::Sender<Conn<DB>>>,
    /// When a finished call last sent its connection back through the pool while store
    /// calls waited.
    returned_at: Instant,
}

impl<DB: Database> std::fmt::Debug for Conns<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Conns")
            .field("pool_size", &self.pool.size())
            .field("kept", &state.idle.len())
            .field("waiting", &state.waiting.len())
            .field("keep", &self.keep)
            .finish()
    }
}

impl<DB: Database> Drop for Conns<DB> {
    fn drop(&mut self) {
        let kept = std::mem::take(&mut self.lock().idle);
        if tokio::runtime::Handle::try_current().is_ok() {
            // Back to the pool, through its usual return path (which needs a runtime).
            drop(kept);
        } else {
            // The store dropped outside a runtime (after `block_on` returned, say): close
            // the connections here, telling the pool they are gone.
            for (conn, _) in kept {
                drop(conn.conn.detach());
            }
        }
    }
}

/// A connection checked out for one store call: handed back with [`Conns::put`] after a
/// call that succeeded; dropped (back to the pool, which checks it) otherwise. It derefs to
/// the driver's connection, which runs the statements.
pub(super) struct Conn<DB: Database> {
    conn: PoolConnection<DB>,
    /// When the store took it from the pool (its age is at least that long).
    since: Instant,
}

impl<DB: Database> Conn<DB> {
    fn from_pool(conn: PoolConnection<DB>) -> Self {
        Self {
            conn,
            since: Instant::now(),
        }
    }

    /// Closes the connection when it drops, instead of handing it back to the pool (after a
    /// statement failed part-way through a transaction).
    pub(super) fn close_on_drop(&mut self) {
        self.conn.close_on_drop();
    }
}

impl<DB: Database> Deref for Conn<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        &self.conn
    }
}

impl<DB: Database> DerefMut for Conn<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }
}

impl<DB: Database> Conns<DB> {
    /// Keeps up to `keep` of `pool`'s connections between calls (0: none, every call goes
    /// through the pool and no connection is handed from call to call).
    pub(super) fn new(pool: Pool<DB>, keep: usize) -> Arc<Self> {
        Arc::new(Self {
            pool,
            state: Mutex::new(State {
                idle: Vec::new(),
                waiting: VecDeque::new(),
                returned_at: Instant::now(),
            }),
            keep,
            tending: AtomicBool::new(false),
        })
    }

    /// The pool.
    pub(super) fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    fn lock(&self) -> MutexGuard<'_, State<DB>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A connection: a kept one, one a finished store call hands over, or one from the
    /// pool, whichever comes first. `fresh` skips the kept and handed-over ones (a retry
    /// after a dead connection).
    pub(super) async fn get(self: &Arc<Self>, fresh: bool) -> Result<Conn<DB>, sqlx::Error> {
        if fresh {
            self.drop_kept();
        }
        if fresh || self.keep == 0 {
            return self.acquire().await;
        }
        self.tend();
        let handed = {
            let mut state = self.lock();
            if let Some((conn, _)) = state.idle.pop() {
                return Ok(conn);
            }
            // With room in the pool, the pool may open a connection for this call: wait for
            // the pool alone. Raced with a hand-off, a connection being opened would be
            // dropped half open whenever the hand-off came first, and the pool, below its
            // size again, would open the next one for the next call, and so on.
            (self.pool.size() >= self.pool.options().get_max_connections()).then(|| {
                let (tx, rx) = oneshot::channel();
                state.waiting.retain(|waiting| !waiting.is_closed());
                state.waiting.push_back(tx);
                rx
            })
        };
        let Some(mut handed) = handed else {
            return self.acquire().await;
        };
        let mut acquire = pin!(self.acquire());
        // Whether a hand-off can still come (a receiver must not be polled once it answered).
        let mut open = true;
        let won = std::future::poll_fn(|cx| {
            if open {
                match Pin::new(&mut handed).poll(cx) {
                    Poll::Ready(Ok(conn)) => return Poll::Ready(Ok(conn)),
                    // Its sender dropped unsent (the store is going away): the pool only.
                    Poll::Ready(Err(_)) => open = false,
                    Poll::Pending => {}
                }
            }
            acquire.as_mut().poll(cx)
        })
        .await;
        // Whatever a finished call sent after the pool answered is not lost: it goes to the
        // next waiting call, or is kept.
        handed.close();
        if let Ok(extra) = handed.try_recv() {
            self.put(extra);
        }
        won
    }

    /// A connection from the pool.
    async fn acquire(&self) -> Result<Conn<DB>, sqlx::Error> {
        self.pool.acquire().await.map(Conn::from_pool)
    }

    /// Hands `conn` to the store call that has waited longest for one, or keeps it for the
    /// next call, after a call that succeeded on it.
    pub(super) fn put(&self, mut conn: Conn<DB>) {
        if self.pool.is_closed() || self.keep == 0 {
            return;
        }
        if let Some(lifetime) = self.pool.options().get_max_lifetime() {
            if conn.since.elapsed() >= lifetime {
                // Back to the pool, which closes a connection past its lifetime.
                return;
            }
        }
        let mut state = self.lock();
        if !state.waiting.is_empty() {
            let now = Instant::now();
            if now.duration_since(state.returned_at) >= RETURN_EVERY {
                state.returned_at = now;
                // Dropped after the lock: back to the pool, to its longest waiter.
                return;
            }
            while let Some(waiting) = state.waiting.pop_front() {
                match waiting.send(conn) {
                    Ok(()) => return,
                    // That call stopped waiting: try the next one.
                    Err(back) => conn = back,
                }
            }
        }
        if state.idle.len() < self.keep {
            state.idle.push((conn, Instant::now()));
        }
        // Otherwise `conn` drops after the lock: back to the pool.
    }

    /// Hands every kept connection back to the pool.
    fn drop_kept(&self) {
        let kept = std::mem::take(&mut self.lock().idle);
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
                    let idle = &mut conns.lock().idle;
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
