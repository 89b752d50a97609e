//! [`RedisLayout::Log`](super::RedisLayout::Log): one Redis string per session, a log that
//! every write appends its changed entries to.
//!
//! A record is a 12-byte header (4 bytes of magic, then 8 random bytes naming the log's
//! generation) followed by entries:
//!
//! - set: `+`, the name's length (LEB128), the name (UTF-8), the value's length (LEB128), the
//!   value;
//! - remove: `-`, the name's length (LEB128), the name; a name ending in `#` removes every
//!   name under it (a map field's clear);
//! - expiry: `E`, then the expiry instant in milliseconds since the epoch (8 bytes, little
//!   endian). Every write appends one, so a load needs one `GET`.
//!
//! A reader keeps each name's last entry, and the last expiry.
//!
//! Replaced entries stay in the log until a load finds that they outweigh the live ones.
//! That load then writes the record back compacted, under a new generation, but only if the
//! log is still exactly the one it read: same generation, same length. Writes only ever
//! append, so the length grows with every write and a concurrent one makes the compaction
//! stand down; a compaction by someone else changes the generation. No write is ever lost to
//! a compaction.

use std::{
    fmt,
    sync::{Arc, LazyLock},
    time::SystemTime,
};

use bytes::Bytes;
use rand::RngCore;
use redis::{Cmd, Script, ScriptInvocation, Value};

use super::{
    layout::{
        create_script, indexed, invoke, regenerate_script, ttl_millis, Command, Layout, Write,
    },
    FieldKey, FieldMap, Patch, Record, StoreError,
};

/// The first four bytes of every log.
const MAGIC: &[u8; 4] = b"\0sl1";
/// Magic plus the generation.
const HEADER_LEN: usize = 12;
const SET: u8 = b'+';
const REMOVE: u8 = b'-';
const EXPIRY: u8 = b'E';
/// An expiry entry: its tag and 8 bytes.
const EXPIRY_LEN: usize = 9;
/// A log is compacted once its dead entries outweigh its live ones and this many bytes.
const COMPACT_AT_LEAST: usize = 1024;

/// Shared Lua: appends `ARGV[2]` (encoded entries) to `key` and sets its TTL (`ARGV[1]`, ms;
/// 0 deletes the key at once). On a missing key `APPEND` creates it: a create's entries begin
/// with the header.
const APPLY: &str = r"
local function apply(key)
  local limit = tonumber(ARGV[3])
  if limit > 0 and redis.call('STRLEN', key) + #ARGV[2] > limit then return false end
  redis.call('APPEND', key, ARGV[2])
  redis.call('PEXPIRE', key, ARGV[1])
  return true
end
";

/// Save (and touch): refuses (0) when the session is gone; an expiry already past deletes
/// the record. `APPEND` is the first write: Redis refuses a script over `maxmemory` only at
/// its first write, and only if that command may grow memory (as `APPEND` may, and
/// `PEXPIRE` may not). `APPEND` also tells whether the session existed: a live log holds at
/// least its header, so an append that makes a log exactly its entries' length made a new
/// key, which the script deletes again in the same atomic step (no reader sees it); that
/// spares an `EXISTS`. The TTL goes to `PEXPIRE` as the string it came as (a Lua number
/// would be formatted again).
static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&indexed(
        "if ARGV[1] == '0' then return redis.call('DEL', KEYS[1]) end
if ARGV[3] ~= '0' then
  if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
  if redis.call('STRLEN', KEYS[1]) + #ARGV[2] > tonumber(ARGV[3]) then return -2 end
end
if redis.call('APPEND', KEYS[1], ARGV[2]) == #ARGV[2] then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1",
        1,
    ))
});

/// The regenerate script's first write, which may grow memory (see [`SAVE`]): an empty
/// append to the old log, before the move.
const GUARD: &str = "redis.call('APPEND', KEYS[1], '')";

/// Create: refuses (-1) when the ID is taken. Used for a create whose expiry has passed
/// (the record ends at once); others are a plain `SET … NX PX`.
static CREATE: LazyLock<Script> = LazyLock::new(|| create_script(APPLY));

/// Regenerate on one server: an atomic move (RENAMENX) plus the appended entries.
static REGENERATE: LazyLock<Script> = LazyLock::new(|| regenerate_script(APPLY, GUARD));

/// Cluster regenerate, step 1: move the log aside within its slot and return it; nil when the
/// session is gone.
static STASH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('RENAME', KEYS[1], KEYS[2])
return redis.call('GET', KEYS[2])",
    )
});

