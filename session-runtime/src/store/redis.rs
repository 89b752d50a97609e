//! `RedisStore`: one Redis hash per session, written field by field with Lua scripts, or, in
//! the log layout, one string per session that writes append their changed entries to.

use std::{
    borrow::Cow,
    fmt,
    sync::{Arc, LazyLock},
    time::{Duration, SystemTime},
};

use redis::{
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
    sentinel::SentinelNodeConnectionInfo,
    Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisFuture, Script,
    ScriptInvocation, Value,
};

use bytes::Bytes;

mod log;
mod sentinel;
use log::Log;
use sentinel::SentinelConn;

use super::{FieldKey, FieldMap, LoadKeys, Patch, Record, SessionStore, StoreError, WriteResult};
use crate::{chain::Chain, SessionId};

/// The hash field holding the record's expiry (milliseconds since the epoch, Redis's clock),
/// written by the scripts so that a load learns the expiry in the same single command.
const EXPIRES_FIELD: &str = "__exp";

/// Shared Lua: applies a patch from `ARGV` to `key` and sets its expiry.
///
/// `ARGV`: ttl-ms, expires-at-ms, number-of-deletions, deleted fields..., then field, value
/// pairs. The expiry instant goes into the hidden `__exp` field in the same `HSET` as the
/// changed fields; the key's TTL is set relative, so clock skew between the app and Redis
/// does not move it.
const APPLY: &str = r"
local function apply(key)
  local ndel = tonumber(ARGV[3])
  local del_end = 3 + ndel
  for i = 4, del_end, 1000 do
    redis.call('HDEL', key, unpack(ARGV, i, math.min(i + 999, del_end)))
  end
  local first = del_end + 1
  local last = #ARGV
  while last - first >= 999 do
    redis.call('HSET', key, unpack(ARGV, first, first + 999))
    first = first + 1000
  end
  redis.call('HSET', key, '__exp', ARGV[2], unpack(ARGV, first, last))
  redis.call('PEXPIRE', key, ARGV[1])
end
";

/// Save: refuses (0) when the session is gone, so a late save never resurrects it.
static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{APPLY}
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
apply(KEYS[1])
return 1"
    ))
});

/// Create: refuses (-1) when the ID is taken.
static CREATE: LazyLock<Script> = LazyLock::new(|| create_script(APPLY));

/// Regenerate on one server: an atomic move (RENAMENX) plus the patch.
static REGENERATE: LazyLock<Script> = LazyLock::new(|| regenerate_script(APPLY));

/// The create script around a layout's Lua `apply(key)`, which writes `ARGV` to `key`:
/// refuses (-1) when the ID is taken.
fn create_script(apply: &str) -> Script {
    Script::new(&format!(
        "{apply}
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
apply(KEYS[1])
return 1"
    ))
}

/// The single-server regenerate script around a layout's Lua `apply(key)`: moves `KEYS[1]`
/// to `KEYS[2]` (`RENAMENX`) and applies `ARGV` there; 0 when the session is gone, -1 when
/// the new ID is taken.
fn regenerate_script(apply: &str) -> Script {
    Script::new(&format!(
        "{apply}
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('RENAMENX', KEYS[1], KEYS[2]) == 0 then return -1 end
apply(KEYS[2])
return 1"
    ))
}

/// Touch: a new expiry, fields untouched; 0 when the session is gone.
/// `ARGV`: ttl-ms, expires-at-ms.
static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], '__exp', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1",
    )
});

/// Cluster regenerate, step 1: move the record aside within its own slot (the old ID is dead
/// from here on) and return its fields and remaining TTL. Empty when the session is gone.
static STASH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
redis.call('RENAME', KEYS[1], KEYS[2])
return redis.call('HGETALL', KEYS[2])",
    )
});

/// Cluster regenerate, rollback: put a stashed record back under its old ID.
static UNSTASH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('EXISTS', KEYS[2]) == 1 and redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('RENAME', KEYS[2], KEYS[1])
end
return 1",
    )
});

