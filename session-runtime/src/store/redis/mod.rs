//! `RedisStore`: one Redis hash per session, written field by field with Lua scripts, or, in
//! the log layout, one list per session that writes append their changed entries to.
//!
//! `conn` reaches Redis (one server, a cluster, or through Sentinels), `layout` is what the
//! two layouts (`hash`, `log`) must answer, and `cluster` is regenerate across slots.

mod cluster;
mod conn;
mod hash;
mod health;
mod index;
mod layout;
mod log;
mod sentinel;
mod term_free;

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
    sentinel::SentinelNodeConnectionInfo,
    IntoConnectionInfo, Value,
};

use self::{
    conn::{backend, connection_infos, is_tls, tls_ready, Conn},
    hash::HashLayout,
    health::{Admission, Health, Probe, Unreachable},
    layout::{outcome, Append, Command, Layout, PlainCreate, Write},
    log::LogLayout,
    sentinel::SentinelConn,
    term_free::TermFree,
};
use super::{FieldKey, FieldMap, LoadKeys, Patch, Record, SessionStore, StoreError, WriteResult};
use crate::{chain::Chain, SessionId};

/// How long a store call waits for Redis before failing.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting waits before failing.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);

/// Sessions in Redis: one hash per session (`<prefix>{<id>}`), one hash field per session
/// field. Behind the `redis` cargo feature.
///
/// - **Load** is one `HGETALL`: a read sends a few dozen bytes whatever the session's size.
/// - **Save** is one round trip: a Lua script (loaded once, invoked by SHA, reloaded after a
///   `NOSCRIPT`) that refuses when the session no longer exists, `HDEL`s the removed fields,
///   `HSET`s the changed ones and sets the TTL, atomically. Only the changed fields travel.
/// - **Create** refuses an ID that is taken; **touch** refreshes the TTL without rewriting
///   fields; **delete** is a script that also takes the session out of the session index.
/// - **The session index** (`#[session(index)]` fields): one sorted set per indexed value,
///   `<prefix>ix:…`, scored by expiry, kept by the write scripts themselves on one server or
///   through Sentinel, and as a checked superset around them on a cluster; a session's own
///   terms are mirrored beside it in `<prefix>{<id>}#ix`. A write that changes no indexed
///   field sends nothing more for it.
/// - **Regenerate** on a single server is one atomic script (`RENAMENX` plus the patch). On a
///   cluster the old and new keys usually live in different slots, so it runs in three
///   steps: the record is renamed aside within its own slot (the old ID is dead from that
///   instant, and late writes to it fail), copied with the patch under the new ID, and the
///   aside copy is deleted. If the copy fails, the record is renamed back. If the process
///   dies between the steps, the record stays aside until its TTL: no live session gets
///   data it should not have.
/// - The connection reconnects by itself after Redis restarts ([`ConnectionManager`], or the
///   cluster client's own reconnection), and the layer answers `503` while it cannot.
///   Through Sentinels ([`RedisStore::connect_sentinel`]) it follows failovers to the new
///   master.
/// - **Fail-fast** (one server): once a call finds Redis down (the connection refused, or
///   no answer within the timeout), calls fail at once, without waiting for a connection,
///   and every 25 ms one call probes Redis first with a `PING` (waiting at most 500 ms);
///   the first probe that is answered ends the outage. So during an outage a request gets
///   its `503` at once (only the probes wait, on a server that does not answer), and a
///   restarted Redis serves again within about 25 ms of the first request after it is
///   back. [`RedisStore::with_outage_probe`] sets both durations.
/// - **A write answered `503` may still have run**: when the connection drops between
///   sending a write and reading its reply, the store cannot tell whether Redis applied it,
///   and says it failed. A write is never sent twice, so a retried request applies its
///   change at most once more, as if the user had sent it again.
///
/// The expiry is kept both as the key's TTL and as a hidden `__exp` hash field (written in the
/// same `HSET` as the changed fields), so a load knows when the session expires without a
/// second command.
///
/// That is the default layout, [`RedisLayout::Hash`]. [`RedisLayout::Log`]
/// ([`RedisStore::with_layout`]) keeps a session as one list that every write appends an
/// item of changed entries to: a save is two plain commands instead of a script, and a load
/// a few items instead of one per field and value, which costs Redis less. Everything above
/// holds for both.
///
/// ```no_run
/// # async fn example() -> Result<(), session_runtime::StoreError> {
/// use session_runtime::{Key, RedisStore, SessionLayer};
///
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?.with_key_prefix("myapp:session:");
/// let layer = SessionLayer::new(store, Key::generate());
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
///
/// **TLS** (cargo feature `redis-tls`): a `rediss://` URL connects over TLS and checks the
/// server's certificate against the system's trust store; a server whose certificate does not
/// verify is refused. For a private authority or a client certificate (mutual TLS), build the
/// client with the `redis` crate and hand it to [`RedisStore::from_client`]:
///
/// ```no_run
/// # #[cfg(feature = "redis-tls")]
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use redis::{ClientTlsConfig, TlsCertificates};
/// use session_runtime::RedisStore;
///
/// let certificates = TlsCertificates {
///     // Only if the server asks for client certificates (`tls-auth-clients yes`).
///     client_tls: Some(ClientTlsConfig {
///         client_cert: std::fs::read("client.crt")?,
///         client_key: std::fs::read("client.key")?,
///     }),
///     // The authority that signed the server's certificate, instead of the system's.
///     root_cert: Some(std::fs::read("ca.crt")?),
/// };
/// let client = redis::Client::build_with_tls("rediss://redis.internal:6380", certificates)?;
/// let store = RedisStore::from_client(client).await?;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
///
/// TLS uses rustls, which needs a process-wide crypto provider. An application that installs
/// its own (`CryptoProvider::install_default`) should do so before connecting; otherwise the
/// store installs ring's when it first connects over TLS (or through Sentinels, whose
/// master may be reached over TLS).
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    prefix: Arc<str>,
    layout: RedisLayout,
    /// When Redis last answered and whether it is known to be down, shared by clones.
    health: Arc<Health>,
    /// How calls probe Redis while it is down (see [`RedisStore::with_outage_probe`]).
    probe: Probe,
    /// The most bytes one session may hold; 0 for no limit.
    max_session_bytes: usize,
    /// The sessions just loaded without index terms, shared by clones.
    term_free: Arc<TermFree>,
}

