//! [`RedisLayout::Log`](super::RedisLayout::Log): one Redis list per session, a log that
//! every write appends one item to, holding its changed entries.
//!
//! The list's first item is the header: 4 bytes of magic, then 8 random bytes naming the
//! log's generation. Every other item is a run of entries:
//!
//! - set: `+`, the name's length (LEB128), the name (UTF-8), the value's length (LEB128), the
//!   value;
//! - remove: `-`, the name's length (LEB128), the name; a name ending in `#` removes every
//!   name under it (a map field's clear);
//! - expiry: `E`, then the expiry instant in milliseconds since the epoch (8 bytes, little
//!   endian). Every write appends one, so a load needs one `LRANGE`.
//!
//! A reader keeps each name's last entry, and the last expiry.
//!
//! A save is `RPUSHX` (which appends only to a list that exists, so a save never resurrects
//! an ended session) and `PEXPIRE`, pipelined: plain commands, no script, which is what
//! makes this layout cheaper for Redis than the hash layout's scripted saves. A create is
//! plain commands too: the record is written under a temporary key and moved to the
//! session's with `RENAMENX`, which refuses a taken ID. The scripts remain for what plain
//! commands cannot do atomically: regenerating, writes that change or must keep the session
//! index, writes under a size limit, and writes whose expiry has passed.
//!
//! Replaced entries stay in the log until a load finds that they outweigh the live ones, or
//! that the log has grown past [`COMPACT_ITEMS`] items. That load then writes the record
//! back compacted (a new header and one item of live entries), but only if the log still
//! begins with the items it read: same generation in the header, at least as many items.
//! Writes only ever append items, so the items a load read stay in place until a compaction
//! replaces them, and a compaction by someone else changes the generation. The compaction
//! replaces exactly the items it read, keeping any appended since: no write is ever lost to
//! a compaction.

use std::{
    fmt,
    sync::{Arc, LazyLock},
    time::SystemTime,
};

use bytes::Bytes;
use rand::RngCore;
use redis::{Cmd, Pipeline, Script, ScriptInvocation, Value};

use super::{
    layout::{
        create_script, indexed, invoke, regenerate_script, ttl_millis, Append, Command, Layout,
        PlainCreate, Write,
    },
    FieldKey, FieldMap, Patch, Record, StoreError,
};

/// The first four bytes of every log's header item.
const MAGIC: &[u8; 4] = b"\0sl2";
/// Magic plus the generation: the header item's length.
const HEADER_LEN: usize = 12;
const SET: u8 = b'+';
const REMOVE: u8 = b'-';
const EXPIRY: u8 = b'E';
/// An expiry entry: its tag and 8 bytes.
const EXPIRY_LEN: usize = 9;
/// A log is compacted once its dead entries outweigh its live ones and this many bytes.
const COMPACT_AT_LEAST: usize = 1024;
/// A log is compacted once it holds this many items, however small: a load's reply grows
/// with the item count, and Redis pays per item.
const COMPACT_ITEMS: usize = 20;

/// Shared Lua: the bytes a log holds (every item's length, the header's included), read
/// item by item; only a write under a size limit asks.
const SIZE: &str = r"
local function size(key)
  local n = 0
  for _, item in ipairs(redis.call('LRANGE', key, 0, -1)) do n = n + #item end
  return n
end
";

/// Shared Lua: appends `ARGV[2]` (encoded entries) to `key` as one item and sets its TTL
/// (`ARGV[1]`, ms; 0 deletes the key at once), unless that would make the log larger than
/// `ARGV[3]` bytes (0: no limit). A create's entries begin with the header (whose first
/// byte, 0, no entry's tag has), which becomes the list's first item.
static APPLY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{SIZE}
local function apply(key)
  local limit = tonumber(ARGV[3])
  if limit > 0 and size(key) + #ARGV[2] > limit then return false end
  if string.byte(ARGV[2]) == 0 then
    redis.call('RPUSH', key, string.sub(ARGV[2], 1, {HEADER_LEN}), string.sub(ARGV[2], {}))
  else
    redis.call('RPUSH', key, ARGV[2])
  end
  redis.call('PEXPIRE', key, ARGV[1])
  return true
