//! The checks of the session index's rules (8 to 10 of the [store contract](crate::store)),
//! for a store whose `supports_index()` is `true`; and the one rule of a store that does not
//! index: it says so.
//!
//! Each check uses index terms of its own (random), so it can run against a store that
//! holds other sessions, and other runs of the suite, at the same time.

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, SystemTime},
};

use super::{created, field, in_a_minute, load_all, patch};
use crate::{SessionId, SessionStore, StoreError};

/// The index key the checks use (as a schema's `#[session(index)] user` field would).
const INDEX: &str = "__ix.conformance.user";
/// A second index key, to check that indexes keep apart.
const OTHER_INDEX: &str = "__ix.conformance.team";

/// A term no other run uses.
fn fresh_term() -> String {
    format!("user-{:016x}", rand::random::<u64>())
}

/// The IDs `find_indexed` returns for `term`, each checked to come with its record.
async fn found<S: SessionStore>(store: &S, index: &str, term: &str) -> BTreeSet<String> {
    let found = store
        .find_indexed(index, term.as_bytes())
        .await
        .expect("find_indexed");
    let mut ids = BTreeSet::new();
    for (id, record) in found {
        assert_eq!(
            field(&record, index),
            Some(term),
            "find_indexed returns only records that hold the term, with their fields"
        );
        assert!(
            ids.insert(id.as_str().to_owned()),
            "find_indexed returns each session once"
        );
    }
    ids
}

fn ids(ids: &[&SessionId]) -> BTreeSet<String> {
    ids.iter().map(|id| id.as_str().to_owned()).collect()
}

/// The index follows every write: a create, a save that changes, removes and sets the term
/// again, a regenerate (the new ID is listed, the old one is not) and a delete.
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::index_follows_every_write(&MemoryStore::new()).await;
/// # });
/// ```
pub async fn index_follows_every_write<S: SessionStore>(store: &S) {
    let (a, b) = (fresh_term(), fresh_term());
    let id = created(store, &[("name", "ada"), (INDEX, &a)], in_a_minute()).await;
    let other = created(store, &[(INDEX, &a)], in_a_minute()).await;
    assert_eq!(
        found(store, INDEX, &a).await,
        ids(&[&id, &other]),
        "a created session is found under its term"
    );
    let listed = store
        .find_indexed(INDEX, a.as_bytes())
        .await
        .expect("find_indexed");
    let (_, record) = listed
        .iter()
        .find(|(found, _)| found == &id)
        .expect("listed");
    assert_eq!(
        field(record, "name"),
        Some("ada"),
        "find_indexed returns the whole record"
    );

    store
        .save(&id, &patch(&[(INDEX, &b)], &[], in_a_minute()))
        .await
        .expect("save");
    assert_eq!(
        found(store, INDEX, &a).await,
        ids(&[&other]),
        "a session whose term changed is no longer found under the old one"
    );
    assert_eq!(found(store, INDEX, &b).await, ids(&[&id]));

    store
        .save(&id, &patch(&[], &[INDEX], in_a_minute()))
        .await
        .expect("save");
    assert!(
        found(store, INDEX, &b).await.is_empty(),
        "a session whose term was removed is found under none"
    );
    store
        .save(&id, &patch(&[("x", "1"), (INDEX, &a)], &[], in_a_minute()))
        .await
        .expect("save");
    assert_eq!(found(store, INDEX, &a).await, ids(&[&id, &other]));

    let new = SessionId::generate();
    let new = store
        .regenerate(&id, &new, &patch(&[], &[], in_a_minute()))
        .await
        .expect("regenerate")
        .unwrap_or(new);
    assert_eq!(
        found(store, INDEX, &a).await,
        ids(&[&new, &other]),
        "regenerate moves the index entry to the new ID"
    );

    store.delete(&new).await.expect("delete");
    store.delete(&other).await.expect("delete");
    assert!(
        found(store, INDEX, &a).await.is_empty(),
        "a deleted session is not found"
    );
}

/// Terms of one index key are not found under another.
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::indexes_keep_apart(&MemoryStore::new()).await;
/// # });
/// ```
pub async fn indexes_keep_apart<S: SessionStore>(store: &S) {
    let term = fresh_term();
    let user = created(store, &[(INDEX, &term)], in_a_minute()).await;
    let team = created(store, &[(OTHER_INDEX, &term)], in_a_minute()).await;
    let plain = created(store, &[("conformance.user", &term)], in_a_minute()).await;
    assert_eq!(found(store, INDEX, &term).await, ids(&[&user]));
    assert_eq!(found(store, OTHER_INDEX, &term).await, ids(&[&team]));
    assert!(
        found(store, INDEX, &format!("{term}x")).await.is_empty()
            && found(store, INDEX, &term[..term.len() - 1])
                .await
                .is_empty(),
        "a term is found only exactly"
    );
    for id in [user, team, plain] {
        store.delete(&id).await.expect("delete");
    }
}