/// How [`RedisStore`] lays a session out in Redis; chosen with [`RedisStore::with_layout`].
///
/// Both layouts write only what a request changed, in one atomic round trip, and keep
/// concurrent writes to different fields. They differ in how a session is read:
///
/// | | [`Hash`](Self::Hash) (default) | [`Log`](Self::Log) |
/// |---|---|---|
/// | a session is | a hash, one field per session field | a list, a log of writes |
/// | a load is | `HGETALL`: one reply item per field and value | `LRANGE`: one reply item per write since the last compaction |
/// | a save | a Lua script that `HSET`s and `HDEL`s the changed fields | `RPUSHX` of the changed entries and `PEXPIRE`, no script |
/// | readable with `redis-cli` | field by field (`HGET`) | as opaque items |
/// | extra cost | none | an occasional compaction (below) |
///
/// [`Log`](Self::Log) costs Redis less per request: its common save is two plain commands,
/// where the hash layout runs a script (Redis's Lua engine costs several times what the
/// commands do), and a load of a large session is a few items, not one per field and value.
/// [`Hash`](Self::Hash) keeps each field readable in `redis-cli`. `BENCHMARKS.md` has the
/// figures.
///
/// The two are not compatible: a store reads only the layout it writes. A session written
/// under the other layout is unreadable ([`StoreError::Corrupt`]): with the default
/// [`DecodePolicy::Lenient`](crate::DecodePolicy::Lenient) the visitor starts a new session,
/// as after a key rotation. Switch layouts together with the key prefix
/// ([`RedisStore::with_key_prefix`]) to keep the two apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisLayout {
    /// One hash per session (`<prefix>{<id>}`), one hash field per session field, plus the
    /// hidden `__exp` field holding the expiry.
    #[default]
    Hash,
    /// One list per session (`<prefix>{<id>}`): a short header item, then one item per
    /// write, holding the entries it changed (a set entry carries a field's name and value,
    /// a remove entry its name, and every write appends an expiry entry). A reader keeps
    /// each name's last entry, and the last expiry.
    ///
    /// A save of a session the store has just loaded without index terms (as the layer
    /// always does) is `RPUSHX` and `PEXPIRE` in one round trip: `RPUSHX` appends only to a
    /// list that exists, so a late save never resurrects an ended session. A create is
    /// plain commands too (written under a temporary key, then `RENAMENX`, which refuses a
    /// taken ID). Regenerates, writes that change or must keep the session index, and
    /// writes under a size limit run a script, as in the hash layout.
    ///
    /// Replaced entries stay until a load finds that they outweigh the live ones (and
    /// amount to at least 1 KiB): that load writes the session back compacted, in one more
    /// round trip carrying the whole record. Once the items written since the last
    /// compaction pass 20, a load merges just those into one (a round trip carrying only
    /// their live entries). A compaction keeps the items appended since the load read the
    /// log, and stands down if another compaction came first. A session updated over and
    /// over thus costs about one entry's size in compaction per update, whatever its size,
    /// and takes up to about twice its size (plus 1 KiB) in Redis between compactions (the
    /// layer loads a session before any write, so compaction keeps up).
    Log,
}