end
",
        HEADER_LEN + 1
    )
});

/// Save and touch of a session that may hold index terms, or that change them, run under
/// a size limit, or carry an expiry already past (which deletes the record); others are
/// [`Append`]'s plain commands. Refuses (0) when the session is gone. `RPUSHX` is the first write: Redis
/// refuses a script over `maxmemory` only at its first write, and only if that command may
/// grow memory (as `RPUSHX` may, and `PEXPIRE` may not); it appends only to a list that
/// exists, so a save never resurrects a session. The TTL goes to `PEXPIRE` as the string
/// it came as (a Lua number would be formatted again).
static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&indexed(
        &format!(
            "{SIZE}
if ARGV[1] == '0' then return redis.call('DEL', KEYS[1]) end
if ARGV[3] ~= '0' then
  if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
  if size(KEYS[1]) + #ARGV[2] > tonumber(ARGV[3]) then return -2 end
end
if redis.call('RPUSHX', KEYS[1], ARGV[2]) == 0 then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1"
        ),
        1,
    ))
});

/// The regenerate script's first write, which may grow memory (see [`SAVE`]): an empty
/// item appended to the old log (it holds no entries), before the move.
const GUARD: &str = "redis.call('RPUSHX', KEYS[1], '')";

/// Create, when it sets index terms, runs under a size limit, or carries an expiry already
/// past; others are [`PlainCreate`]'s plain commands. Refuses (-1) when the ID is taken.
static CREATE: LazyLock<Script> = LazyLock::new(|| create_script(&APPLY));

/// Regenerate on one server: an atomic move (RENAMENX) plus the appended entries.
static REGENERATE: LazyLock<Script> = LazyLock::new(|| regenerate_script(&APPLY, GUARD));

/// Cluster regenerate, step 1: move the log aside within its slot and return its items;
/// nil when the session is gone.
static STASH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('RENAME', KEYS[1], KEYS[2])
return redis.call('LRANGE', KEYS[2], 0, -1)",
    )
});

/// Compaction: replaces items `ARGV[2]` (1: a full compaction, from the first entries
/// item; 2: the recent items only) up to `ARGV[1]` (exclusive) with the one item `ARGV[5]`
/// and the header with `ARGV[4]`, keeping the items appended since and the TTL, only if
/// the log still begins with the items that were read: its header is still `ARGV[3]` (every
/// compaction writes a new one) and it holds at least `ARGV[1]` items (writes only append).
/// 1 when replaced, 0 otherwise. Without appends since the read, the replaced items are the
/// list's tail (`LTRIM`); otherwise they are overwritten with the new header (which no other
/// item equals: a header begins with a byte no entry has, then random bytes) and removed,
/// before the header itself is written. No step empties the list, which would delete it
/// and its TTL.
static COMPACT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local n, from = tonumber(ARGV[1]), tonumber(ARGV[2])
local len = redis.call('LLEN', KEYS[1])
if n <= from or len < n then return 0 end
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[3] then return 0 end
if len == n then
  redis.call('LSET', KEYS[1], from, ARGV[5])
  redis.call('LTRIM', KEYS[1], 0, from)
else
  redis.call('LSET', KEYS[1], n - 1, ARGV[5])
  if n - 1 > from then
    for i = from, n - 2 do redis.call('LSET', KEYS[1], i, ARGV[4]) end
    redis.call('LREM', KEYS[1], n - 1 - from, ARGV[4])
  end
end
redis.call('LSET', KEYS[1], 0, ARGV[4])
return 1",
    )
});

/// The first item after the header: the entries a create wrote, or a full compaction.
const BASE: usize = 1;
/// The first of the items writes appended since: what a compaction of the recent items
/// merges.
const RECENT: usize = 2;

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

/// Why a list is not a session log.
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
    /// The live fields, values sliced from the log's items without copying.
    fields: FieldMap,
    /// The last expiry entry's instant, in milliseconds since the epoch.
    expires: Option<u64>,
    /// The header item, which a compaction checks is unchanged.
    header: Bytes,
    /// The log's items, the header's included.
    items: Vec<Bytes>,
    /// The length of its entries, every item's but the header's.
    len: usize,
    /// The length of its live entries: what a compacted log's entries item holds.
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

