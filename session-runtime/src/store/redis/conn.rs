//! How `RedisStore` reaches Redis: one server through a connection manager, a cluster, or
//! the master that Sentinels name; the timeouts; TLS set-up; and how a Redis error becomes a
//! store error.

use redis::{
    aio::{ConnectionLike, ConnectionManager},
    cluster_async::ClusterConnection,
    Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisFuture, Value,
};

use super::sentinel::SentinelConn;
use crate::StoreError;

#[derive(Clone)]
pub(super) enum Conn {
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

/// A Redis error as a store error: `WRONGTYPE` (the session's key holds something other
/// than the layout's type), also as a pipeline's answer, is unreadable data, anything else a
/// backend failure.
pub(super) fn backend(err: redis::RedisError) -> StoreError {
    let wrong_type = err.code() == Some("WRONGTYPE")
        || err
            .clone()
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, e)| e.code() == "WRONGTYPE"));
    if wrong_type {
        StoreError::corrupt(err)
    } else {
        StoreError::backend(err)
    }
}

pub(super) fn is_tls(info: &ConnectionInfo) -> bool {
    matches!(info.addr(), ConnectionAddr::TcpTls { .. })
}

/// The connection details of several servers, TLS readied if any of them needs it.
pub(super) fn connection_infos<T: IntoConnectionInfo>(
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
pub(super) fn tls_ready() {
    #[cfg(feature = "redis-tls")]
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: a provider is in place either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