impl RedisLayout {
    /// The commands and reply parsing of this layout: the one place that tells them apart.
    fn ops(self) -> &'static dyn Layout {
        match self {
            Self::Hash => &HashLayout,
            Self::Log => &LogLayout,
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("layout", &self.layout)
            .field(
                "mode",
                &match self.conn {
                    Conn::Single(_) => "single",
                    Conn::Cluster(_) => "cluster",
                    Conn::Sentinel(_) => "sentinel",
                },
            )
            .finish()
    }
}

impl RedisStore {
    /// The default key prefix.
    pub const DEFAULT_PREFIX: &'static str = "session:";

    /// Connects to a single Redis server, e.g. `redis://127.0.0.1:6379`, or
    /// `rediss://host:6380` over TLS (feature `redis-tls`). The connection reconnects by
    /// itself; calls fail after 2 s without an answer.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use session_runtime::RedisStore;
    ///
    /// let store = RedisStore::connect("redis://:password@10.0.0.5:6379/0").await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: impl AsRef<str>) -> Result<Self, StoreError> {
        let client = redis::Client::open(url.as_ref()).map_err(backend)?;
        Self::from_client(client).await
    }

    /// Uses an existing client for a single server (see [`RedisStore::connect`]), e.g. one
    /// built with `redis::Client::build_with_tls` for a private certificate authority.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use session_runtime::RedisStore;
    ///
    /// let client = redis::Client::open("redis://10.0.0.5:6379")?;
    /// let store = RedisStore::from_client(client).await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn from_client(client: redis::Client) -> Result<Self, StoreError> {
        if is_tls(client.get_connection_info()) {
            tls_ready();
        }
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            // One attempt per reconnection: while Redis is down, the store's probe paces
            // the attempts, and no call waits through a reconnection's back-off.
            .set_number_of_retries(0);
        let manager = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(backend)?;
        Ok(Self::from_connection_manager(manager))
    }

    /// Uses an existing connection manager, with its own timeouts and retry policy.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use session_runtime::RedisStore;
    /// use redis::aio::{ConnectionManager, ConnectionManagerConfig};
    /// use std::time::Duration;
    ///
    /// let config = ConnectionManagerConfig::new().set_response_timeout(Some(Duration::from_millis(500)));
    /// let manager = redis::Client::open("redis://10.0.0.5:6379")?
    ///     .get_connection_manager_with_config(config)
    ///     .await?;
    /// let store = RedisStore::from_connection_manager(manager);
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_connection_manager(manager: ConnectionManager) -> Self {
        Self {
            conn: Conn::Single(manager),
            prefix: Arc::from(Self::DEFAULT_PREFIX),
            health: Arc::default(),
            term_free: Arc::default(),
            probe: Probe::default(),
            max_session_bytes: 0,
            layout: RedisLayout::Hash,
        }
    }

    /// Connects to a Redis Cluster through any of its nodes.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use session_runtime::RedisStore;
    ///
    /// let store = RedisStore::connect_cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]).await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_cluster<T: IntoConnectionInfo>(
        nodes: impl IntoIterator<Item = T>,
    ) -> Result<Self, StoreError> {
        let client = ClusterClient::builder(connection_infos(nodes)?)
            .connection_timeout(CONNECTION_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .build()
            .map_err(backend)?;
        let conn = client.get_async_connection().await.map_err(backend)?;
        Ok(Self::from_cluster_connection(conn))
    }

    /// Uses an existing cluster connection.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use session_runtime::RedisStore;
    ///
    /// let client = redis::cluster::ClusterClient::builder(["redis://10.0.0.1:7000"])
    ///     .read_from_replicas()
    ///     .build()?;
    /// let store = RedisStore::from_cluster_connection(client.get_async_connection().await?);
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_cluster_connection(conn: ClusterConnection) -> Self {
        Self {
            conn: Conn::Cluster(conn),
            prefix: Arc::from(Self::DEFAULT_PREFIX),
            health: Arc::default(),
            term_free: Arc::default(),
            probe: Probe::default(),
            max_session_bytes: 0,
            layout: RedisLayout::Hash,
        }
    }

    /// Connects to the master that Redis Sentinels know as `master`, through any of the
    /// Sentinels (`redis://sentinel-1:26379`, ...), and follows failovers: after an error
    /// that says the master is gone (a closed, refused or timed-out connection, or a
    /// `READONLY` answer from a master demoted to replica), the next call asks the
    /// Sentinels again. The call that met the error fails (answered `503`): it may have run,
    /// so it is not retried. One call at a time asks the Sentinels, and for 100 ms after a
    /// failed attempt calls fail at once, so that a burst of requests during a failover
    /// does not become a burst of connections to the Sentinels.
    ///
    /// Without credentials or TLS for the master itself; for those, see
    /// [`RedisStore::connect_sentinel_with`].
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use session_runtime::RedisStore;
    ///
    /// let sentinels = ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379", "redis://10.0.0.3:26379"];
    /// let store = RedisStore::connect_sentinel(sentinels, "mymaster").await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_sentinel<T: IntoConnectionInfo>(
        sentinels: impl IntoIterator<Item = T>,
        master: &str,
    ) -> Result<Self, StoreError> {
        Self::connect_sentinel_with(sentinels, master, SentinelNodeConnectionInfo::default()).await
    }

    /// [`RedisStore::connect_sentinel`], connecting to the master with `node`: its
    /// credentials, database and TLS mode (`redis::sentinel::SentinelNodeConnectionInfo`).
    /// The Sentinels' own credentials and TLS go in their URLs.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use session_runtime::RedisStore;
    /// use redis::{sentinel::SentinelNodeConnectionInfo, RedisConnectionInfo};
    ///
    /// let master = SentinelNodeConnectionInfo::default().set_redis_connection_info(
    ///     RedisConnectionInfo::default().set_username("sessions").set_password("secret"),
    /// );
    /// let store =
    ///     RedisStore::connect_sentinel_with(["redis://10.0.0.1:26379"], "mymaster", master).await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_sentinel_with<T: IntoConnectionInfo>(
        sentinels: impl IntoIterator<Item = T>,
        master: &str,
        node: SentinelNodeConnectionInfo,
    ) -> Result<Self, StoreError> {
        // The master's TLS mode is inside `node`, which does not tell: ready TLS in any case.
        tls_ready();
        let conn = SentinelConn::connect(connection_infos(sentinels)?, master.to_owned(), node)
            .await
            .map_err(backend)?;
        Ok(Self {
            conn: Conn::Sentinel(conn),
            prefix: Arc::from(Self::DEFAULT_PREFIX),
            health: Arc::default(),
            term_free: Arc::default(),
            probe: Probe::default(),
            max_session_bytes: 0,
            layout: RedisLayout::Hash,
        })
    }

    /// Prefixes every key with `prefix` (default `session:`), so several apps can share one
    /// Redis. Keep `{` out of it on a cluster: Redis hashes a key by its first `{...}`, which
    /// should be the ID's, or every session lands in one slot.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use session_runtime::RedisStore;
    ///
    /// let store = RedisStore::connect("redis://127.0.0.1:6379").await?.with_key_prefix("shop:session:");
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Arc::from(prefix.into());
        self
    }

    /// Bounds one session's size (default: no limit; Redis's own `maxmemory` still bounds
    /// them all): a write that would make a session hold more than `max` bytes is refused
    /// with [`StoreError::Rejected`] (the request answers `500`, the cause is logged) and
    /// writes nothing. In the hash layout the size is the fields' names and values, kept in
    /// a hidden `__bytes` field: each write then costs Redis two more commands per changed
    /// field. In the log layout it is the log's length (every item's, dead entries
    /// included, so up to about twice the session's between compactions), which the write's
    /// script sums item by item: under a limit every log-layout save runs a script that
    /// reads the whole session inside Redis, instead of the plain `RPUSHX` + `PEXPIRE`.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use session_runtime::RedisStore;
    ///
    /// let store = RedisStore::connect("redis://127.0.0.1:6379")
    ///     .await?
    ///     .with_max_session_bytes(256 * 1024);
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_max_session_bytes(mut self, max: usize) -> Self {
        self.max_session_bytes = max;
        self
    }

    /// How calls behave while Redis is down (a single server; default: probe every 25 ms,
    /// each probe waiting at most 500 ms). Once a call finds Redis down (its connection
    /// refused or timed out), calls fail at once with [`StoreError::Backend`] (the layer
    /// answers `503`) instead of each waiting to connect; at most one call every `every`
    /// first sends a `PING`, and if Redis answers within `timeout` the outage is over and
    /// that call proceeds. A shorter `every` recovers sooner after Redis is back, at the
    /// cost of a connection attempt per probe while it is not; `timeout` bounds how long the
    /// probing request waits on a server that accepts connections but does not answer (keep
    /// it above the network's round trip). `Duration::ZERO` for `every` turns fail-fast off:
    /// every call then tries to reach Redis, and waits for its connection timeout (1 s) on a
    /// server that does not answer.
    ///
    /// Clusters and Sentinel-managed stores do not probe: their clients handle failing
    /// nodes themselves (and [`RedisStore::connect_sentinel`] fails fast for 100 ms after a
    /// failed attempt to reach the Sentinels).
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), session_runtime::StoreError> {
    /// use session_runtime::RedisStore;
    /// use std::time::Duration;
    ///
    /// // Redis across a WAN: probe less often, and give a probe longer.
    /// let store = RedisStore::connect("rediss://redis.example.net:6380")
    ///     .await?
    ///     .with_outage_probe(Duration::from_millis(100), Duration::from_secs(1));
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_outage_probe(mut self, every: Duration, timeout: Duration) -> Self {
        self.probe = Probe { every, timeout };
        self
    }

    /// Lays sessions out as `layout` (default [`RedisLayout::Hash`]). A store reads only the
    /// layout it writes: see [`RedisLayout`] before switching an app that has sessions.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use session_runtime::{RedisLayout, RedisStore};
    ///
    /// // Large sessions: one GET per read instead of an HGETALL.
    /// let store = RedisStore::connect("redis://127.0.0.1:6379")
    ///     .await?
    ///     .with_key_prefix("shop:session-log:")
    ///     .with_layout(RedisLayout::Log);
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_layout(mut self, layout: RedisLayout) -> Self {
        self.layout = layout;
        self
    }

    /// The Redis key of a session: `<prefix>{<id>}`. The braces make the ID a hash tag, so
    /// a session's keys (including the one regenerate sets aside) share one cluster slot.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use session_runtime::RedisStore;
    /// use session_runtime::SessionId;
    ///
    /// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
    /// let id = SessionId::from_store("abc");
    /// assert_eq!(store.key(&id), "session:{abc}");
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub fn key(&self, id: &SessionId) -> String {
        let mut key = String::with_capacity(self.prefix.len() + id.as_str().len() + 2);
        key.push_str(&self.prefix);
        key.push('{');
        key.push_str(id.as_str());
        key.push('}');
        key
    }

    fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// The outage policy in effect: probing is for a single server (a cluster's client and
    /// the Sentinel connection handle their nodes' failures themselves).
    fn probe(&self) -> Probe {
        match self.conn {
            Conn::Single(_) => self.probe,
            Conn::Cluster(_) | Conn::Sentinel(_) => Probe {
                every: Duration::ZERO,
                ..self.probe
            },
        }
    }

    /// Notes the outcome of a call that went to Redis.
    fn note<T>(&self, result: &Result<T, redis::RedisError>) {
        match result {
            Ok(_) => self.health.answered(),
            Err(err) => self.health.failed(err, self.probe()),
        }
    }

    /// Before a call: while Redis is known to be down, fails at once, except for one call
    /// every `probe.every`, which first checks Redis with a `PING` bounded by
    /// `probe.timeout`.
    async fn gate(&self) -> Result<(), StoreError> {
        let _guard = match self.health.admit() {
            Admission::Go => return Ok(()),
            Admission::Refuse => return Err(StoreError::backend(Unreachable)),
            Admission::Probe(guard) => guard,
        };
        let ping =
            |mut conn: Conn| async move { redis::cmd("PING").query_async::<()>(&mut conn).await };
        let check = async {
            // The first PING may meet the connection that failed and only start a new one;
            // the second waits for that one.
            match ping(self.conn()).await {
                Err(err) if err.is_connection_dropped() => ping(self.conn()).await,
                result => result,
            }
        };
        let probe = self.probe();
        match tokio::time::timeout(probe.timeout, check).await {
            Ok(Ok(())) => {
                self.health.answered();
                Ok(())
            }
            Ok(Err(err)) => {
                self.health.hold_off(probe.every);
                Err(backend(err))
            }
            Err(_elapsed) => {
                self.health.hold_off(probe.every);
                Err(StoreError::backend(Unreachable))
            }
        }
    }

    /// Runs a command that is safe to run twice (a read, a refresh, a delete), unless Redis
    /// is known to be down ([`RedisStore::gate`]): if the connection turns out to have been
    /// dropped (Redis's idle `timeout`, a proxy, `CLIENT KILL`, a restart), again on a fresh
    /// one (at most twice), so the request does not fail.
    async fn idempotent<T, F, Fut>(&self, run: F) -> Result<T, StoreError>
    where
        F: Fn(Conn) -> Fut,
        Fut: std::future::Future<Output = Result<T, redis::RedisError>>,
    {
        self.gate().await?;
        self.retrying(run).await.map_err(backend)
    }

    /// [`RedisStore::idempotent`] without the gate.
    async fn retrying<T, F, Fut>(&self, run: F) -> Result<T, redis::RedisError>
    where
        F: Fn(Conn) -> Fut,
        Fut: std::future::Future<Output = Result<T, redis::RedisError>>,
    {
        let mut result = run(self.conn()).await;
        // The connection replaces itself after a drop; a command racing that replacement can
        // meet the dead one again, so it gets a second retry, a moment later.
        for pause in [Duration::ZERO, Duration::from_millis(10)] {
            match &result {
                Err(err) if err.is_connection_dropped() && !err.is_connection_refusal() => {
                    tracing::debug!(error = %Chain(err), "the Redis connection was dropped; trying again");
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                    result = run(self.conn()).await;
                }
                _ => break,
            }
        }
        self.note(&result);
        result
    }

    /// Before a write after a pause: a `PING`, retried once, so that a connection Redis (or
    /// a proxy) closed while idle is found dead before the write is sent, never after.
    /// A write is not retried itself: once sent, it may have run.
    async fn checked(&self) -> Result<(), StoreError> {
        if self.health.idle() < IDLE_CHECK {
            return Ok(());
        }
        self.retrying(
            |mut conn| async move { redis::cmd("PING").query_async::<()>(&mut conn).await },
        )
        .await
        .map_err(backend)
    }
}

