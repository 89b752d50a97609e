//! What the derive's generated code calls (through `__private`): the diagnostic traits
//! that point a missing bound at the user's field, and the lazy accessor helpers.

use std::sync::OnceLock;

use serde::{de::DeserializeOwned, Serialize};

use crate::{
    chain::Chain, changes::FieldState, codec::Codec, error::DecodeError, record::RawRecord,
    schema::Schema, CodecError,
};

/// Implemented for every type a session field can store: the derive encodes and decodes
/// persisted fields through it, so a type that is not `Serialize + DeserializeOwned` gets one
/// error that points at the field.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a session field",
    label = "this field's type must implement `serde::Serialize` and `serde::de::DeserializeOwned`",
    note = "derive them with `#[derive(serde::Serialize, serde::Deserialize)]`, or mark the field `#[session(skip)]` to keep it out of the store"
)]
pub trait Storable: Sized {
    /// Encodes the value with `C`.
    fn encode_with<C: Codec>(&self) -> Result<Vec<u8>, CodecError>;
    /// Decodes a value with `C`.
    fn decode_with<C: Codec>(bytes: &[u8]) -> Result<Self, CodecError>;
}

impl<T: Serialize + DeserializeOwned> Storable for T {
    #[inline]
    fn encode_with<C: Codec>(&self) -> Result<Vec<u8>, CodecError> {
        C::encode(self)
    }
    #[inline]
    fn decode_with<C: Codec>(bytes: &[u8]) -> Result<Self, CodecError> {
        C::decode(bytes)
    }
}

/// Implemented for every type a session field can hold: a request's extractors share the
/// session across threads. The derive checks it once per field, at the field's type, so a
/// type that is not `Send + Sync` gets one error there.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be held in a session field: it is not `Send` and `Sync`",
    label = "a session is shared across threads by the request's extractors",
    note = "use a thread-safe type (`Arc<Mutex<..>>` instead of `Rc<RefCell<..>>`, an atomic or a plain value instead of `Cell`), or keep the value out of the session"
)]
pub trait SessionField: Send + Sync {}

impl<T: Send + Sync> SessionField for T {}

/// Checks at compile time that `T` can be a session field; the derive calls it for each.
#[doc(hidden)]
#[inline]
pub const fn assert_field<T: SessionField + ?Sized>() {}

/// The default of a field without `#[session(default = path)]`.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "session field of type `{Self}` has no default",
    label = "`{Self}` does not implement `Default`",
    note = "a field takes its default when it is absent from the store or taken: implement `Default` for `{Self}`, or name a function with `#[session(default = path::to::fn)]`"
)]
pub trait FieldDefault {
    /// The default value.
    fn field_default() -> Self;
}

impl<T: Default> FieldDefault for T {
    #[inline]
    fn field_default() -> Self {
        T::default()
    }
}

// ---- Helpers for the generated accessors (through `__private`). ----

#[doc(hidden)]
/// Decodes a field's stored bytes: generated once per field, so a field type that cannot be
/// stored is reported once, at the field.
pub type DecodeFn<F> = fn(&[u8]) -> Result<F, CodecError>;

/// Decodes field `index` of `schema` from `raw`, or gives its default when absent. A value
/// that fails to decode gives the default too, and the failure is returned.
fn decode_or_default<F>(
    raw: &RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: DecodeFn<F>,
    default: impl FnOnce() -> F,
) -> (F, Option<DecodeError>) {
    let info = &schema.fields()[index];
    let bytes = match raw.value(info.store_key()) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return (default(), None),
        Err(_) => {
            tracing::warn!(
                schema = schema.name(),
                field = info.name(),
                key = info.store_key(),
                "session field's stored value does not open (sealed for another session or field, under a key this layer does not have, or written in clear); using its default"
            );
            return (
                default(),
                Some(DecodeError::Sealed {
                    key: info.store_key().to_owned(),
                }),
            );
        }
    };
    match decode(&bytes) {
        Ok(value) => (value, None),
        Err(source) => {
            tracing::warn!(
                schema = schema.name(),
                field = info.name(),
                key = info.store_key(),
                error = %Chain(&source),
                "session field failed to decode; using its default"
            );
            (
                default(),
                Some(DecodeError::Field {
                    schema: schema.name(),
                    field: info.name(),
                    source,
                }),
            )
        }
    }
}

#[inline]
fn lazy_get<'a, F>(
    cell: &'a OnceLock<F>,
    raw: &RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: DecodeFn<F>,
    default: impl FnOnce() -> F,
) -> &'a F {
    cell.get_or_init(|| decode_or_default(raw, schema, index, decode, default).0)
}

#[inline]
fn lazy_get_mut<'a, F>(
    cell: &'a mut OnceLock<F>,
    raw: &RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: DecodeFn<F>,
    default: impl FnOnce() -> F,
) -> &'a mut F {
    // A decode failure was logged by `decode_or_default`; the default stands in.
    let _ = lazy_force(cell, raw, schema, index, decode, default);
    cell.get_mut().expect("initialized by lazy_force")
}

#[inline]
fn lazy_take<F>(
    cell: &mut OnceLock<F>,
    raw: &RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: DecodeFn<F>,
    default: impl FnOnce() -> F,
) -> F {
    match cell.take() {
        Some(value) => value,
        None => decode_or_default(raw, schema, index, decode, default).0,
    }
}