/// Sessions in Redis: one hash per session (`<prefix>{<id>}`), one hash field per session
/// field. Behind the `redis` cargo feature.
///
/// - **Load** is one `HGETALL`: a read sends a few dozen bytes whatever the session's size.
/// - **Save** is one round trip: a Lua script (loaded once, invoked by SHA, reloaded after a
///   `NOSCRIPT`) that refuses when the session no longer exists, `HDEL`s the removed fields,
///   `HSET`s the changed ones and sets the TTL, atomically. Only the changed fields travel.
/// - **Create** refuses an ID that is taken; **touch** refreshes the TTL without rewriting
///   fields; **delete** is `DEL`.
/// - **Regenerate** on a single server is one atomic script (`RENAMENX` plus the patch). On a
///   cluster the old and new keys usually live in different slots, so it runs in three
///   steps: the record is renamed aside within its own slot (the old ID is dead from that
///   instant, and late writes to it fail), copied with the patch under the new ID, and the
///   aside copy is deleted. If the copy fails, the record is renamed back. If the process
///   dies between the steps, the record stays aside until its TTL: no live session gets
///   data it should not have.
/// - The connection reconnects by itself after Redis restarts ([`ConnectionManager`], or the
///   cluster client's own reconnection); while Redis is down, store calls fail fast and the
///   layer answers `503`. Through Sentinels ([`RedisStore::connect_sentinel`]) it follows
///   failovers to the new master.
///
/// The expiry is kept both as the key's TTL and as a hidden `__exp` hash field (written in the
/// same `HSET` as the changed fields), so a load knows when the session expires without a
/// second command.
///
/// That is the default layout, [`RedisLayout::Hash`]. For large sessions,
/// [`RedisLayout::Log`] ([`RedisStore::with_layout`]) keeps a session as one string that
/// every write appends its changed entries to: a load is one `GET`, whose single reply item
/// is cheaper to receive than `HGETALL`'s hundreds. Everything above holds for both.
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
}

/// How [`RedisStore`] lays a session out in Redis; chosen with [`RedisStore::with_layout`].
///
/// Both layouts write only what a request changed, in one atomic round trip, and keep
/// concurrent writes to different fields. They differ in how a session is read:
///
/// | | [`Hash`](Self::Hash) (default) | [`Log`](Self::Log) |
/// |---|---|---|
/// | a session is | a hash, one field per session field | a string, a log of entries |
/// | a load is | `HGETALL`: one reply item per field and value | `GET`: one reply item |
/// | a save | `HSET`s and `HDEL`s the changed fields | appends the changed entries |
/// | readable with `redis-cli` | field by field (`HGET`) | as an opaque string |
/// | extra cost | none | an occasional compaction (below) |
///
/// Choose [`Log`](Self::Log) for large sessions (a hundred fields or more), where parsing
/// `HGETALL`'s reply item by item is most of a read's time, and [`Hash`](Self::Hash)
/// otherwise. `BENCHMARKS.md` has the figures.
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
    /// One string per session (`<prefix>{<id>}`): a short header, then the entries every
    /// write appended (a set entry carries a field's name and value, a remove entry its
    /// name, and every write appends an expiry entry). A reader keeps each name's last
    /// entry, and the last expiry.
    ///
    /// Replaced entries stay until a load finds that they outweigh the live ones (and
    /// amount to at least 1 KiB): that load writes the session back compacted, in one more
    /// round trip carrying the whole record, unless the log changed since it was read, in
    /// which case it leaves it to a later load. A session updated over and over thus costs
    /// about one entry's size in compaction per update, whatever its size, and takes up to
    /// about twice its size (plus 1 KiB) in Redis between compactions (the layer loads a
    /// session before any write, so compaction keeps up). Needs Redis 6.0 or later
    /// (`SET … KEEPTTL`).
    Log,
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

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(SentinelConn),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
            Self::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
            Self::Sentinel(c) => c.get_db(),
        }
    }
}

