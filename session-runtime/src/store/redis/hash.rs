//! [`RedisLayout::Hash`](super::RedisLayout::Hash), the default: one Redis hash per session,
//! one hash field per session field, written with Lua scripts that `HSET` the changed fields
//! and `HDEL` the removed ones.

use std::{
    sync::{Arc, LazyLock},
    time::SystemTime,
};

use bytes::Bytes;
use redis::{Cmd, Script, ScriptInvocation, Value};

use super::{
    layout::{
        create_script, indexed, invoke, regenerate_script, ttl_millis, Command, Layout, Write,
    },
    FieldKey, FieldMap, Patch, Record, StoreError,
};

/// The hash field holding the record's expiry (milliseconds since the epoch, Redis's clock),
/// written by the scripts so that a load learns the expiry in the same single command.
const EXPIRES_FIELD: &str = "__exp";
/// The hash field holding the session's size (its other fields' names and values, in bytes),
/// kept by the scripts only under a per-session limit.
const BYTES_FIELD: &str = "__bytes";

/// Shared Lua: applies a patch from `ARGV` to `key` and sets its expiry.
///
/// `ARGV`: ttl-ms, expires-at-ms, the per-session size limit in bytes (0: none),
/// number-of-deletions, deleted fields..., then field, value pairs. A deleted name ending in
/// `#` deletes every field under it but those the patch sets (a map field's clear). Under a limit, the
/// session's size is kept in the hidden `__bytes` field (counted once from the hash when it
/// is missing) and moved by the changed fields' own sizes (`HSTRLEN`), so the check costs
/// two commands per changed field, not a read of the session; `apply` returns `false`,
/// writing nothing, when the session would exceed the limit. The expiry instant goes into the hidden `__exp` field in the same `HSET` as the
/// first changed fields; the key's TTL is set relative, so clock skew between the app and
/// Redis does not move it.
///
/// The first write is that `HSET`: Redis refuses a script over `maxmemory` (with
/// `noeviction`) only at its first write, and only if that command may grow memory, so a
/// script that began with `HDEL` or `PEXPIRE` could grow Redis past its limit.
const APPLY: &str = r"
local function apply(key)
  local limit = tonumber(ARGV[3])
  local ndel = tonumber(ARGV[4])
  local del_end = 4 + ndel
  local first = del_end + 1
  local last = ARGV_END
  local meta = {'__exp', ARGV[2]}
  -- Deletions; a name ending in '#' deletes every field under it (a map field's clear)
  -- but those this patch sets.
  local dels = {}
  local sets = nil
  for i = 5, del_end do
    local name = ARGV[i]
    if string.sub(name, -1) == '#' then
      if not sets then
        sets = {}
        for j = first, last, 2 do sets[ARGV[j]] = true end
      end
      for _, field in ipairs(redis.call('HKEYS', key)) do
        if string.sub(field, 1, #name) == name and not sets[field] then dels[#dels + 1] = field end
      end
    else
      dels[#dels + 1] = name
    end
  end
  if limit > 0 then
    local size = tonumber(redis.call('HGET', key, '__bytes'))
    if not size then
      size = 0
      local all = redis.call('HGETALL', key)
      for i = 1, #all, 2 do
        if string.sub(all[i], 1, 2) ~= '__' then size = size + #all[i] + #all[i + 1] end
      end
    end
    local function drop(field)
      if redis.call('HEXISTS', key, field) == 1 then
        size = size - #field - redis.call('HSTRLEN', key, field)
      end
    end
    for _, field in ipairs(dels) do drop(field) end
    for i = first, last, 2 do
      drop(ARGV[i])
      size = size + #ARGV[i] + #ARGV[i + 1]
    end
    if size > limit then return false end
    meta[3] = '__bytes'
    meta[4] = size
  end
  local upto = math.min(first + 995, last)
  for i = first, upto do meta[#meta + 1] = ARGV[i] end
  local fresh = redis.call('HSET', key, unpack(meta)) * 2 == #meta
  first = upto + 1
  while first <= last do
    upto = math.min(first + 999, last)
    redis.call('HSET', key, unpack(ARGV, first, upto))
    first = upto + 1
  end
  for i = 1, #dels, 1000 do
    redis.call('HDEL', key, unpack(dels, i, math.min(i + 999, #dels)))
  end
  redis.call('PEXPIRE', key, ARGV[1])
  return true, fresh
end
";

/// The regenerate script's first write, which may grow memory (see [`APPLY`]): the old
/// record's expiry field, set again before the move.
const GUARD: &str = "redis.call('HSET', KEYS[1], '__exp', ARGV[2])";

/// Save: refuses (0) when the session is gone, so a late save never resurrects it. A live
/// session always holds `__exp`, so a first `HSET` (which sets it) that added every field it
/// wrote made a new key: the script deletes it again in the same atomic step, and answers
/// 0, which spares an `EXISTS` (kept when a size limit is set, which reads the record
/// first).
static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&indexed(
        &format!(
            "{APPLY}
if ARGV[3] ~= '0' and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local applied, fresh = apply(KEYS[1])
if not applied then return -2 end
if fresh then
  redis.call('DEL', KEYS[1])
  return 0
end
return 1"
        ),
        1,
    ))
});

/// Create: refuses (-1) when the ID is taken.
static CREATE: LazyLock<Script> = LazyLock::new(|| create_script(APPLY));

/// Regenerate on one server: an atomic move (RENAMENX) plus the patch.
static REGENERATE: LazyLock<Script> = LazyLock::new(|| regenerate_script(APPLY, GUARD));

/// Touch: a new expiry, fields untouched; 0 when the session is gone.
/// `ARGV`: ttl-ms, expires-at-ms.
static TOUCH: LazyLock<Script> = LazyLock::new(|| Script::new(&indexed(TOUCH_LUA, 1)));
const TOUCH_LUA: &str = "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], '__exp', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1";

/// Cluster regenerate, step 1: move the record aside within its own slot (the old ID is dead
/// from here on) and return its fields and remaining TTL. Empty when the session is gone.
static STASH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
redis.call('RENAME', KEYS[1], KEYS[2])
return redis.call('HGETALL', KEYS[2])",
    )
});

/// The hash layout.
pub(super) struct HashLayout;

impl Layout for HashLayout {
    fn load(&self, key: &str) -> Cmd {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(key);
        cmd
    }

    fn read(
        &self,
        _key: &str,
        reply: Value,
    ) -> Result<(Option<Record>, Option<ScriptInvocation<'static>>), StoreError> {
        Ok((into_record(reply)?, None))
    }

    fn write(
        &self,
        write: Write,
        keys: &[&str],
        patch: &Patch,
        limit: usize,
        _term_free: bool,
    ) -> Command {
        let script: &'static Script = match write {
            Write::Create => &CREATE,
            Write::Save => &SAVE,
            Write::Regenerate => &REGENERATE,
        };
        let mut invocation = invoke(script, keys);
        patch_args(&mut invocation, patch, limit);
        Command::Script(invocation)
    }

    fn touch(&self, key: &str, expires_at: SystemTime, _term_free: bool) -> Command {
        let mut invocation = invoke(&TOUCH, &[key]);
        invocation
            .arg(ttl_millis(expires_at))
            .arg(crate::meta::to_millis(expires_at));
        Command::Script(invocation)
    }

    fn stash(&self, key: &str, aside: &str) -> ScriptInvocation<'static> {
        invoke(&STASH, &[key, aside])
    }

    fn read_stash(&self, reply: Value) -> Result<Option<FieldMap>, StoreError> {
        Ok(into_record(reply)?.map(|record| Arc::unwrap_or_clone(record.fields)))
    }
}

/// The script arguments for a patch: TTL in ms, expiry instant in ms, size limit, deletion
/// count, deletions, set pairs.
fn patch_args(invocation: &mut ScriptInvocation<'_>, patch: &Patch, limit: usize) {
    invocation
        .arg(ttl_millis(patch.expires_at))
        .arg(crate::meta::to_millis(patch.expires_at))
        .arg(limit)
        .arg(patch.remove.len());
    for key in &patch.remove {
        invocation.arg(key.as_ref());
    }
    for (key, value) in &patch.set {
        invocation.arg(key.as_ref()).arg(&value[..]);
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
        } else if key == BYTES_FIELD {
            // The scripts' own bookkeeping.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The scripts spell the expiry field in Lua; the reader and the runtime's reserved
    /// prefix must agree with them, or a schema field could collide with it.
    #[test]
    fn the_expiry_field_is_reserved_and_the_one_the_scripts_write() {
        assert!(EXPIRES_FIELD.starts_with(crate::meta::RESERVED_KEY_PREFIX));
        let quoted = format!("'{EXPIRES_FIELD}'");
        assert!(APPLY.contains(&quoted));
        assert!(TOUCH_LUA.contains(&quoted));
    }
}