/// Compaction: replaces the log with `ARGV[3]` only if it is still the one that was read
/// (length `ARGV[1]`, header `ARGV[2]`), keeping its TTL. 1 when replaced, 0 otherwise.
static COMPACT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "if redis.call('STRLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return 0 end
if redis.call('GETRANGE', KEYS[1], 0, {}) ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'KEEPTTL')
return 1",
        HEADER_LEN - 1
    ))
});

/// A header with a fresh random generation.
fn header() -> [u8; HEADER_LEN] {
    let mut header = [0; HEADER_LEN];
    header[..MAGIC.len()].copy_from_slice(MAGIC);
    rand::thread_rng().fill_bytes(&mut header[MAGIC.len()..]);
    header
}

fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        // Truncation intended: the low seven bits, with the continuation bit.
        #[allow(clippy::cast_possible_truncation)]
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    #[allow(clippy::cast_possible_truncation)]
    out.push(n as u8);
}

fn set_len(name: &[u8], value: &[u8]) -> usize {
    1 + varint_len(name.len()) + name.len() + varint_len(value.len()) + value.len()
}

fn put_set(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(SET);
    put_varint(out, name.len());
    out.extend_from_slice(name);
    put_varint(out, value.len());
    out.extend_from_slice(value);
}

fn put_expiry(out: &mut Vec<u8>, millis: u64) {
    out.push(EXPIRY);
    out.extend_from_slice(&millis.to_le_bytes());
}

fn put_remove(out: &mut Vec<u8>, name: &[u8]) {
    out.push(REMOVE);
    put_varint(out, name.len());
    out.extend_from_slice(name);
}

/// The entries a write appends for `patch`: its removals, its sets and the expiry. A create
/// (`new_log`) starts the log with a header.
fn entries(patch: &Patch, new_log: bool) -> Vec<u8> {
    let len = if new_log { HEADER_LEN } else { 0 }
        + patch
            .remove
            .iter()
            .map(|k| 1 + varint_len(k.len()) + k.len())
            .sum::<usize>()
        + patch
            .set
            .iter()
            .map(|(k, v)| set_len(k.as_bytes(), v))
            .sum::<usize>()
        + EXPIRY_LEN;
    let mut out = Vec::with_capacity(len);
    if new_log {
        out.extend_from_slice(&header());
    }
    for key in &patch.remove {
        put_remove(&mut out, key.as_bytes());
    }
    for (key, value) in &patch.set {
        put_set(&mut out, key.as_bytes(), value);
    }
    put_expiry(&mut out, crate::meta::to_millis(patch.expires_at));
    debug_assert_eq!(out.len(), len);
    out
}

/// Why a string is not a session log.
#[derive(Debug)]
struct NotALog(&'static str);

impl fmt::Display for NotALog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a session log is unreadable: {}", self.0)
    }
}

impl std::error::Error for NotALog {}

fn corrupt(why: &'static str) -> StoreError {
    StoreError::corrupt(NotALog(why))
}

/// A log as read: the record it holds and what compacting it needs.
struct Log {
    /// The live fields, values sliced from the log without copying.
    fields: FieldMap,
    /// The last expiry entry's instant, in milliseconds since the epoch.
    expires: Option<u64>,
    /// The header, which a compaction checks is unchanged.
    header: Bytes,
    /// The whole log's length.
    len: usize,
    /// The length of the live entries, header included: what a compacted log holds.
    live: usize,
}

/// Reads a LEB128 length at `*at`, advancing past it.
fn read_len(log: &[u8], at: &mut usize) -> Result<usize, StoreError> {
    let mut n: usize = 0;
    let mut shift = 0;
    loop {
        let byte = *log
            .get(*at)
            .ok_or_else(|| corrupt("it ends inside a length"))?;
        *at += 1;
        let bits = usize::from(byte & 0x7f);
        if shift >= usize::BITS || (bits << shift) >> shift != bits {
            return Err(corrupt("a length is out of range"));
        }
        n |= bits << shift;
        if byte & 0x80 == 0 {
            return Ok(n);
        }
        shift += 7;
    }
}

/// Reads `len` bytes at `*at`, advancing past them.
fn take(log: &Bytes, at: &mut usize, len: usize) -> Result<Bytes, StoreError> {
    let end = at
        .checked_add(len)
        .filter(|&end| end <= log.len())
        .ok_or_else(|| corrupt("it ends inside an entry"))?;
    let bytes = log.slice(*at..end);
    *at = end;
    Ok(bytes)
}