/// How long a store call waits for Redis before failing.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting waits before failing.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);

/// A Redis error as a store error: `WRONGTYPE` (the session's key holds something other
/// than a hash) is unreadable data, anything else a backend failure.
fn backend(err: redis::RedisError) -> StoreError {
    if err.code() == Some("WRONGTYPE") {
        StoreError::corrupt(err)
    } else {
        StoreError::backend(err)
    }
}

fn is_tls(info: &ConnectionInfo) -> bool {
    matches!(info.addr(), ConnectionAddr::TcpTls { .. })
}

/// The connection details of several servers, TLS readied if any of them needs it.
fn connection_infos<T: IntoConnectionInfo>(
    servers: impl IntoIterator<Item = T>,
) -> Result<Vec<ConnectionInfo>, StoreError> {
    let infos = servers
        .into_iter()
        .map(IntoConnectionInfo::into_connection_info)
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    if infos.iter().any(is_tls) {
        tls_ready();
    }
    Ok(infos)
}

/// Readies TLS for a `rediss://` connection. rustls needs a process-wide crypto provider and
/// panics when it cannot choose one (when crates enable several): unless the application
/// installed one first, ring's is installed. (Without the `redis-tls` feature the `redis`
/// crate refuses `rediss://` URLs itself, unless the application enabled its TLS support.)
fn tls_ready() {
    #[cfg(feature = "redis-tls")]
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: a provider is in place either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
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
    pub async fn connect(url: impl IntoConnectionInfo) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(backend)?;
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
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
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
}

/// The script arguments for a patch: TTL in ms, expiry instant in ms, deletion count,
/// deletions, set pairs.
fn patch_args(invocation: &mut ScriptInvocation<'_>, patch: &Patch) {
    invocation
        .arg(ttl_millis(patch.expires_at))
        .arg(crate::meta::to_millis(patch.expires_at))
        .arg(patch.remove.len());
    for key in &patch.remove {
        invocation.arg(key.as_ref());
    }
    for (key, value) in &patch.set {
        invocation.arg(key.as_ref()).arg(&value[..]);
    }
}

/// Whole milliseconds from now until `at`, rounded down; 0 once `at` has passed, which
/// makes the scripts' `PEXPIRE` delete the key at once: a record written with an expiry
/// in the past must never be read again, not even for the last millisecond.
fn ttl_millis(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::now())
        .map_or(0, crate::meta::duration_millis)
}

fn outcome(code: i64) -> WriteResult {
    match code {
        1 => Ok(None),
        0 => Err(StoreError::NotFound),
        -1 => Err(StoreError::Collision),
        other => Err(StoreError::backend(format!(
            "unexpected answer {other} from a session script"
        ))),
    }
}

/// Reads an `HGETALL` reply (a flat array in RESP2, a map in RESP3) straight into a record,
/// without an intermediate map. `None` for an empty reply: no such session.
fn into_record(reply: Value) -> Result<Option<Record>, StoreError> {
    // RESP2 answers a flat array of name, value, name, value...; RESP3 a map.
    match reply {
        Value::Nil => Ok(None),
        Value::Map(pairs) => record_from(pairs.len(), pairs.into_iter()),
        Value::Array(items) => {
            let capacity = items.len() / 2;
            let mut items = items.into_iter();
            record_from(
                capacity,
                std::iter::from_fn(move || Some((items.next()?, items.next()?))),
            )
        }
        other => Err(StoreError::backend(format!(
            "unexpected HGETALL reply: {other:?}"
        ))),
    }
}