/// An expired session is never found, and a late save cannot put a deleted session back in
/// the index.
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::index_never_lists_ended_sessions(&MemoryStore::new()).await;
/// # });
/// ```
pub async fn index_never_lists_ended_sessions<S: SessionStore>(store: &S) {
    let term = fresh_term();
    let short = created(
        store,
        &[(INDEX, &term)],
        SystemTime::now() + Duration::from_millis(300),
    )
    .await;
    let long = created(store, &[(INDEX, &term)], in_a_minute()).await;
    assert_eq!(found(store, INDEX, &term).await, ids(&[&short, &long]));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        found(store, INDEX, &term).await,
        ids(&[&long]),
        "an expired session is never found"
    );

    store.delete(&long).await.expect("delete");
    let late = store
        .save(&long, &patch(&[(INDEX, &term)], &[], in_a_minute()))
        .await;
    assert!(
        matches!(late, Err(StoreError::NotFound)),
        "a late save of a deleted session fails with NotFound: {late:?}"
    );
    assert!(
        found(store, INDEX, &term).await.is_empty(),
        "a late save never puts a deleted session back in the index"
    );
}

/// `delete_indexed` deletes only a session that still holds the term, and says so.
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::delete_indexed_checks_the_term(&MemoryStore::new()).await;
/// # });
/// ```
pub async fn delete_indexed_checks_the_term<S: SessionStore>(store: &S) {
    let (term, other) = (fresh_term(), fresh_term());
    let id = created(store, &[(INDEX, &term)], in_a_minute()).await;
    let deleted = store
        .delete_indexed(&id, INDEX, other.as_bytes())
        .await
        .expect("delete_indexed");
    assert!(
        !deleted && load_all(store, &id).await.is_some(),
        "delete_indexed leaves a session that holds another term"
    );
    let deleted = store
        .delete_indexed(&id, OTHER_INDEX, term.as_bytes())
        .await
        .expect("delete_indexed");
    assert!(
        !deleted && load_all(store, &id).await.is_some(),
        "delete_indexed leaves a session that holds the term under another index"
    );
    let deleted = store
        .delete_indexed(&id, INDEX, term.as_bytes())
        .await
        .expect("delete_indexed");
    assert!(
        deleted,
        "delete_indexed deletes a session that holds the term"
    );
    assert!(load_all(store, &id).await.is_none(), "and it is gone");
    assert!(
        found(store, INDEX, &term).await.is_empty(),
        "from the index too"
    );
    let again = store
        .delete_indexed(&id, INDEX, term.as_bytes())
        .await
        .expect("delete_indexed");
    assert!(!again, "deleting a missing session deletes nothing");
}

/// 100 sessions created at once under one term (100 logins of one user) are all found, and
/// 100 concurrent saves that take the term from half of them leave exactly the other half.
///
/// ```
/// use std::sync::Arc;
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::concurrent_index_writes_are_all_kept(Arc::new(MemoryStore::new())).await;
/// # });
/// ```
pub async fn concurrent_index_writes_are_all_kept<S: SessionStore>(store: Arc<S>) {
    let term = fresh_term();
    let tasks: Vec<_> = (0..100)
        .map(|n| {
            let (store, term) = (Arc::clone(&store), term.clone());
            tokio::spawn(async move {
                let device = format!("device{n}");
                created(
                    &*store,
                    &[(INDEX, &term), ("device", &device)],
                    in_a_minute(),
                )
                .await
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.push(task.await.expect("creating task"));
    }
    assert_eq!(
        found(&*store, INDEX, &term).await,
        ids(&all.iter().collect::<Vec<_>>()),
        "every one of 100 concurrent creates under one term is found"
    );
    let tasks: Vec<_> = all
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let (store, id) = (Arc::clone(&store), id.clone());
            tokio::spawn(async move {
                let change = if n % 2 == 0 {
                    patch(&[], &[INDEX], in_a_minute())
                } else {
                    patch(&[("seen", "1")], &[], in_a_minute())
                };
                store.save(&id, &change).await.map(|_| ())
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("saving task").expect("a concurrent save");
    }
    let odd: Vec<&SessionId> = all.iter().skip(1).step_by(2).collect();
    assert_eq!(
        found(&*store, INDEX, &term).await,
        ids(&odd),
        "concurrent saves that remove the term leave exactly the sessions that keep it"
    );
    for id in &all {
        store.delete(id).await.expect("delete");
    }
}

/// A store that does not keep the index says so: `supports_index()` is `false` and the
/// index operations fail with [`StoreError::Unsupported`], never an empty answer.
///
/// ```
/// # #[cfg(feature = "cookie-store")]
/// # fn main() {
/// use session_runtime::{conformance, CookieStore, Key};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::no_index_is_an_error(&CookieStore::new(&Key::generate())).await;
/// # });
/// # }
/// # #[cfg(not(feature = "cookie-store"))]
/// # fn main() {}
/// ```
pub async fn no_index_is_an_error<S: SessionStore>(store: &S) {
    assert!(!store.supports_index(), "the store says it does not index");
    let find = store.find_indexed(INDEX, b"term").await;
    assert!(
        matches!(find, Err(StoreError::Unsupported(_))),
        "find_indexed on a store that does not index fails with Unsupported: {find:?}"
    );
    let delete = store
        .delete_indexed(&SessionId::generate(), INDEX, b"term")
        .await;
    assert!(
        matches!(delete, Err(StoreError::Unsupported(_))),
        "delete_indexed on a store that does not index fails with Unsupported: {delete:?}"
    );
}
