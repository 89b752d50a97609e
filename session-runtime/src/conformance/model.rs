//! Random operations checked against a model of the store contract.

use std::{
    borrow::Cow,
    time::{Duration, SystemTime},
};

use bytes::Bytes;

use crate::{
    store::{LoadKeys, Patch},
    SessionId, SessionStore, StoreError,
};

/// How many operations [`random_operations_match_a_model`] runs.
const MODEL_STEPS: usize = 400;
/// The store keys the random operations use (a namespaced one and a non-ASCII one among
/// them).
const MODEL_KEYS: [&str; 4] = ["a", "b", "ns.c", "ü"];

/// A live record as the contract says it must be.
#[derive(Debug, Clone)]
struct Modelled {
    fields: std::collections::BTreeMap<String, Vec<u8>>,
    expires_at: SystemTime,
}

/// Random sequences of creates, saves, regenerates, touches, deletes and loads over a
/// handful of sessions and keys, every answer and every record checked against a model of
/// the contract: which IDs are live, which fields each record holds (set, overwritten,
/// removed, carried by a regenerate), which writes must fail with
/// [`StoreError::NotFound`] or [`StoreError::Collision`], and that a write with an expiry
/// in the past ends the record at once. Values are arbitrary bytes, empty ones included.
///
/// The operations come from `seed`; a failure names it, so the same sequence can be run
/// again. [`run`](super::run) calls it with a random seed.
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::random_operations_match_a_model(&MemoryStore::new(), 7).await;
/// # });
/// ```
pub async fn random_operations_match_a_model<S: SessionStore>(store: &S, seed: u64) {
    use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
    use std::collections::HashMap;

    let mut rng = StdRng::seed_from_u64(seed);
    let mut model: HashMap<SessionId, Modelled> = HashMap::new();
    // Every ID used so far, live or not: writes to dead ones must fail.
    let mut ids: Vec<SessionId> = Vec::new();

    for step in 0..MODEL_STEPS {
        let at = |what: &str| format!("seed {seed}, step {step}: {what}");
        let now = SystemTime::now();
        // Expiries are far from now either way, so the model never races the clock.
        let random_patch = |rng: &mut StdRng| {
            let mut keys = MODEL_KEYS;
            keys.shuffle(rng);
            let set = rng.gen_range(0..=3);
            let remove = rng.gen_range(0..=2).min(keys.len() - set);
            Patch {
                set: keys[..set]
                    .iter()
                    .map(|k| {
                        let len = rng.gen_range(0..12);
                        let value: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                        (Cow::Owned((*k).to_owned()), Bytes::from(value))
                    })
                    .collect(),
                remove: keys[set..set + remove]
                    .iter()
                    .map(|k| Cow::Owned((*k).to_owned()))
                    .collect(),
                expires_at: if rng.gen_ratio(1, 10) {
                    now - Duration::from_secs(30)
                } else {
                    now + Duration::from_secs(rng.gen_range(60..3600))
                },
            }
        };
        let apply = |record: &mut Modelled, patch: &Patch| {
            for key in &patch.remove {
                record.fields.remove(key.as_ref());
            }
            for (key, value) in &patch.set {
                record.fields.insert(key.to_string(), value.to_vec());
            }
            record.expires_at = patch.expires_at;
        };
        let known = |rng: &mut StdRng, ids: &[SessionId]| ids.choose(rng).cloned();

        let mut touched: Vec<SessionId> = Vec::new();
        match rng.gen_range(0..6) {
            // Create, mostly under a new ID, sometimes under one already used.
            0 => {
                let reuse = rng.gen_ratio(1, 5);
                let id = match known(&mut rng, &ids).filter(|_| reuse) {
                    Some(id) => id,
                    None => {
                        let id = SessionId::generate();
                        ids.push(id.clone());
                        id
                    }
                };
                let patch = random_patch(&mut rng);
                let result = store.create(&id, &patch).await;
                let id = if model.contains_key(&id) {
                    assert!(
                        matches!(result, Err(StoreError::Collision)),
                        "{}",
                        at(&format!("create over a live record: {result:?}"))
                    );
                    id
                } else {
                    let new = result.unwrap_or_else(|e| panic!("{}", at(&format!("create: {e}"))));
                    let mut record = Modelled {
                        fields: Default::default(),
                        expires_at: patch.expires_at,
                    };
                    apply(&mut record, &patch);
                    let id = follow(new, id, &mut ids);
                    model.insert(id.clone(), record);
                    id
                };
                touched.push(id);
            }
            // Save or touch: applied to a live record, `NotFound` for any other.
            op @ (1 | 3) => {
                let Some(id) = known(&mut rng, &ids) else {
                    continue;
                };
                let patch = random_patch(&mut rng);
                let (what, result) = if op == 1 {
                    ("save", store.save(&id, &patch).await)
                } else {
                    ("touch", store.touch(&id, patch.expires_at).await)
                };
                match model.remove(&id) {
                    Some(mut record) => {
                        let new =
                            result.unwrap_or_else(|e| panic!("{}", at(&format!("{what}: {e}"))));
                        if op == 1 {
                            apply(&mut record, &patch);
                        } else {
                            record.expires_at = patch.expires_at;
                        }
                        let id = follow(new, id, &mut ids);
                        model.insert(id.clone(), record);
                        touched.push(id);
                    }
                    None => {
                        assert!(
                            matches!(result, Err(StoreError::NotFound)),
                            "{}",
                            at(&format!("{what} of a missing record: {result:?}"))
                        );
                        touched.push(id);
                    }
                }
            }
            // Regenerate, mostly to a new ID, sometimes onto one already used.
            2 => {
                let Some(old) = known(&mut rng, &ids) else {
                    continue;
                };
                let onto_known = rng.gen_ratio(1, 4);
                let new = match known(&mut rng, &ids).filter(|id| onto_known && *id != old) {
                    Some(id) => id,
                    None => {
                        let id = SessionId::generate();
                        ids.push(id.clone());
                        id
                    }
                };
                let patch = random_patch(&mut rng);
                let result = store.regenerate(&old, &new, &patch).await;
                let (old_live, new_live) = (model.contains_key(&old), model.contains_key(&new));
                if !old_live || new_live {
                    // Nothing may change; with both faults either answer is right.
                    let right = match result {
                        Err(StoreError::NotFound) => !old_live,
                        Err(StoreError::Collision) => new_live,
                        _ => false,
                    };
                    assert!(
                        right,
                        "{}",
                        at(&format!(
                            "regenerate (old live: {old_live}, new live: {new_live}): {result:?}"
                        ))
                    );
                } else {
                    let replaced =
                        result.unwrap_or_else(|e| panic!("{}", at(&format!("regenerate: {e}"))));
                    let mut record = model.remove(&old).expect("checked live");
                    apply(&mut record, &patch);
                    let new = follow(replaced, new, &mut ids);
                    model.insert(new.clone(), record);
                    touched.push(new);
                }
                touched.push(old);
            }
            // Delete.
            4 => {
                let Some(id) = known(&mut rng, &ids) else {
                    continue;
                };
                store
                    .delete(&id)
                    .await
                    .unwrap_or_else(|e| panic!("{}", at(&format!("delete: {e}"))));
                model.remove(&id);
                touched.push(id);
            }
            // A load of any ID, even an untouched one.
            _ => touched.extend(known(&mut rng, &ids)),
        }
        // A record whose expiry has passed is gone.
        model.retain(|_, record| record.expires_at > now);

        for id in &touched {
            let loaded = store
                .load(id, LoadKeys::All)
                .await
                .unwrap_or_else(|e| panic!("{}", at(&format!("load: {e}"))));
            match (model.get(id), loaded) {
                (None, None) => {}
                (Some(expected), Some(record)) => {
                    let fields: std::collections::BTreeMap<String, Vec<u8>> = record
                        .fields
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_vec()))
                        .collect();
                    assert_eq!(fields, expected.fields, "{}", at("the record's fields"));
                    if let Some(expires_at) = record.expires_at {
                        let off = expires_at
                            .duration_since(expected.expires_at)
                            .unwrap_or_else(|e| e.duration());
                        assert!(
                            off <= Duration::from_secs(1),
                            "{}",
                            at(&format!("the record's expiry is off by {off:?}"))
                        );
                    }
                }
                (expected, loaded) => panic!(
                    "{}",
                    at(&format!(
                        "load: the model has {expected:?}, the store {:?}",
                        loaded.map(|r| r.fields)
                    ))
                ),
            }
        }
    }
}

/// The ID to follow after a write: the store's replacement, if it chose one.
fn follow(replaced: Option<SessionId>, id: SessionId, ids: &mut Vec<SessionId>) -> SessionId {
    match replaced {
        Some(new) => {
            ids.push(new.clone());
            new
        }
        None => id,
    }
}
