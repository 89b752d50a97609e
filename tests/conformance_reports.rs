//! The conformance suite catches stores that break the contract in ways that used to pass,
//! and reports every broken rule at once, each with the store's answer.

use std::time::SystemTime;

use session_runtime::{
    conformance,
    store::{LoadKeys, Patch, Record, WriteResult},
    MemoryStore, SessionId, SessionStore, StoreError,
};

/// A store wrapper that can lie: about `complete`, by not deleting, or by taking a map
/// field's clear (a removed key ending in `#`) for the removal of one key.
#[derive(Default)]
struct Lying {
    inner: MemoryStore,
    partial_but_complete: bool,
    ignores_deletes: bool,
    clears_one_key: bool,
}

impl SessionStore for Lying {
    async fn load(&self, id: &SessionId, keys: LoadKeys<'_>) -> Result<Option<Record>, StoreError> {
        let mut record = self.inner.load(id, keys).await?;
        if let (true, Some(record), LoadKeys::Only(asked)) =
            (self.partial_but_complete, record.as_mut(), keys)
        {
            let mut fields = (*record.fields).clone();
            fields.retain(|key, _| asked.contains(&key.as_str()));
            record.fields = fields.into();
            record.complete = true;
        }
        Ok(record)
    }
    async fn create(&self, id: &SessionId, patch: &Patch) -> WriteResult {
        self.inner.create(id, patch).await
    }
    async fn save(&self, id: &SessionId, patch: &Patch) -> WriteResult {
        if self.clears_one_key && patch.remove.iter().any(|key| key.ends_with('#')) {
            // What a store that knows nothing of map fields does: remove the key as named.
            let mut fields = (*self
                .inner
                .load(id, LoadKeys::All)
                .await?
                .ok_or(StoreError::NotFound)?
                .fields)
                .clone();
            for key in &patch.remove {
                fields.remove(key.as_ref());
            }
            let mut rewritten = Patch::expiry_only(patch.expires_at);
            rewritten.remove = patch
                .remove
                .iter()
                .filter(|k| !k.ends_with('#'))
                .cloned()
                .collect();
            rewritten.set = patch.set.clone();
            return self.inner.save(id, &rewritten).await;
        }
        self.inner.save(id, patch).await
    }
    async fn regenerate(&self, old: &SessionId, new: &SessionId, patch: &Patch) -> WriteResult {
        self.inner.regenerate(old, new, patch).await
    }
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        if self.ignores_deletes {
            return Ok(());
        }
        self.inner.delete(id).await
    }
    async fn touch(&self, id: &SessionId, expires_at: SystemTime) -> WriteResult {
        self.inner.touch(id, expires_at).await
    }
}

/// The suite's report for `store`, or `None` if it passed.
async fn report(store: Lying) -> Option<String> {
    let failed = tokio::spawn(conformance::run(store)).await.err()?;
    let panic = failed.into_panic();
    Some(
        panic
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "no message".to_owned()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_marks_a_partial_record_complete_fails_the_suite() {
    let report = report(Lying {
        inner: MemoryStore::new(),
        partial_but_complete: true,
        ignores_deletes: false,
        clears_one_key: false,
    })
    .await
    .expect("the suite fails");
    assert!(report.contains("load_only_some_keys"), "{report}");
    assert!(report.contains("must hold every key"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broken_rule_is_reported_the_model_included() {
    let report = report(Lying {
        inner: MemoryStore::new(),
        partial_but_complete: false,
        ignores_deletes: true,
        clears_one_key: false,
    })
    .await
    .expect("the suite fails");
    assert!(report.contains("delete_removes_the_record"), "{report}");
    assert!(
        report.contains("random_operations_match_a_model"),
        "{report}"
    );
    assert!(report.contains("rule(s) of the store contract"), "{report}");
}

/// `check` returns the same report, so a test fails at its own line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_returns_the_broken_rules() {
    let violations = conformance::check(Lying {
        inner: MemoryStore::new(),
        partial_but_complete: true,
        ignores_deletes: false,
        clears_one_key: false,
    })
    .await
    .unwrap_err();
    // It returns only the keys named, so it misses a map field's entries too.
    assert_eq!(violations.rules().len(), 2, "{violations}");
    assert!(violations.rules()[0].starts_with("load_only_some_keys: "));
    assert!(
        violations.rules()[1].starts_with("clears_remove_every_key_under_a_prefix: "),
        "{violations}"
    );
}

/// A store that takes a clear for the removal of one key breaks the clear rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_ignores_clears_fails_the_suite() {
    let violations = conformance::check(Lying {
        clears_one_key: true,
        ..Lying::default()
    })
    .await
    .unwrap_err();
    let rules: Vec<&str> = violations
        .rules()
        .iter()
        .map(|rule| rule.split(':').next().unwrap_or_default())
        .collect();
    assert!(
        rules.contains(&"clears_remove_every_key_under_a_prefix"),
        "{violations}"
    );
    assert!(
        rules.contains(&"a_clear_racing_entry_writes_is_atomic"),
        "{violations}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_store_passes() {
    let honest = Lying {
        inner: MemoryStore::new(),
        ..Lying::default()
    };
    assert_eq!(report(honest).await, None);
}
