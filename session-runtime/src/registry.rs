//! Which schema owns which version key, process-wide. Two schemas that share one (the same
//! `namespace`, or two structs of the same name without one) would read and overwrite each
//! other's fields and stored version, so the second one to be used is refused, naming both.

use std::{
    any::TypeId,
    cell::RefCell,
    collections::HashMap,
    sync::{Mutex, OnceLock, PoisonError},
};

use crate::{SessionData, SessionError};

/// Version key → the schema that first used it.
type Owners = HashMap<&'static str, (TypeId, &'static str)>;

fn owners() -> &'static Mutex<Owners> {
    static OWNERS: OnceLock<Mutex<Owners>> = OnceLock::new();
    OWNERS.get_or_init(Mutex::default)
}

thread_local! {
    /// Schemas this thread already found unshared: the common request checks nothing else.
    static CHECKED: RefCell<Vec<TypeId>> = const { RefCell::new(Vec::new()) };
}

/// Whether schema `T` may use its store keys: it is the only schema with its version key.
pub(crate) fn check<T: SessionData>() -> Result<(), SessionError> {
    let id = TypeId::of::<T>();
    if CHECKED.with(|checked| checked.borrow().contains(&id)) {
        return Ok(());
    }
    let version_key = T::SCHEMA.version_key();
    let name = std::any::type_name::<T>();
    let (owner, owner_name) = *owners()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(version_key)
        .or_insert((id, name));
    if owner != id {
        return Err(SessionError::SchemaConflict {
            version_key,
            first: owner_name,
            second: name,
        });
    }
    CHECKED.with(|checked| checked.borrow_mut().push(id));
    Ok(())
}