impl RedisStore {
    /// Whether a write of `patch` to `id` may leave the session index alone: the layout
    /// writes some sessions with plain commands, this store loaded the session moments ago
    /// without index terms, and the patch sets none (a patch that does makes the session
    /// one with terms, as far as this store knows).
    fn term_free(&self, id: &SessionId, patch: &Patch) -> bool {
        if !self.layout.ops().plain_writes() {
            return false;
        }
        if patch.touches_index() {
            self.term_free.forget(id);
            return false;
        }
        self.term_free.is_term_free(id)
    }
}

/// After this long without an answer from Redis, a write checks the connection first.
const IDLE_CHECK: Duration = Duration::from_millis(500);

impl RedisStore {
    /// Sends one write command to `key` and reads its answer, with the index's arguments
    /// (`tail`) and, on a cluster, its set maintenance around it; after a pause, the
    /// connection is checked first.
    async fn run(&self, mut command: Command, key: &str, tail: &index::Tail<'_>) -> WriteResult {
        if let Command::Script(invocation) = &mut command {
            self.push_tail(invocation, key, tail);
        }
        self.gate().await?;
        self.checked().await?;
        self.before_write(tail).await?;
        let sent = send(&command, &mut self.conn()).await;
        self.note(&sent);
        match sent {
            Ok(code) => outcome(self.after_write(tail, key, code).await),
            Err(err) => Err(backend(err)),
        }
    }

