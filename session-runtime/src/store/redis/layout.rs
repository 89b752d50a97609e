//! What differs between the two layouts, behind one trait: the commands that read and write
//! a session, and how their replies become records. The store drives them, one round trip
//! each, without asking which layout it has; `hash.rs` and `log.rs` implement it.

use std::time::SystemTime;

use redis::{Cmd, Pipeline, Script, ScriptInvocation, Value};

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
    /// Plain commands that append to a session that exists (see [`Append`]).
    Append(Append),
    /// Plain commands that create a session under a free ID (see [`PlainCreate`]).
    Create(PlainCreate),
    /// Nothing to send: the write alone would exceed the session size limit.
    TooLarge,
}

/// A save without a script, for a session known to hold no index terms: a pipeline
/// answering the session's length after an append that does nothing to a missing one (0:
/// the session is gone).
pub(super) struct Append(pub(super) Pipeline);

/// A create without a script: a pipeline that writes the record under a temporary key of
/// its own (same slot), gives it its TTL, moves it to the session's key only if that key is
/// free (`RENAMENX`, atomic), and deletes the temporary key if it is still there; it
/// answers the `RENAMENX` (1: created, 0: the ID is taken, nothing written to it).
pub(super) struct PlainCreate(pub(super) Pipeline);

/// A session layout in Redis.
pub(super) trait Layout: Sync {
    /// Whether some of its writes are plain commands that cannot keep the session index,
    /// for sessions known to hold no index terms (the `term_free` of [`Layout::write`]).
    fn plain_writes(&self) -> bool {
        false
    }

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
    /// `term_free`: the session is known to hold no index terms, so the write need not
    /// keep the session index unless it sets one.
    fn write(
        &self,
        write: Write,
        keys: &[&str],
        patch: &Patch,
        limit: usize,
        term_free: bool,
    ) -> Command;

    /// The command that sets a new expiry without rewriting fields (`term_free` as for
    /// [`Layout::write`]).
    fn touch(&self, key: &str, expires_at: SystemTime, term_free: bool) -> Command;

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
    Script::new(&indexed(
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
    Script::new(&indexed(
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

// The session index's part of every write script (the sets themselves and the cluster's
// side are in `index.rs`).

/// Lua shared by the scripts that touch index sets: the set's key for a term.
pub(super) const IX_KEY: &str = "
local function ixkey(prefix, index, term) return prefix .. #index .. ':' .. index .. ':' .. term end
";

/// The end of every write script: reads the index arguments, when the script was given one
/// key more than its own (the mirror hash), from the tail of `ARGV` (pairs of index key and
/// term, `''` to clear it, then one number: twice the pair count, plus 1 on a cluster), and
/// keeps the session's mirror hash and, on one server, its sets. The
/// session's ID and the sets' prefix come from its key (`<prefix>{<id>}`), the TTL from
/// `ARGV[1]` (every layout's first argument), the expiry from Redis's clock plus the TTL:
/// a write on one server that changes no term sends nothing more than without the index. `ARGV_END` is
/// where the layout's own arguments end. `index_sync` answers 1, or 3 on a cluster for a
/// session with terms (the store then raises their scores).
const INDEX_SYNC: &str = r"
local IX_TAIL = 0
if #KEYS > IX_KEYS then IX_TAIL = tonumber(ARGV[#ARGV]) end
local IX_HERE = IX_TAIL % 2 == 0
local ARGV_END = #ARGV
if #KEYS > IX_KEYS then ARGV_END = #ARGV - 1 - (IX_TAIL - IX_TAIL % 2) end
local function split(key)
  local id = string.match(key, '{([^{}]*)}$')
  return id, string.sub(key, 1, #key - #id - 2) .. 'ix:'
end
local function index_sync(key, old_key)
  local mirror = key .. '#ix'
  -- The common write: no term changes, no move, a session without terms.
  if not old_key and ARGV_END == #ARGV and redis.call('EXISTS', mirror) == 0 then return 1 end
  local ttl = tonumber(ARGV[1])
  local id, prefix = split(key)
  if old_key then
    local old_mirror = old_key .. '#ix'
    if redis.call('EXISTS', old_mirror) == 1 then
      if IX_HERE then
        local old_id = split(old_key)
        local all = redis.call('HGETALL', old_mirror)
        for i = 1, #all, 2 do redis.call('ZREM', ixkey(prefix, all[i], all[i + 1]), old_id) end
      end
      redis.call('RENAME', old_mirror, mirror)
    end
  end
  for i = ARGV_END + 1, ARGV_END + IX_TAIL - IX_TAIL % 2, 2 do
    local index, term = ARGV[i], ARGV[i + 1]
    if IX_HERE then
      local old = redis.call('HGET', mirror, index)
      if old and old ~= term then redis.call('ZREM', ixkey(prefix, index, old), id) end
    end
    if term == '' then redis.call('HDEL', mirror, index) else redis.call('HSET', mirror, index, term) end
  end
  if redis.call('EXISTS', mirror) == 0 then return 1 end
  local all = redis.call('HGETALL', mirror)
  if ttl == 0 then
    if IX_HERE then
      for i = 1, #all, 2 do redis.call('ZREM', ixkey(prefix, all[i], all[i + 1]), id) end
    end
    redis.call('DEL', mirror)
    return 1
  end
  redis.call('PEXPIRE', mirror, ttl)
  if not IX_HERE then return 3 end
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  for i = 1, #all, 2 do
    local set = ixkey(prefix, all[i], all[i + 1])
    redis.call('ZADD', set, now + ttl, id)
    redis.call('ZREMRANGEBYSCORE', set, '-inf', '(' .. now)
    if redis.call('PTTL', set) < ttl then redis.call('PEXPIRE', set, ttl) end
  end
  return 1
end
";

/// A layout's write script `body` (which answers 1 on success), followed by the index's
/// bookkeeping on success. In `body`, the layout's own arguments end at `ARGV_END`.
/// `keys` is how many keys the layout's script takes (2 for a regenerate: old, new).
pub(super) fn indexed(body: &str, keys: usize) -> String {
    format!(
        "local IX_KEYS = {keys}
{IX_KEY}{INDEX_SYNC}
local function body()
{body}
end
local code = body()
if code == 1 then code = index_sync(KEYS[IX_KEYS], IX_KEYS == 2 and KEYS[1] or nil) end
return code"
    )
}
