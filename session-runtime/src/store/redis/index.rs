//! The session index in Redis.
//!
//! Each (index key, term) is a sorted set, `<prefix>ix:<len>:<index key>:<term>`, of the
//! session IDs that hold the term, scored by each session's expiry (milliseconds since the
//! epoch); the key itself expires with its longest-lived session. A session's own terms are
//! mirrored in a small hash beside it, `<prefix>{<id>}#ix` (same slot, same TTL), so a write
//! knows which sets to change without reading the record.
//!
//! **One server, or through Sentinel**: every write script ends with [`INDEX_SYNC`], which
//! changes the session's sets in the same script as its record: a term set, changed or
//! cleared moves the session between sets, every write refreshes its score (and prunes the
//! sets it is in of expired members), regenerate moves it to the new ID, delete removes it.
//!
//! **Cluster**: a session and its sets live in different slots, so no script covers both.
//! The scripts then keep only the mirror hash, and the store changes the sets around them,
//! in an order that keeps the sets a *superset* of the live sessions holding each term: a
//! new term is added (scored with the write's expiry) before the write, a session that a
//! write found gone is removed after it, a refreshed session's scores are raised after the
//! write, a deleted one is removed after the delete, and a changed term's old entry is left
//! to expire with its score (another request may be setting it again at that moment). A
//! listing loads each member and returns only live sessions that hold the term, so the
//! superset is never seen. A process that dies between a refresh and its score's raise can
//! leave a session in its set only until its previous expiry.

use std::{sync::LazyLock, time::SystemTime};

use redis::{Script, ScriptInvocation, Value};

use super::{
    conn::backend,
    layout::{ttl_millis, IX_KEY},
    Conn, Patch, RedisStore, StoreError,
};
use crate::{
    meta::{to_millis, INDEX_KEY_PREFIX},
    SessionId,
};

/// Delete, or with `ARGV[3..4]` (index key, term) delete only if the session still holds
/// the term. `ARGV`: the ID, the sets' prefix (empty on a cluster). Answers `{deleted,
/// index key, term, ...}`: the session's terms, for a cluster's store to remove it from
/// their sets.
static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{IX_KEY}
local mirror = KEYS[1] .. '#ix'
if #ARGV >= 4 then
  if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HGET', mirror, ARGV[3]) ~= ARGV[4] then
    return {{0}}
  end
end
local all = redis.call('HGETALL', mirror)
if ARGV[2] ~= '' then
  for i = 1, #all, 2 do redis.call('ZREM', ixkey(ARGV[2], all[i], all[i + 1]), ARGV[1]) end
end
local deleted = redis.call('DEL', KEYS[1], mirror)
local out = {{deleted > 0 and 1 or 0}}
for i = 1, #all do out[#out + 1] = all[i] end
return out"
    ))
});

/// A cluster's set maintenance, on the set's own slot: adds (or raises) a member's score,
/// prunes expired members and keeps the set alive as long as its longest member. `ARGV`:
/// score (expiry, ms), ID, TTL (ms), now (ms).
static RAISE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "redis.call('ZADD', KEYS[1], 'GT', ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1",
    )
});

/// The index terms a patch sets (`Some`) or clears (`None`).
pub(super) fn patch_terms(patch: &Patch) -> Vec<(&str, Option<&[u8]>)> {
    let sets = patch
        .set
        .iter()
        .filter(|(key, _)| key.starts_with(INDEX_KEY_PREFIX))
        .map(|(key, value)| (key.as_ref(), Some(&value[..])));
    let removes = patch
        .remove
        .iter()
        .filter(|key| key.starts_with(INDEX_KEY_PREFIX))
        .filter(|key| !patch.set.iter().any(|(set, _)| set == *key))
        .map(|key| (key.as_ref(), None));
    sets.chain(removes).collect()
}

/// What a write does to the index: the terms it sets or clears, and (for a cluster's own
/// set maintenance) the session's expiry and ID.
pub(super) struct Tail<'a> {
    pub(super) terms: Vec<(&'a str, Option<&'a [u8]>)>,
    pub(super) expires_at: SystemTime,
    pub(super) id: &'a SessionId,
}