    /// Sends a write that is safe to run twice (a refresh), retried on a dropped
    /// connection.
    async fn run_idempotent(
        &self,
        mut command: Command,
        key: &str,
        tail: &index::Tail<'_>,
    ) -> WriteResult {
        if let Command::Script(invocation) = &mut command {
            self.push_tail(invocation, key, tail);
        }
        let code = self
            .idempotent(|mut conn| {
                let command = &command;
                async move { send(command, &mut conn).await }
            })
            .await?;
        outcome(self.after_write(tail, key, code).await)
    }
}

/// The index's arguments of a write of `patch` to `id`.
fn tail<'a>(patch: &'a Patch, id: &'a SessionId) -> index::Tail<'a> {
    index::Tail {
        terms: index::patch_terms(patch),
        expires_at: patch.expires_at,
        id,
    }
}

/// Sends one write command and reads its answer as a write script's code (see
/// [`outcome`]): an [`Append`] answers 0 or 1, a [`PlainCreate`] 1 or -1, a write too
/// large to send -2.
async fn send(command: &Command, conn: &mut Conn) -> redis::RedisResult<i64> {
    match command {
        Command::Script(invocation) => invocation.invoke_async(conn).await,
        Command::Append(Append(pipe)) => {
            let (len,): (i64,) = pipe.query_async(conn).await?;
            Ok(i64::from(len > 0))
        }
        Command::Create(PlainCreate(pipe)) => {
            let (moved,): (i64,) = pipe.query_async(conn).await?;
            Ok(if moved == 1 { 1 } else { -1 })
        }
        Command::TooLarge => Ok(-2),
    }
}