impl Log {
    /// Parses a log. Any deviation from the format is [`StoreError::Corrupt`].
    fn parse(log: Vec<u8>) -> Result<Self, StoreError> {
        if log.len() < HEADER_LEN || &log[..MAGIC.len()] != MAGIC {
            return Err(corrupt("it does not start with a session log's header"));
        }
        let log = Bytes::from(log);
        let mut fields = FieldMap::default();
        let mut expires = None;
        let mut at = HEADER_LEN;
        while at < log.len() {
            let tag = log[at];
            at += 1;
            if tag == EXPIRY {
                let millis = take(&log, &mut at, 8)?;
                expires = Some(u64::from_le_bytes(
                    millis[..].try_into().expect("took 8 bytes"),
                ));
                continue;
            }
            let name_len = read_len(&log, &mut at)?;
            let name = take(&log, &mut at, name_len)?;
            let name =
                std::str::from_utf8(&name).map_err(|_| corrupt("a field name is not UTF-8"))?;
            match tag {
                SET => {
                    let value_len = read_len(&log, &mut at)?;
                    let value = take(&log, &mut at, value_len)?;
                    // A name seen before keeps its key; only a new one is allocated.
                    match fields.get_mut(name) {
                        Some(slot) => *slot = value,
                        None => {
                            fields.insert(FieldKey::new(name), value);
                        }
                    }
                }
                REMOVE if crate::store::is_entry_prefix(name) => {
                    fields.retain(|key, _| !key.starts_with(name));
                }
                REMOVE => {
                    fields.remove(name);
                }
                _ => return Err(corrupt("an entry has an unknown tag")),
            }
        }
        let live = HEADER_LEN
            + fields
                .iter()
                .map(|(k, v)| set_len(k.as_str().as_bytes(), v))
                .sum::<usize>()
            + if expires.is_some() { EXPIRY_LEN } else { 0 };
        Ok(Self {
            fields,
            expires,
            header: log.slice(..HEADER_LEN),
            len: log.len(),
            live,
        })
    }

    /// Whether the log's dead entries outweigh its live ones (and are worth a write).
    fn wants_compaction(&self) -> bool {
        let dead = self.len.saturating_sub(self.live);
        dead > self.live && dead >= COMPACT_AT_LEAST
    }

    /// The record it holds.
    fn into_record(self) -> Record {
        Record {
            fields: Arc::new(self.fields),
            expires_at: self.expires.and_then(crate::meta::from_millis),
            stale: false,
            complete: true,
        }
    }

    /// The log's live entries under a new generation.
    fn compacted(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.live);
        out.extend_from_slice(&header());
        for (key, value) in &self.fields {
            put_set(&mut out, key.as_str().as_bytes(), value);
        }
        if let Some(millis) = self.expires {
            put_expiry(&mut out, millis);
        }
        debug_assert_eq!(out.len(), self.live);
        out
    }

    /// The script that replaces the log under `key` with its compacted form, unless it
    /// changed since it was read (it answers 1 when it replaced it).
    fn compaction(&self, key: &str) -> ScriptInvocation<'static> {
        let mut invocation = invoke(&COMPACT, &[key]);
        invocation
            .arg(self.len)
            .arg(&self.header[..])
            .arg(self.compacted());
        invocation
    }
}

/// A `GET` reply: the log's bytes, or `None` for a missing key.
fn log_bytes(reply: Value) -> Result<Option<Vec<u8>>, StoreError> {
    match reply {
        Value::Nil => Ok(None),
        Value::BulkString(bytes) => Ok(Some(bytes)),
        other => Err(StoreError::backend(format!(
            "unexpected reply for a session log: {other:?}"
        ))),
    }
}

/// The log layout.
pub(super) struct LogLayout;

impl Layout for LogLayout {
    fn load(&self, key: &str) -> Cmd {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        cmd
    }

    fn read(
        &self,
        key: &str,
        reply: Value,
    ) -> Result<(Option<Record>, Option<ScriptInvocation<'static>>), StoreError> {
        let Some(log) = log_bytes(reply)? else {
            return Ok((None, None));
        };
        let log = Log::parse(log)?;
        let compaction = log.wants_compaction().then(|| log.compaction(key));
        Ok((Some(log.into_record()), compaction))
    }