fn lazy_force<F>(
    cell: &mut OnceLock<F>,
    raw: &RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: DecodeFn<F>,
    default: impl FnOnce() -> F,
) -> Option<DecodeError> {
    if cell.get().is_some() {
        return None;
    }
    let (value, error) = decode_or_default(raw, schema, index, decode, default);
    *cell = OnceLock::from(value);
    error
}

#[inline]
fn plain_get<F>(cell: &OnceLock<F>, default: impl FnOnce() -> F) -> &F {
    cell.get_or_init(default)
}

#[inline]
fn plain_get_mut<F>(cell: &mut OnceLock<F>, default: impl FnOnce() -> F) -> &mut F {
    if cell.get().is_none() {
        *cell = OnceLock::from(default());
    }
    cell.get_mut().expect("initialized above")
}

#[inline]
fn plain_take<F>(cell: &mut OnceLock<F>, default: impl FnOnce() -> F) -> F {
    cell.take().unwrap_or_else(default)
}

// ---- One generic function per accessor kind, so that each generated accessor is one call.

/// How a field's accessor reaches its value when the whole struct was not built: the
/// field's own cell, decoded from `raw` on first use (`decode` is `None` for a `skip`
/// field, which is never stored), or its default.
#[doc(hidden)]
pub struct Slot<'a, F> {
    raw: &'a RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: Option<DecodeFn<F>>,
    default: fn() -> F,
}

impl<F> Slot<'_, F> {
    fn value<'c>(&self, cell: &'c OnceLock<F>) -> &'c F {
        match self.decode {
            Some(decode) => lazy_get(
                cell,
                self.raw,
                self.schema,
                self.index,
                decode,
                self.default,
            ),
            None => plain_get(cell, self.default),
        }
    }

    fn value_mut<'c>(&self, cell: &'c mut OnceLock<F>) -> &'c mut F {
        match self.decode {
            Some(decode) => lazy_get_mut(
                cell,
                self.raw,
                self.schema,
                self.index,
                decode,
                self.default,
            ),
            None => plain_get_mut(cell, self.default),
        }
    }

    fn take(&self, cell: &mut OnceLock<F>) -> F {
        match self.decode {
            Some(decode) => lazy_take(
                cell,
                self.raw,
                self.schema,
                self.index,
                decode,
                self.default,
            ),
            None => plain_take(cell, self.default),
        }
    }
}

/// The slot of stored field `index`.
#[doc(hidden)]
#[inline]
pub fn slot<'r, F>(
    raw: &'r RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: Option<DecodeFn<F>>,
    default: fn() -> F,
) -> Slot<'r, F> {
    Slot {
        raw,
        schema,
        index,
        decode,
        default,
    }
}

/// `f()`.
#[doc(hidden)]
#[inline]
pub fn field_get<'a, S, F>(
    whole: &'a Option<S>,
    member: fn(&S) -> &F,
    cell: &'a OnceLock<F>,
    slot: &Slot<'_, F>,
) -> &'a F {
    match whole {
        Some(whole) => member(whole),
        None => slot.value(cell),
    }
}

/// `set_f(value)`: marks the field replaced (when it is stored).
#[doc(hidden)]
#[inline]
pub fn field_set<S, F>(
    state: &mut FieldState,
    whole: &mut Option<S>,
    member: fn(&mut S) -> &mut F,
    cell: &mut OnceLock<F>,
    slot: &Slot<'_, F>,
    value: F,
) {
    if slot.decode.is_some() {
        state.mark_replaced(slot.index);
    }
    match whole {
        Some(whole) => *member(whole) = value,
        None => *cell = OnceLock::from(value),
    }
}

/// `f_mut()`: marks the field changed (when it is stored).
#[doc(hidden)]
#[inline]
pub fn field_mut<'a, S, F>(
    state: &mut FieldState,
    whole: &'a mut Option<S>,
    member: fn(&mut S) -> &mut F,
    cell: &'a mut OnceLock<F>,
    slot: &Slot<'_, F>,
) -> &'a mut F {
    if slot.decode.is_some() {
        state.mark_set(slot.index);
    }
    match whole {
        Some(whole) => member(whole),
        None => slot.value_mut(cell),
    }
}

/// `take_f()`: marks the field removed (when it is stored) and leaves its default.
#[doc(hidden)]
#[inline]
pub fn field_take<S, F>(
    state: &mut FieldState,
    whole: &mut Option<S>,
    member: fn(&mut S) -> &mut F,
    cell: &mut OnceLock<F>,
    slot: &Slot<'_, F>,
) -> F {
    if slot.decode.is_some() {
        state.mark_removed(slot.index);
    }
    match whole {
        Some(whole) => std::mem::replace(member(whole), (slot.default)()),
        None => {
            let value = slot.take(cell);
            *cell = OnceLock::from((slot.default)());
            value
        }
    }
}

/// Decodes field `slot` into its cell if it is not yet (for `decode_all`): its failure.
#[doc(hidden)]
pub fn field_force<F>(cell: &mut OnceLock<F>, slot: &Slot<'_, F>) -> Option<DecodeError> {
    match slot.decode {
        Some(decode) => lazy_force(
            cell,
            slot.raw,
            slot.schema,
            slot.index,
            decode,
            slot.default,
        ),
        None => None,
    }
}

/// The field's value out of its cell (for the whole struct `data()` builds).
#[doc(hidden)]
pub fn field_take_whole<F>(cell: &mut OnceLock<F>, slot: &Slot<'_, F>) -> F {
    slot.take(cell)
}