/// A record from a hash's entries; `None` for an empty hash (Redis has no such key).
fn record_from(
    capacity: usize,
    entries: impl Iterator<Item = (Value, Value)>,
) -> Result<Option<Record>, StoreError> {
    let mut fields = FieldMap::with_capacity_and_hasher(capacity, Default::default());
    let mut expires_at = None;
    let mut any = false;
    for (key, value) in entries {
        any = true;
        let (Value::BulkString(key), Value::BulkString(value)) = (key, value) else {
            return Err(StoreError::corrupt(
                "a session hash holds a non-string entry",
            ));
        };
        let key = std::str::from_utf8(&key).map_err(|_| {
            StoreError::corrupt("a session hash has a field name that is not UTF-8")
        })?;
        if key == EXPIRES_FIELD {
            expires_at = crate::meta::parse_u64(&value).and_then(crate::meta::from_millis);
        } else {
            fields.insert(FieldKey::new(key), Bytes::from(value));
        }
    }
    if !any {
        return Ok(None);
    }
    Ok(Some(Record {
        fields: Arc::new(fields),
        expires_at,
        stale: false,
        complete: true,
    }))
}

impl SessionStore for RedisStore {
    async fn load(
        &self,
        id: &SessionId,
        _keys: LoadKeys<'_>,
    ) -> Result<Option<Record>, StoreError> {
        // The whole record whatever the keys asked: HMGET would send every field name. The
        // contract allows returning more keys than asked.
        match self.layout {
            RedisLayout::Hash => {
                let reply: Value = redis::cmd("HGETALL")
                    .arg(self.key(id))
                    .query_async(&mut self.conn())
                    .await
                    .map_err(backend)?;
                into_record(reply)
            }
            RedisLayout::Log => {
                let key = self.key(id);
                let reply: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut self.conn())
                    .await
                    .map_err(backend)?;
                let Some(log) = reply else {
                    return Ok(None);
                };
                let log = Log::parse(log)?;
                if log.wants_compaction() {
                    // The read has what it needs; a failed compaction is left to a later one.
                    if let Err(err) = log.compact(&key, &mut self.conn()).await {
                        tracing::warn!(error = %Chain(&err), "could not compact a session log");
                    }
                }
                Ok(Some(log.into_record()))
            }
        }
    }

    async fn create(&self, id: &SessionId, patch: &Patch) -> WriteResult {
        self.write(Write::Create, &[&self.key(id)], patch).await
    }

    async fn save(&self, id: &SessionId, patch: &Patch) -> WriteResult {
        self.write(Write::Save, &[&self.key(id)], patch).await
    }

    async fn regenerate(&self, old: &SessionId, new: &SessionId, patch: &Patch) -> WriteResult {
        let (old_key, new_key) = (self.key(old), self.key(new));
        if !matches!(self.conn, Conn::Cluster(_)) {
            return self
                .write(Write::Regenerate, &[&old_key, &new_key], patch)
                .await;
        }
        self.regenerate_across_slots(&old_key, &new_key, patch)
            .await
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        redis::cmd("DEL")
            .arg(self.key(id))
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(backend)
    }

    async fn touch(&self, id: &SessionId, expires_at: SystemTime) -> WriteResult {
        if self.layout == RedisLayout::Log {
            // The expiry entry alone, appended.
            return self
                .write(
                    Write::Save,
                    &[&self.key(id)],
                    &Patch::expiry_only(expires_at),
                )
                .await;
        }
        let code: i64 = TOUCH
            .key(self.key(id))
            .arg(ttl_millis(expires_at))
            .arg(crate::meta::to_millis(expires_at))
            .invoke_async(&mut self.conn())
            .await
            .map_err(backend)?;
        outcome(code)
    }
}

/// The three writes that carry a patch.
#[derive(Clone, Copy)]
enum Write {
    Create,
    Save,
    Regenerate,
}