impl SessionStore for RedisStore {
    async fn load(
        &self,
        id: &SessionId,
        _keys: LoadKeys<'_>,
    ) -> Result<Option<Record>, StoreError> {
        // The whole record whatever the keys asked: HMGET would send every field name. The
        // contract allows returning more keys than asked.
        let key = self.key(id);
        let layout = self.layout.ops();
        let command = layout.load(&key);
        let reply: Value = self
            .idempotent(|mut conn| {
                let command = &command;
                async move { command.query_async(&mut conn).await }
            })
            .await?;
        let (record, follow_up) = layout.read(&key, reply)?;
        if let (Some(record), true) = (&record, layout.plain_writes()) {
            let has_terms = record
                .fields
                .keys()
                .any(|key| key.starts_with(crate::meta::INDEX_KEY_PREFIX));
            self.term_free.loaded(id, has_terms);
        }
        if let Some(compaction) = follow_up {
            // The read has what it needs; a failed compaction is left to a later one.
            if let Err(err) = compaction.invoke_async::<i64>(&mut self.conn()).await {
                tracing::warn!(error = %Chain(&err), "could not compact a session log");
            }
        }
        Ok(record)
    }

    async fn create(&self, id: &SessionId, patch: &Patch) -> WriteResult {
        let key = self.key(id);
        let command =
            self.layout
                .ops()
                .write(Write::Create, &[&key], patch, self.max_session_bytes, false);
        self.run(command, &key, &tail(patch, id)).await
    }

