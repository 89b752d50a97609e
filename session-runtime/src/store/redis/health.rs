//! What a `RedisStore` knows of its server's health, shared by the store's clones: when
//! Redis last answered (so a write after a pause checks the connection first), and whether
//! Redis is known to be down, in which case calls fail at once while one call at a time
//! probes it (a circuit breaker).

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, SystemTime},
};

use crate::meta::{duration_millis, to_millis};

/// How often, at most, a call probes Redis while it is known to be down.
pub(super) const PROBE_EVERY: Duration = Duration::from_millis(25);
/// How long a probe waits for Redis before the call it runs for fails.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// The outage policy: see `RedisStore::with_outage_probe`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Probe {
    pub(super) every: Duration,
    pub(super) timeout: Duration,
}

impl Default for Probe {
    fn default() -> Self {
        Self {
            every: PROBE_EVERY,
            timeout: PROBE_TIMEOUT,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Health {
    /// When a command last succeeded, in ms since the epoch.
    last_ok: AtomicU64,
    /// Redis is known to be down: the last attempt to reach it failed.
    down: AtomicBool,
    /// While down: the earliest time (ms since the epoch) of the next probe.
    next_probe: AtomicU64,
    /// A probe is in flight.
    probing: AtomicBool,
}

/// What a call may do, from [`Health::admit`].
pub(super) enum Admission<'a> {
    /// Redis is not known to be down: go ahead.
    Go,
    /// Redis is down and this call is the probe: check it first (and drop the guard after).
    Probe(ProbeGuard<'a>),
    /// Redis is down and it is not time to probe: fail at once.
    Refuse,
}

/// Held by the one call probing Redis; lets the next call probe once dropped.
pub(super) struct ProbeGuard<'a>(&'a Health);

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        self.0.probing.store(false, Ordering::Release);
    }
}

impl Health {
    /// Notes that Redis answered: it is up.
    pub(super) fn answered(&self) {
        self.last_ok
            .store(to_millis(SystemTime::now()), Ordering::Relaxed);
        if self.down.load(Ordering::Relaxed) {
            self.down.store(false, Ordering::Relaxed);
            tracing::info!("Redis answers again");
        }
    }

    /// How long since Redis last answered.
    pub(super) fn idle(&self) -> Duration {
        let idle =
            to_millis(SystemTime::now()).saturating_sub(self.last_ok.load(Ordering::Relaxed));
        Duration::from_millis(idle)
    }

    /// Notes a failed attempt: when `err` says Redis could not be reached (refused, timed
    /// out), it is known down and the next probe is `probe.every` away.
    pub(super) fn failed(&self, err: &redis::RedisError, probe: Probe) {
        if probe.every.is_zero() || !(err.is_connection_refusal() || err.is_timeout()) {
            return;
        }
        self.hold_off(probe.every);
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %crate::chain::Chain(err), "Redis is down: failing calls at once, probing it every {:?}", probe.every);
        }
    }

    /// After a probe that failed: the next one is `every` away.
    pub(super) fn hold_off(&self, every: Duration) {
        self.next_probe.store(
            to_millis(SystemTime::now()) + duration_millis(every),
            Ordering::Relaxed,
        );
    }

    /// Whether a call may go to Redis now.
    pub(super) fn admit(&self) -> Admission<'_> {
        if !self.down.load(Ordering::Relaxed) {
            return Admission::Go;
        }
        if to_millis(SystemTime::now()) < self.next_probe.load(Ordering::Relaxed)
            || self.probing.swap(true, Ordering::Acquire)
        {
            return Admission::Refuse;
        }
        Admission::Probe(ProbeGuard(self))
    }
}

/// The error of a call refused while Redis is known to be down.
#[derive(Debug)]
pub(super) struct Unreachable;

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "Redis is down (its last attempt failed); the call was not sent, and a probe \
             checks the server again shortly",
        )
    }
}

impl std::error::Error for Unreachable {}
