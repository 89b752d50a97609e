//! Regenerate on a Redis Cluster, where the old and the new key usually live in different
//! slots, so one script cannot move the record: it is set aside within its own slot (the old
//! ID is dead from then on), written whole under the new ID, and the aside copy deleted; a
//! failed copy puts it back.

use std::{borrow::Cow, sync::LazyLock};

use redis::{Script, Value};

use super::{
    conn::backend,
    index::{patch_terms, Tail},
    layout::Write,
    FieldMap, Patch, RedisStore, StoreError, WriteResult,
};
use crate::chain::Chain;
use crate::SessionId;

/// Cluster regenerate, rollback: put a stashed record back under its old ID.
static UNSTASH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('EXISTS', KEYS[2]) == 1 and redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('RENAME', KEYS[2], KEYS[1])
end
return 1",
    )
});

impl RedisStore {
    /// Step 1 of a cluster regenerate: moves the record under `old_key` to `aside` and
    /// returns its fields (`None`: no such session).
    async fn stash(&self, old_key: &str, aside: &str) -> Result<Option<FieldMap>, StoreError> {
        let layout = self.layout.ops();
        let reply: Value = layout
            .stash(old_key, aside)
            .invoke_async(&mut self.conn())
            .await
            .map_err(backend)?;
        layout.read_stash(reply)
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
    pub(super) async fn regenerate_across_slots(
        &self,
        old: &SessionId,
        new: &SessionId,
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
        let create = self.layout.ops().write(
            Write::Create,
            &[new_key],
            &full,
            self.max_session_bytes,
            false,
        );
        // The new ID joins the sets of every term the session holds (before the write, as
        // any write on a cluster); the old ID leaves them once it is gone for good.
        let tail = Tail {
            terms: patch_terms(&full),
            expires_at: full.expires_at,
            id: new,
        };
        if let Err(err) = self.run(create, new_key, &tail).await {
            self.unstash(old_key, &aside).await;
            return Err(err);
        }
        if let Err(err) = redis::cmd("DEL")
            .arg(&aside)
            .arg(format!("{old_key}#ix"))
            .query_async::<()>(&mut self.conn())
            .await
        {
            // The new session is complete; the aside copy expires with its TTL.
            tracing::warn!(error = %Chain(&err), "could not delete the old copy of a regenerated session");
        }
        for (index, term) in &tail.terms {
            if let Some(term) = term {
                self.forget(&self.set_key(index, term), old).await;
            }
        }
        Ok(None)
    }
}