    async fn save(&self, id: &SessionId, patch: &Patch) -> WriteResult {
        let key = self.key(id);
        let term_free = self.term_free(id, patch);
        let command = self.layout.ops().write(
            Write::Save,
            &[&key],
            patch,
            self.max_session_bytes,
            term_free,
        );
        self.run(command, &key, &tail(patch, id)).await
    }

    async fn regenerate(&self, old: &SessionId, new: &SessionId, patch: &Patch) -> WriteResult {
        let (old_key, new_key) = (self.key(old), self.key(new));
        if matches!(self.conn, Conn::Cluster(_)) {
            return self
                .regenerate_across_slots(old, new, &old_key, &new_key, patch)
                .await;
        }
        let command = self.layout.ops().write(
            Write::Regenerate,
            &[&old_key, &new_key],
            patch,
            self.max_session_bytes,
            false,
        );
        self.run(command, &new_key, &tail(patch, new)).await
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.delete_with_index(id, None).await.map(|_| ())
    }

    async fn touch(&self, id: &SessionId, expires_at: SystemTime) -> WriteResult {
        let key = self.key(id);
        let refresh = Patch::expiry_only(expires_at);
        self.run_idempotent(
            self.layout
                .ops()
                .touch(&key, expires_at, self.term_free(id, &refresh)),
            &key,
            &tail(&refresh, id),
        )
        .await
    }

    fn supports_index(&self) -> bool {
        true
    }

    async fn find_indexed(
        &self,
        index: &str,
        term: &[u8],
    ) -> Result<Vec<(SessionId, Record)>, StoreError> {
        self.find_with_index(index, term).await
    }

    async fn delete_indexed(
        &self,
        id: &SessionId,
        index: &str,
        term: &[u8],
    ) -> Result<bool, StoreError> {
        self.delete_with_index(id, Some((index, term))).await
    }
}