impl RedisStore {
    /// Runs the script of `write` for this store's layout on `keys`: one round trip.
    async fn write(&self, write: Write, keys: &[&str], patch: &Patch) -> WriteResult {
        let ttl = ttl_millis(patch.expires_at);
        if let (RedisLayout::Log, Write::Create, [key]) = (self.layout, write, keys) {
            // A new log is one plain `SET … NX PX`, cheaper for Redis than a script (which
            // is kept for an expiry already past: `PX 0` is refused, and the script's
            // `PEXPIRE 0` ends the record at once).
            if ttl > 0 {
                let created: Option<()> = redis::cmd("SET")
                    .arg(*key)
                    .arg(log::entries(patch, true))
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl)
                    .query_async(&mut self.conn())
                    .await
                    .map_err(backend)?;
                return created.map_or(Err(StoreError::Collision), |()| Ok(None));
            }
        }
        let script: &Script = match (self.layout, write) {
            (RedisLayout::Hash, Write::Create) => &CREATE,
            (RedisLayout::Hash, Write::Save) => &SAVE,
            (RedisLayout::Hash, Write::Regenerate) => &REGENERATE,
            (RedisLayout::Log, Write::Create) => &log::CREATE,
            (RedisLayout::Log, Write::Save) => &log::SAVE,
            (RedisLayout::Log, Write::Regenerate) => &log::REGENERATE,
        };
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        match self.layout {
            RedisLayout::Hash => patch_args(&mut invocation, patch),
            RedisLayout::Log => {
                invocation
                    .arg(ttl)
                    .arg(log::entries(patch, matches!(write, Write::Create)));
            }
        }
        outcome(
            invocation
                .invoke_async(&mut self.conn())
                .await
                .map_err(backend)?,
        )
    }

    /// Step 1 of a cluster regenerate: moves the record under `old_key` to `aside` and
    /// returns its fields (`None`: no such session).
    async fn stash(&self, old_key: &str, aside: &str) -> Result<Option<FieldMap>, StoreError> {
        match self.layout {
            RedisLayout::Hash => {
                let stashed: Value = STASH
                    .key(old_key)
                    .key(aside)
                    .invoke_async(&mut self.conn())
                    .await
                    .map_err(backend)?;
                Ok(into_record(stashed)?.map(|record| Arc::unwrap_or_clone(record.fields)))
            }
            RedisLayout::Log => {
                let stashed: Option<Vec<u8>> = log::STASH
                    .key(old_key)
                    .key(aside)
                    .invoke_async(&mut self.conn())
                    .await
                    .map_err(backend)?;
                stashed
                    .map(|log| Log::parse(log).map(|log| log.fields))
                    .transpose()
            }
        }
    }

    /// Puts a stashed record back under its old ID; a failure here leaves it aside until
    /// its TTL, which loses this session but never hands its data to another.
    async fn unstash(&self, old_key: &str, aside: &str) {
        let restored = UNSTASH
            .key(old_key)
            .key(aside)
            .invoke_async::<i64>(&mut self.conn())
            .await;
        if let Err(restore_err) = restored {
            tracing::error!(error = %Chain(&restore_err), "could not restore a session after a failed regenerate");
        }
    }

    /// Regenerate for a cluster, where the two keys may live on different nodes.
    async fn regenerate_across_slots(
        &self,
        old_key: &str,
        new_key: &str,
        patch: &Patch,
    ) -> WriteResult {
        let aside = format!("{old_key}:moving");
        let mut fields = match self.stash(old_key, &aside).await {
            Ok(Some(fields)) => fields,
            Ok(None) => return Err(StoreError::NotFound),
            Err(err) => {
                // Moved aside but unreadable (or the answer was lost): put it back as it was.
                self.unstash(old_key, &aside).await;
                return Err(err);
            }
        };
        // The whole record under the new ID, with the patch applied on top.
        patch.apply_to(&mut fields);
        let full = Patch {
            set: fields
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.as_str().to_owned()), v))
                .collect(),
            remove: Vec::new(),
            expires_at: patch.expires_at,
        };
        if let Err(err) = self.write(Write::Create, &[new_key], &full).await {
            self.unstash(old_key, &aside).await;
            return Err(err);
        }
        if let Err(err) = redis::cmd("DEL")
            .arg(&aside)
            .query_async::<()>(&mut self.conn())
            .await
        {
            // The new session is complete; the aside copy expires with its TTL.
            tracing::warn!(error = %Chain(&err), "could not delete the old copy of a regenerated session");
        }
        Ok(None)
    }
}