    fn write(&self, write: Write, keys: &[&str], patch: &Patch, limit: usize) -> Command {
        let ttl = ttl_millis(patch.expires_at);
        let new_log = write == Write::Create;
        let entries = entries(patch, new_log);
        if limit > 0 && entries.len() > limit {
            return Command::TooLarge;
        }
        if let (true, [key], true) = (new_log, keys, !patch.touches_index()) {
            // A new log is one plain `SET … NX PX`, cheaper for Redis than a script (which
            // is kept for an expiry already past: `PX 0` is refused, and the script's
            // `PEXPIRE 0` ends the record at once).
            if ttl > 0 {
                let mut cmd = redis::cmd("SET");
                cmd.arg(*key).arg(entries).arg("NX").arg("PX").arg(ttl);
                return Command::SetIfAbsent(cmd);
            }
        }
        let script: &'static Script = match write {
            Write::Create => &CREATE,
            Write::Save => &SAVE,
            Write::Regenerate => &REGENERATE,
        };
        let mut invocation = invoke(script, keys);
        invocation.arg(ttl).arg(entries).arg(limit);
        Command::Script(invocation)
    }

    fn touch(&self, key: &str, expires_at: SystemTime) -> Command {
        // The expiry entry alone, appended; a refresh is never refused for size.
        self.write(Write::Save, &[key], &Patch::expiry_only(expires_at), 0)
    }

    fn stash(&self, key: &str, aside: &str) -> ScriptInvocation<'static> {
        invoke(&STASH, &[key, aside])
    }

    fn read_stash(&self, reply: Value) -> Result<Option<FieldMap>, StoreError> {
        log_bytes(reply)?
            .map(|log| Log::parse(log).map(|log| log.fields))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn patch(set: &[(&'static str, Vec<u8>)], remove: &[&'static str]) -> Patch {
        Patch {
            set: set
                .iter()
                .map(|(k, v)| ((*k).into(), v.clone().into()))
                .collect(),
            remove: remove.iter().map(|k| (*k).into()).collect(),
            expires_at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        }
    }

    #[test]
    fn lengths_round_trip_at_every_width() {
        for n in [0, 1, 127, 128, 300, 16_383, 16_384, 1 << 40, usize::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, n);
            assert_eq!(out.len(), varint_len(n), "{n}");
            let mut at = 0;
            assert_eq!(read_len(&out, &mut at).unwrap(), n);
            assert_eq!(at, out.len());
        }
        // One bit past usize.
        let mut too_long = vec![0xff; 9];
        too_long.push(0x7f);
        assert!(read_len(&too_long, &mut 0).is_err());
    }

    #[test]
    fn a_log_reads_each_names_last_entry() {
        let big = vec![7; 300];
        let mut log = entries(
            &patch(&[("a", b"1".to_vec()), ("b", big.clone())], &[]),
            true,
        );
        log.extend(entries(&patch(&[("a", b"2".to_vec())], &["b"]), false));
        log.extend(entries(&patch(&[("c", Vec::new())], &[]), false));
        let parsed = Log::parse(log.clone()).unwrap();
        assert_eq!(&parsed.fields["a"][..], b"2");
        assert!(!parsed.fields.contains_key("b"));
        assert_eq!(&parsed.fields["c"][..], b"");
        assert_eq!(parsed.len, log.len());
        // The compacted log holds just the live entries and reads the same.
        let compacted = parsed.compacted();
        assert_eq!(compacted.len(), parsed.live);
        assert_ne!(
            compacted[..HEADER_LEN],
            log[..HEADER_LEN],
            "a new generation"
        );
        let again = Log::parse(compacted).unwrap();
        assert_eq!(again.fields, parsed.fields);
        assert_eq!(again.live, again.len);
        let record = again.into_record();
        assert_eq!(
            record.expires_at,
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123))
        );
    }

    #[test]
    fn dead_entries_trigger_a_compaction_once_they_outweigh_the_live_ones() {
        let mut log = entries(&patch(&[("a", vec![1; 2000])], &[]), true);
        assert!(!Log::parse(log.clone()).unwrap().wants_compaction());
        // Rewritten once: as much dead as live.
        log.extend(entries(&patch(&[("a", vec![2; 2000])], &[]), false));
        assert!(!Log::parse(log.clone()).unwrap().wants_compaction());
        log.extend(entries(&patch(&[("a", vec![3; 2000])], &[]), false));
        assert!(Log::parse(log).unwrap().wants_compaction());
        // A small session waits for a kilobyte of dead entries.
        let mut small = entries(&patch(&[("n", b"0".to_vec())], &[]), true);
        loop {
            let parsed = Log::parse(small.clone()).unwrap();
            if parsed.len - parsed.live >= COMPACT_AT_LEAST {
                assert!(parsed.wants_compaction());
                break;
            }
            assert!(
                !parsed.wants_compaction(),
                "{} dead bytes",
                parsed.len - parsed.live
            );
            small.extend(entries(&patch(&[("n", b"1".to_vec())], &[]), false));
        }
    }
}
