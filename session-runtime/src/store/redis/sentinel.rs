//! A connection to the master a set of Redis Sentinels names, that follows failovers.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use redis::{
    aio::{ConnectionLike, MultiplexedConnection},
    sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType},
    AsyncConnectionConfig, Cmd, ConnectionInfo, ErrorKind, Pipeline, RedisError, RedisFuture,
    RedisResult, ServerErrorKind, Value,
};

use super::{CONNECTION_TIMEOUT, RESPONSE_TIMEOUT};

/// The master's connection, asked of the Sentinels again after a failure that says the
/// connection is gone or no longer leads to the master: closed, refused, timed out, or a
/// `READONLY` answer from a master demoted to replica. The failing call itself fails (it
/// may or may not have run, so it is not retried); the next one goes to the master the
/// Sentinels name then.
#[derive(Clone)]
pub(super) struct SentinelConn(Arc<Inner>);

struct Inner {
    sentinels: Vec<ConnectionInfo>,
    master: String,
    node: SentinelNodeConnectionInfo,
    current: Mutex<Slot>,
    /// Held by the one call that asks the Sentinels; the others wait for its answer.
    asking: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Slot {
    /// The current master's connection, with a number that tells replacements apart.
    connection: Option<(u64, MultiplexedConnection)>,
    /// When asking the Sentinels last failed.
    failed_at: Option<Instant>,
}

/// After a failed attempt to reach the master, calls fail at once for this long instead of
/// asking the Sentinels again: a burst of requests during a failover costs the Sentinels a
/// few connections, not one per request.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

impl SentinelConn {
    /// Asks the Sentinels for `master` and connects to it.
    pub(super) async fn connect(
        sentinels: Vec<ConnectionInfo>,
        master: String,
        node: SentinelNodeConnectionInfo,
    ) -> RedisResult<Self> {
        let conn = Self(Arc::new(Inner {
            sentinels,
            master,
            node,
            current: Mutex::default(),
            asking: tokio::sync::Mutex::new(()),
        }));
        conn.connection().await?;
        Ok(conn)
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.0
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The current master's connection, resolving it through the Sentinels if there is none:
    /// one call at a time, and not again within [`RETRY_PAUSE`] of a failed attempt.
    async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(current) = self.slot().connection.clone() {
            return Ok(current);
        }
        let _turn = self.0.asking.lock().await;
        {
            let slot = self.slot();
            // The call that asked while this one waited may have found the master.
            if let Some(current) = slot.connection.clone() {
                return Ok(current);
            }
            if slot.failed_at.is_some_and(|at| at.elapsed() < RETRY_PAUSE) {
                return Err(RedisError::from((
                    ErrorKind::Io,
                    "the master is unreachable; the Sentinels will be asked again shortly",
                )));
            }
        }
        // Asking the Sentinels, then connecting, is bounded like any other call.
        let resolved = tokio::time::timeout(RESPONSE_TIMEOUT, self.resolve())
            .await
            .unwrap_or_else(|_| {
                Err(RedisError::from((
                    ErrorKind::Io,
                    "no answer from the Sentinels or the master they name",
                )))
            });
        let mut slot = self.slot();
        match resolved {
            Ok(connection) => {
                use std::sync::atomic::{AtomicU64, Ordering};
                static GENERATION: AtomicU64 = AtomicU64::new(0);
                let current = (GENERATION.fetch_add(1, Ordering::Relaxed), connection);
                slot.connection = Some(current.clone());
                slot.failed_at = None;
                Ok(current)
            }
            Err(err) => {
                slot.failed_at = Some(Instant::now());
                Err(err)
            }
        }
    }

    /// Asks the Sentinels which server is the master, and connects to it.
    async fn resolve(&self) -> RedisResult<MultiplexedConnection> {
        let inner = &self.0;
        let mut client = SentinelClient::build(
            inner.sentinels.clone(),
            inner.master.clone(),
            Some(inner.node.clone()),
            SentinelServerType::Master,
        )?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        // Naming the master includes asking it for its `ROLE`, with `node`'s credentials:
        // wrong ones fail here.
        client
            .async_get_client()
            .await?
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// Forgets connection `generation` after `err`, if the error says it no longer leads to
    /// the master.
    fn check<T>(&self, generation: u64, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(err) = &result {
            if leads_nowhere(err) {
                let mut slot = self.slot();
                if slot
                    .connection
                    .as_ref()
                    .is_some_and(|(current, _)| *current == generation)
                {
                    slot.connection = None;
                }
            }
        }
        result
    }
}

fn leads_nowhere(err: &RedisError) -> bool {
    err.is_unrecoverable_error()
        || err.is_io_error()
        || err.is_timeout()
        || err.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
}

impl ConnectionLike for SentinelConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut conn) = self.connection().await?;
            let result = conn.req_packed_command(cmd).await;
            self.check(generation, result)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut conn) = self.connection().await?;
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            self.check(generation, result)
        })
    }

    fn get_db(&self) -> i64 {
        self.slot()
            .connection
            .as_ref()
            .map_or(0, |(_, conn)| conn.get_db())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only errors that say the connection no longer leads to the master send the store
    /// back to the Sentinels; an error about the command itself does not.
    #[test]
    fn only_lost_or_demoted_masters_are_asked_for_again() {
        let readonly = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "You can't write against a read only replica.",
        ));
        let dropped = RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        for err in [&readonly, &dropped, &refused] {
            assert!(leads_nowhere(err), "{err}");
        }
        let wrong_type = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ));
        let no_perm = RedisError::from((
            ErrorKind::Server(ServerErrorKind::NoPerm),
            "this user has no permissions to run the 'hgetall' command",
        ));
        let no_script = RedisError::from((
            ErrorKind::Server(ServerErrorKind::NoScript),
            "No matching script.",
        ));
        for err in [&wrong_type, &no_perm, &no_script] {
            assert!(!leads_nowhere(err), "{err}");
        }
    }
}
