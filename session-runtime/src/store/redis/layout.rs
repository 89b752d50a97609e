//! What differs between the two layouts, behind one trait: the commands that read and write
//! a session, and how their replies become records. The store drives them, one round trip
//! each, without asking which layout it has; `hash.rs` and `log.rs` implement it.

use std::time::SystemTime;

use redis::{Cmd, Script, ScriptInvocation, Value};

use super::{FieldMap, Patch, Record, StoreError, WriteResult};

/// The three writes that carry a patch.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Write {
    Create,
    Save,
    Regenerate,
}

/// One command a write sends, and how its answer reads.
pub(super) enum Command {
    /// A script answering one of the codes [`outcome`] reads.
    Script(ScriptInvocation<'static>),
    /// `SET … NX`: `OK`, or nil when the key is taken.
    SetIfAbsent(Cmd),
    /// Nothing to send: the write alone would exceed the session size limit.
    TooLarge,
}

/// A session layout in Redis.
pub(super) trait Layout: Sync {
    /// The command that reads a whole session.
    fn load(&self, key: &str) -> Cmd;

    /// A load's reply as a record (`None`: no such session), and a write worth sending after
    /// it, whose failure loses nothing (the log layout's compaction).
    fn read(
        &self,
        key: &str,
        reply: Value,
    ) -> Result<(Option<Record>, Option<ScriptInvocation<'static>>), StoreError>;

    /// The command that makes `write` of `patch` on `keys` (the session's key; for a
    /// regenerate, the old and the new one), atomically; refused (answer -2), changing
    /// nothing, if the session would then hold more than `limit` bytes (0: no limit).
    fn write(&self, write: Write, keys: &[&str], patch: &Patch, limit: usize) -> Command;

    /// The command that sets a new expiry without rewriting fields.
    fn touch(&self, key: &str, expires_at: SystemTime) -> Command;

    /// The script that moves a session from `key` to `aside` within its slot and returns it
    /// (the first step of a cluster regenerate).
    fn stash(&self, key: &str, aside: &str) -> ScriptInvocation<'static>;

    /// The stash script's reply as the session's fields; `None`: no such session.
    fn read_stash(&self, reply: Value) -> Result<Option<FieldMap>, StoreError>;
}

/// A script with its keys: the start of every invocation.
pub(super) fn invoke(script: &'static Script, keys: &[&str]) -> ScriptInvocation<'static> {
    let mut invocation = script.prepare_invoke();
    for key in keys {
        invocation.key(*key);
    }
    invocation
}

/// The create script around a layout's Lua `apply(key)`, which writes `ARGV` to `key`:
/// refuses (-1) when the ID is taken.
pub(super) fn create_script(apply: &str) -> Script {
    Script::new(&super::index::indexed(
        &format!(
            "{apply}
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
if not apply(KEYS[1]) then return -2 end
return 1"
        ),
        1,
    ))
}

/// The single-server regenerate script around a layout's Lua `apply(key)`: moves `KEYS[1]`
/// to `KEYS[2]` (`RENAMENX`) and applies `ARGV` there; 0 when the session is gone, -1 when
/// the new ID is taken. `guard` is a write to `KEYS[1]` that may grow memory and changes
/// nothing that matters, run first: Redis refuses a script over `maxmemory` only at its
/// first write, and only if that command may grow memory, which `RENAMENX` may not.
pub(super) fn regenerate_script(apply: &str, guard: &str) -> Script {
    Script::new(&super::index::indexed(
        &format!(
            "{apply}
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
{guard}
redis.call('RENAME', KEYS[1], KEYS[2])
if not apply(KEYS[2]) then
  redis.call('RENAME', KEYS[2], KEYS[1])
  return -2
end
return 1"
        ),
        2,
    ))
}

/// Whole milliseconds from now until `at`, rounded down; 0 once `at` has passed, which
/// makes the scripts' `PEXPIRE` delete the key at once: a record written with an expiry
/// in the past must never be read again, not even for the last millisecond.
pub(super) fn ttl_millis(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::now())
        .map_or(0, crate::meta::duration_millis)
}

/// The refusal of a write that would make a session larger than the store's limit.
pub(super) fn too_large() -> StoreError {
    StoreError::Rejected(
        "the session would exceed this RedisStore's per-session size limit \
         (RedisStore::with_max_session_bytes); nothing was written"
            .into(),
    )
}

/// A write script's answer: 1 done, 0 the session is gone, -1 the ID is taken, -2 the
/// session would exceed the size limit.
pub(super) fn outcome(code: i64) -> WriteResult {
    match code {
        1 => Ok(None),
        0 => Err(StoreError::NotFound),
        -1 => Err(StoreError::Collision),
        -2 => Err(too_large()),
        other => Err(StoreError::backend(format!(
            "unexpected answer {other} from a session script"
        ))),
    }
}