/// One entry of a log item; names borrow from the item.
enum Entry<'a> {
    Set(&'a str, Bytes),
    Remove(&'a str),
    Expiry(u64),
}

/// Calls `each` with every entry of `item`, in order.
fn for_each_entry(item: &Bytes, mut each: impl FnMut(Entry<'_>)) -> Result<(), StoreError> {
    let mut at = 0;
    while at < item.len() {
        let tag = item[at];
        at += 1;
        if tag == EXPIRY {
            let millis = take(item, &mut at, 8)?;
            each(Entry::Expiry(u64::from_le_bytes(
                millis[..].try_into().expect("took 8 bytes"),
            )));
            continue;
        }
        let name_len = read_len(item, &mut at)?;
        let name = take(item, &mut at, name_len)?;
        let name = std::str::from_utf8(&name).map_err(|_| corrupt("a field name is not UTF-8"))?;
        match tag {
            SET => {
                let value_len = read_len(item, &mut at)?;
                each(Entry::Set(name, take(item, &mut at, value_len)?));
            }
            REMOVE => each(Entry::Remove(name)),
            _ => return Err(corrupt("an entry has an unknown tag")),
        }
    }
    Ok(())
}

/// Applies one item's entries to `fields` and `expires`, in order.
fn read_item(
    item: &Bytes,
    fields: &mut FieldMap,
    expires: &mut Option<u64>,
) -> Result<(), StoreError> {
    for_each_entry(item, |entry| match entry {
        Entry::Expiry(millis) => *expires = Some(millis),
        // A name seen before keeps its key; only a new one is allocated.
        Entry::Set(name, value) => match fields.get_mut(name) {
            Some(slot) => *slot = value,
            None => {
                fields.insert(FieldKey::new(name), value);
            }
        },
        Entry::Remove(name) if crate::store::is_entry_prefix(name) => {
            fields.retain(|key, _| !key.starts_with(name));
        }
        Entry::Remove(name) => {
            fields.remove(name);
        }
    })
}

impl Log {
    /// Parses a log's items. Any deviation from the format is [`StoreError::Corrupt`].
    fn parse(items: Vec<Bytes>) -> Result<Self, StoreError> {
        let header = items
            .first()
            .filter(|header| header.len() == HEADER_LEN && header.starts_with(MAGIC))
            .ok_or_else(|| corrupt("it does not start with a session log's header"))?
            .clone();
        let mut fields = FieldMap::default();
        let mut expires = None;
        let mut len = 0;
        for item in &items[BASE..] {
            read_item(item, &mut fields, &mut expires)?;
            len += item.len();
        }
        let live = fields
            .iter()
            .map(|(k, v)| set_len(k.as_str().as_bytes(), v))
            .sum::<usize>()
            + if expires.is_some() { EXPIRY_LEN } else { 0 };
        Ok(Self {
            fields,
            expires,
            header,
            items,
            len,
            live,
        })
    }

    /// What compaction the log wants: a full one once its dead entries outweigh its live
    /// ones (and are worth a write), the recent items' once they are too many.
    fn wants_compaction(&self) -> Option<usize> {
        let dead = self.len.saturating_sub(self.live);
        if dead > self.live && dead >= COMPACT_AT_LEAST {
            Some(BASE)
        } else if self.items.len() > COMPACT_ITEMS {
            Some(RECENT)
        } else {
            None
        }
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

    /// The log's live entries, as one item.
    fn compacted(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.live);
        for (key, value) in &self.fields {
            put_set(&mut out, key.as_str().as_bytes(), value);
        }
        if let Some(millis) = self.expires {
            put_expiry(&mut out, millis);
        }
        debug_assert_eq!(out.len(), self.live);
        out
    }

    /// The recent items' entries merged into one item: for each name its last change, in
    /// an order that reads the same (removals of whole maps, then of names, then the sets),
    /// and the last expiry.
    fn merged_recent(&self) -> Vec<u8> {
        let mut sets = FieldMap::default();
        let mut removes: Vec<FieldKey> = Vec::new();
        let mut expires = None;
        for item in &self.items[RECENT..] {
            // Parsed when the log was read, so this cannot fail.
            let _ = for_each_entry(item, |entry| match entry {
                Entry::Expiry(millis) => expires = Some(millis),
                Entry::Set(name, value) => {
                    removes.retain(|removed| removed.as_str() != name);
                    sets.insert(FieldKey::new(name), value);
                }
                Entry::Remove(name) => {
                    if crate::store::is_entry_prefix(name) {
                        sets.retain(|key, _| !key.starts_with(name));
                        removes.retain(|removed| !removed.starts_with(name));
                    } else {
                        sets.remove(name);
                        removes.retain(|removed| removed.as_str() != name);
                    }
                    removes.push(FieldKey::new(name));
                }
            });
        }
        // Map clears first: a set after a clear must outlive it.
        removes.sort_by_key(|name| !crate::store::is_entry_prefix(name));
        let mut out = Vec::new();
        for name in &removes {
            put_remove(&mut out, name.as_str().as_bytes());
        }
        for (key, value) in &sets {
            put_set(&mut out, key.as_str().as_bytes(), value);
        }
        if let Some(millis) = expires {
            put_expiry(&mut out, millis);
        }
        out
    }

    /// The script that replaces the items read from `key` from `from` on with one item
    /// (the live entries, or the recent items' merged) and writes a new header, unless the
    /// log changed since it was read other than by appends (it answers 1 when it replaced
    /// them).
    fn compaction(&self, key: &str, from: usize) -> ScriptInvocation<'static> {
        let merged = if from == BASE {
            self.compacted()
        } else {
            self.merged_recent()
        };
        let mut invocation = invoke(&COMPACT, &[key]);
        invocation
            .arg(self.items.len())
            .arg(from)
            .arg(&self.header[..])
            .arg(&header()[..])
            .arg(merged);
        invocation
    }
}

/// An `LRANGE` reply: the log's items, or `None` for a missing key (an empty list).
fn log_items(reply: Value) -> Result<Option<Vec<Bytes>>, StoreError> {
    let unexpected = |other: &Value| {
        StoreError::backend(format!("unexpected reply for a session log: {other:?}"))
    };
    match reply {
        Value::Nil => Ok(None),
        Value::Array(items) if items.is_empty() => Ok(None),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::BulkString(bytes) => Ok(Bytes::from(bytes)),
                other => Err(unexpected(&other)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        other => Err(unexpected(&other)),
    }
}

/// The log layout.
pub(super) struct LogLayout;

impl Layout for LogLayout {
    fn plain_writes(&self) -> bool {
        true
    }

    fn load(&self, key: &str) -> Cmd {
        let mut cmd = redis::cmd("LRANGE");
        cmd.arg(key).arg(0).arg(-1);
        cmd
    }

    fn read(
        &self,
        key: &str,
        reply: Value,
    ) -> Result<(Option<Record>, Option<ScriptInvocation<'static>>), StoreError> {
        let Some(items) = log_items(reply)? else {
            return Ok((None, None));
        };
        let log = Log::parse(items)?;
        let compaction = log.wants_compaction().map(|from| log.compaction(key, from));
        Ok((Some(log.into_record()), compaction))
    }

    fn write(
        &self,
        write: Write,
        keys: &[&str],
        patch: &Patch,
        limit: usize,
        term_free: bool,
    ) -> Command {
        let ttl = ttl_millis(patch.expires_at);
        let entries = entries(patch, write == Write::Create);
        if limit > 0 && entries.len() > limit {
            return Command::TooLarge;
        }
        if let (Write::Save, [key], 0, true, false, true) = (
            write,
            keys,
            limit,
            term_free,
            patch.touches_index(),
            ttl > 0,
        ) {
            return Command::Append(append(key, entries, ttl));
        }
        if let (Write::Create, [key], 0, false, true) =
            (write, keys, limit, patch.touches_index(), ttl > 0)
        {
            return Command::Create(plain_create(key, &entries, ttl));
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

    fn touch(&self, key: &str, expires_at: SystemTime, term_free: bool) -> Command {
        // The expiry entry alone, appended; a refresh is never refused for size.
        self.write(
            Write::Save,
            &[key],
            &Patch::expiry_only(expires_at),
            0,
            term_free,
        )
    }

    fn stash(&self, key: &str, aside: &str) -> ScriptInvocation<'static> {
        invoke(&STASH, &[key, aside])
    }

    fn read_stash(&self, reply: Value) -> Result<Option<FieldMap>, StoreError> {
        log_items(reply)?
            .map(|items| Log::parse(items).map(|log| log.fields))
            .transpose()
    }
}

/// A create as plain commands (see [`PlainCreate`]): `entries` begin with the header,
/// which becomes the list's first item. The temporary key shares the session key's hash
/// tag, so the commands also work on a cluster, and carries a random suffix, so two
/// creates never share one.
fn plain_create(key: &str, entries: &[u8], ttl: u64) -> PlainCreate {
    let mut suffix = [0_u8; 8];
    rand::thread_rng().fill_bytes(&mut suffix);
    let temporary = format!("{key}~{:016x}", u64::from_le_bytes(suffix));
    let (header, entries) = entries.split_at(HEADER_LEN);
    let mut pipe = Pipeline::with_capacity(4);
    pipe.cmd("RPUSH")
        .arg(&temporary)
        .arg(header)
        .arg(entries)
        .ignore();
    pipe.cmd("PEXPIRE").arg(&temporary).arg(ttl).ignore();
    pipe.cmd("RENAMENX").arg(&temporary).arg(key);
    pipe.cmd("DEL").arg(&temporary).ignore();
    PlainCreate(pipe)
}

/// A save as plain commands: `RPUSHX` (nothing when the session is gone), then `PEXPIRE`.
fn append(key: &str, entries: Vec<u8>, ttl: u64) -> Append {
    let mut pipe = Pipeline::with_capacity(2);
    pipe.cmd("RPUSHX").arg(key).arg(entries);
    pipe.cmd("PEXPIRE").arg(key).arg(ttl).ignore();
    Append(pipe)
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

    /// A log's items as a create and then saves write them: the header, then one item
    /// per write.
    fn log(writes: &[Vec<u8>]) -> Vec<Bytes> {
        let (first, rest) = writes.split_first().expect("a create");
        let mut items = vec![
            Bytes::copy_from_slice(&first[..HEADER_LEN]),
            Bytes::copy_from_slice(&first[HEADER_LEN..]),
        ];
        items.extend(rest.iter().map(|item| Bytes::from(item.clone())));
        items
    }

    #[test]
    fn a_log_reads_each_names_last_entry() {
        let big = vec![7; 300];
        let writes = [
            entries(
                &patch(&[("a", b"1".to_vec()), ("b", big.clone())], &[]),
                true,
            ),
            entries(&patch(&[("a", b"2".to_vec())], &["b"]), false),
            entries(&patch(&[("c", Vec::new())], &[]), false),
        ];
        let items = log(&writes);
        let parsed = Log::parse(items.clone()).unwrap();
        assert_eq!(&parsed.fields["a"][..], b"2");
        assert!(!parsed.fields.contains_key("b"));
        assert_eq!(&parsed.fields["c"][..], b"");
        assert_eq!(parsed.items.len(), 4);
        assert_eq!(
            parsed.len,
            writes.iter().map(Vec::len).sum::<usize>() - HEADER_LEN
        );
        // The compacted log holds just the live entries and reads the same.
        let compacted = parsed.compacted();
        assert_eq!(compacted.len(), parsed.live);
        let again = Log::parse(vec![items[0].clone(), compacted.into()]).unwrap();
        assert_eq!(again.fields, parsed.fields);
        assert_eq!(again.live, again.len);
        let record = again.into_record();
        assert_eq!(
            record.expires_at,
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123))
        );
    }

    #[test]
    fn a_compaction_writes_a_new_generation() {
        let items = log(&[entries(&patch(&[("a", b"1".to_vec())], &[]), true)]);
        let parsed = Log::parse(items.clone()).unwrap();
        assert_eq!(parsed.header, items[0]);
        assert_ne!(header(), header(), "random generations");
        assert!(header().starts_with(MAGIC));
    }

    #[test]
    fn a_list_without_a_header_or_with_garbage_is_corrupt() {
        let entries_only = entries(&patch(&[("a", b"1".to_vec())], &[]), false);
        for items in [
            vec![Bytes::from(entries_only.clone())],
            vec![
                Bytes::from_static(b"\0sl1........"),
                entries_only.clone().into(),
            ],
            vec![
                Bytes::from(header().to_vec()),
                Bytes::from_static(b"+\x05ab"),
            ],
            vec![Bytes::from(header().to_vec()), Bytes::from_static(b"?")],
        ] {
            assert!(matches!(Log::parse(items), Err(StoreError::Corrupt(_))));
        }
        // Empty items (a regenerate's guard appends one) hold no entries.
        let mut items = log(&[entries(&patch(&[("a", b"1".to_vec())], &[]), true)]);
        items.push(Bytes::new());
        assert_eq!(&Log::parse(items).unwrap().fields["a"][..], b"1");
    }

    #[test]
    fn dead_entries_trigger_a_compaction_once_they_outweigh_the_live_ones() {
        let mut writes = vec![entries(&patch(&[("a", vec![1; 2000])], &[]), true)];
        assert_eq!(Log::parse(log(&writes)).unwrap().wants_compaction(), None);
        // Rewritten once: as much dead as live.
        writes.push(entries(&patch(&[("a", vec![2; 2000])], &[]), false));
        assert_eq!(Log::parse(log(&writes)).unwrap().wants_compaction(), None);
        writes.push(entries(&patch(&[("a", vec![3; 2000])], &[]), false));
        assert_eq!(
            Log::parse(log(&writes)).unwrap().wants_compaction(),
            Some(BASE)
        );
        // A small session's small writes reach the item bound first, which merges the
        // recent items alone.
        let mut small = vec![entries(&patch(&[("n", b"0".to_vec())], &[]), true)];
        while Log::parse(log(&small))
            .unwrap()
            .wants_compaction()
            .is_none()
        {
            small.push(entries(&patch(&[("n", b"1".to_vec())], &[]), false));
        }
        let parsed = Log::parse(log(&small)).unwrap();
        assert_eq!(parsed.items.len(), COMPACT_ITEMS + 1);
        assert_eq!(parsed.wants_compaction(), Some(RECENT));
    }

    /// The recent items merged read as they did: each name's last change, map clears
    /// before sets made after them, and the last expiry.
    #[test]
    fn merging_the_recent_items_keeps_what_they_say() {
        let later = |millis: u64| {
            let mut p = patch(&[], &[]);
            p.expires_at = SystemTime::UNIX_EPOCH + Duration::from_millis(millis);
            p
        };
        let mut writes = vec![entries(
            &patch(
                &[
                    ("a", b"0".to_vec()),
                    ("b", b"0".to_vec()),
                    ("m#x", b"0".to_vec()),
                    ("m#y", b"0".to_vec()),
                    ("k#z", b"0".to_vec()),
                ],
                &[],
            ),
            true,
        )];
        let steps: Vec<Patch> = vec![
            patch(&[("a", b"1".to_vec())], &[]),
            patch(&[("a", b"2".to_vec())], &["b"]),
            patch(&[("b", b"3".to_vec()), ("k#w", b"1".to_vec())], &[]),
            patch(&[], &["m#"]),
            patch(&[("m#y", b"4".to_vec())], &[]),
            patch(&[], &["k#"]),
            patch(&[("c", b"5".to_vec())], &["c"]),
            later(1_800_000_000_000),
        ];
        writes.extend(steps.iter().map(|p| entries(p, false)));
        let parsed = Log::parse(log(&writes)).unwrap();
        let merged = parsed.merged_recent();
        let mut items = log(&writes);
        items.truncate(RECENT);
        items.push(merged.into());
        let again = Log::parse(items).unwrap();
        assert_eq!(again.fields, parsed.fields);
        assert_eq!(again.expires, parsed.expires);
        assert_eq!(again.expires, Some(1_800_000_000_000));
        assert_eq!(&again.fields["m#y"][..], b"4");
        assert!(!again.fields.contains_key("m#x"));
        assert!(!again.fields.contains_key("k#z") && !again.fields.contains_key("k#w"));
        assert_eq!(&again.fields["b"][..], b"3");
    }
}