impl RedisStore {
    /// The prefix of this store's index sets.
    fn sets_prefix(&self) -> String {
        format!("{}ix:", self.prefix)
    }

    /// The set of the sessions holding `term` under `index`.
    pub(super) fn set_key(&self, index: &str, term: &[u8]) -> Vec<u8> {
        let mut key = self.sets_prefix().into_bytes();
        key.extend_from_slice(index.len().to_string().as_bytes());
        key.push(b':');
        key.extend_from_slice(index.as_bytes());
        key.push(b':');
        key.extend_from_slice(term);
        key
    }

    fn clustered(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// Appends the index arguments to a write script's invocation (see
    /// [`layout::indexed`](super::layout::indexed)).
    pub(super) fn push_tail(
        &self,
        invocation: &mut ScriptInvocation<'_>,
        key: &str,
        tail: &Tail<'_>,
    ) {
        if tail.terms.is_empty() && !self.clustered() {
            return;
        }
        invocation.key(format!("{key}#ix"));
        for (index, term) in &tail.terms {
            invocation.arg(*index).arg(term.unwrap_or_default());
        }
        invocation.arg(2 * tail.terms.len() + usize::from(self.clustered()));
    }

    /// On a cluster, before a write: adds the session to the sets of the terms it sets.
    pub(super) async fn before_write(&self, tail: &Tail<'_>) -> Result<(), StoreError> {
        if !self.clustered() {
            return Ok(());
        }
        for (index, term) in &tail.terms {
            if let Some(term) = term {
                self.raise(&self.set_key(index, term), tail.id, tail.expires_at)
                    .await?;
            }
        }
        Ok(())
    }

    /// On a cluster, after a write answered `code`: a session found gone leaves the sets it
    /// was just added to; a session with terms (code 3) has their scores raised.
    pub(super) async fn after_write(&self, tail: &Tail<'_>, key: &str, code: i64) -> i64 {
        if !self.clustered() {
            return code;
        }
        if code == 0 {
            for (index, term) in &tail.terms {
                if let Some(term) = term {
                    self.forget(&self.set_key(index, term), tail.id).await;
                }
            }
        }
        if code != 3 {
            return code;
        }
        let mirror = format!("{key}#ix");
        match redis::cmd("HGETALL")
            .arg(&mirror)
            .query_async::<Vec<(String, Vec<u8>)>>(&mut self.conn())
            .await
        {
            Ok(terms) => {
                for (index, term) in terms {
                    if let Err(err) = self
                        .raise(&self.set_key(&index, &term), tail.id, tail.expires_at)
                        .await
                    {
                        tracing::warn!(error = %crate::chain::Chain(&err), "could not refresh a session's index entry");
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %crate::chain::Chain(&err), "could not read a session's index terms");
            }
        }
        1
    }

    /// Adds `id` to `set` (or raises its score) with `expires_at`.
    async fn raise(
        &self,
        set: &[u8],
        id: &SessionId,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        let ttl = ttl_millis(expires_at);
        if ttl == 0 {
            return Ok(());
        }
        RAISE
            .key(set)
            .arg(to_millis(expires_at))
            .arg(id.as_str())
            .arg(ttl)
            .arg(to_millis(SystemTime::now()))
            .invoke_async::<i64>(&mut self.conn())
            .await
            .map(|_| ())
            .map_err(backend)
    }

    /// Removes `id` from `set`; a failure leaves a member the listings skip until its score
    /// passes.
    pub(super) async fn forget(&self, set: &[u8], id: &SessionId) {
        if let Err(err) = redis::cmd("ZREM")
            .arg(set)
            .arg(id.as_str())
            .query_async::<i64>(&mut self.conn())
            .await
        {
            tracing::warn!(error = %crate::chain::Chain(&err), "could not remove a deleted session from its index");
        }
    }

    /// Deletes a session (only if it holds `term` under `index`, when given): whether it
    /// did.
    pub(super) async fn delete_with_index(
        &self,
        id: &SessionId,
        only_if: Option<(&str, &[u8])>,
    ) -> Result<bool, StoreError> {
        let key = self.key(id);
        let prefix = if self.clustered() {
            String::new()
        } else {
            self.sets_prefix()
        };
        let reply: Vec<Value> = self
            .idempotent(|mut conn| {
                let (key, prefix) = (&key, &prefix);
                async move {
                    let mut invocation = DELETE.key(key.as_str());
                    invocation.arg(id.as_str()).arg(prefix.as_str());
                    if let Some((index, term)) = only_if {
                        invocation.arg(index).arg(term);
                    }
                    invocation.invoke_async(&mut conn).await
                }
            })
            .await?;
        let deleted = matches!(reply.first(), Some(Value::Int(1)));
        if self.clustered() {
            let mut terms = reply.into_iter().skip(1);
            while let (Some(Value::BulkString(index)), Some(Value::BulkString(term))) =
                (terms.next(), terms.next())
            {
                if let Ok(index) = std::str::from_utf8(&index) {
                    self.forget(&self.set_key(index, &term), id).await;
                }
            }
        }
        Ok(deleted)
    }

    /// The live sessions holding `term` under `index`, each loaded and checked.
    pub(super) async fn find_with_index(
        &self,
        index: &str,
        term: &[u8],
    ) -> Result<Vec<(SessionId, crate::store::Record)>, StoreError> {
        let set = self.set_key(index, term);
        let now = to_millis(SystemTime::now());
        let members: Vec<String> = self
            .idempotent(|mut conn| {
                let set = &set;
                async move {
                    redis::cmd("ZRANGEBYSCORE")
                        .arg(set)
                        .arg(format!("({now}"))
                        .arg("+inf")
                        .query_async(&mut conn)
                        .await
                }
            })
            .await?;
        let ids: Vec<SessionId> = members.into_iter().map(SessionId::from_store).collect();
        let records = if self.clustered() {
            // The sessions live on many nodes: one load each.
            let mut records = Vec::with_capacity(ids.len());
            for id in &ids {
                let record = crate::SessionStore::load(self, id, crate::store::LoadKeys::All).await;
                records.push(readable(record)?);
            }
            records
        } else {
            self.load_pipelined(&ids).await?
        };
        let mut found = Vec::with_capacity(ids.len());
        for (id, record) in ids.into_iter().zip(records) {
            if let Some(record) = record {
                if record.fields.get(index).map(|v| &v[..]) == Some(term) {
                    found.push((id, record));
                }
            }
        }
        Ok(found)
    }

    /// The records of `ids`, in one round trip (one server, or through Sentinel).
    async fn load_pipelined(
        &self,
        ids: &[SessionId],
    ) -> Result<Vec<Option<crate::store::Record>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let layout = self.layout.ops();
        let keys: Vec<String> = ids.iter().map(|id| self.key(id)).collect();
        let mut pipe = redis::pipe();
        // Each load answers on its own: one unreadable key does not fail the others.
        pipe.ignore_errors();
        for key in &keys {
            pipe.add_command(layout.load(key));
        }
        let replies: Vec<redis::RedisResult<Value>> = self
            .idempotent(|mut conn| {
                let pipe = &pipe;
                async move { pipe.query_async(&mut conn).await }
            })
            .await?;
        // A log due for compaction is compacted by its own session's next load.
        keys.iter()
            .zip(replies)
            .map(|(key, reply)| {
                let record = reply
                    .map_err(backend)
                    .and_then(|reply| layout.read(key, reply).map(|(record, _)| record));
                readable(record)
            })
            .collect()
    }
}

/// A listed session's record; one that is unreadable (another program's data under the
/// prefix) is left out of the listing, as a load leaves it out of a request.
fn readable(
    record: Result<Option<crate::store::Record>, StoreError>,
) -> Result<Option<crate::store::Record>, StoreError> {
    match record {
        Err(err @ StoreError::Corrupt(_)) => {
            tracing::warn!(error = %crate::chain::Chain(&err), "an indexed session is unreadable; not listed");
            Ok(None)
        }
        other => other,
    }
}
