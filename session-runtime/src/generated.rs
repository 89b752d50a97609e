//! What the derive's generated code calls (through `__private`): the diagnostic traits
//! that point a missing bound at the user's field, and the lazy accessor helpers.

use std::{any::Any, borrow::Cow, sync::OnceLock};

use serde::{de::DeserializeOwned, Serialize};

use crate::{
    chain::Chain,
    changes::FieldState,
    codec::Codec,
    error::DecodeError,
    record::RawRecord,
    schema::{Schema, SessionData},
    CodecError,
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

/// The stored bytes of field `index`, `None` when absent. Not generic, so that the lookup and
/// its logging are compiled once, not once per field type.
fn stored_bytes<'r>(
    raw: &'r RawRecord,
    schema: &'static Schema,
    index: usize,
) -> Result<Option<Cow<'r, [u8]>>, DecodeError> {
    let info = &schema.fields()[index];
    match raw.value(info.store_key()) {
        Ok(bytes) => Ok(bytes),
        Err(_) => {
            tracing::warn!(
                schema = schema.name(),
                field = info.name(),
                key = info.store_key(),
                "session field's stored value does not open (sealed for another session or field, under a key this layer does not have, or written in clear); using its default"
            );
            Err(DecodeError::Sealed {
                key: info.store_key().to_owned(),
            })
        }
    }
}

/// Logs and wraps the decode failure of field `index` (not generic, for the same reason).
#[cold]
fn decode_failed(schema: &'static Schema, index: usize, source: CodecError) -> DecodeError {
    let info = &schema.fields()[index];
    tracing::warn!(
        schema = schema.name(),
        field = info.name(),
        key = info.store_key(),
        error = %Chain(&source),
        "session field failed to decode; using its default"
    );
    DecodeError::Field {
        schema: schema.name(),
        field: info.name(),
        source,
    }
}

// ---- One generic function per accessor kind, so that each generated accessor is one call.

/// What every accessor of the generated type shares: the stored record, which fields
/// changed, and the whole struct once `data()` built it (the fields' cells are empty then),
/// boxed so that the accessor type, built for every request, stays small.
#[doc(hidden)]
pub struct Core<S> {
    #[doc(hidden)]
    pub raw: RawRecord,
    #[doc(hidden)]
    pub state: FieldState,
    #[doc(hidden)]
    pub whole: Option<Box<S>>,
}

impl<S> Core<S> {
    /// Accessors over `raw`, nothing decoded yet.
    #[doc(hidden)]
    #[inline]
    pub fn new(raw: RawRecord, state: FieldState) -> Self {
        Self {
            raw,
            state,
            whole: None,
        }
    }
}

/// What a field's accessors know of it at compile time: generated as one constant per
/// field, so that a field costs its crate four one-call accessors and this constant.
///
/// `decode` is `None` for a `skip` field, which is never stored; `member` and
/// `member_mut` reach field `index` in the whole struct, once `data()` built it: one
/// function for every field of the struct, instead of one closure per field and accessor.
#[doc(hidden)]
pub struct FieldDef<S, F> {
    index: usize,
    decode: Option<DecodeFn<F>>,
    default: fn() -> F,
    member: Member<S>,
    member_mut: MemberMut<S>,
}

/// Field `index` of the whole struct `S`.
#[doc(hidden)]
pub type Member<S> = fn(&S, usize) -> &dyn Any;

/// Field `index` of the whole struct `S`, mutably.
#[doc(hidden)]
pub type MemberMut<S> = fn(&mut S, usize) -> &mut dyn Any;

impl<S, F> FieldDef<S, F> {
    /// Stored field `index`, decoded with `decode`.
    #[doc(hidden)]
    pub const fn stored(
        index: usize,
        decode: DecodeFn<F>,
        default: fn() -> F,
        member: Member<S>,
        member_mut: MemberMut<S>,
    ) -> Self {
        Self::skipped(index, default, member, member_mut).decoded_by(decode)
    }

    /// Field `index`, never stored (`#[session(skip)]`).
    #[doc(hidden)]
    pub const fn skipped(
        index: usize,
        default: fn() -> F,
        member: Member<S>,
        member_mut: MemberMut<S>,
    ) -> Self {
        Self {
            index,
            decode: None,
            default,
            member,
            member_mut,
        }
    }

    const fn decoded_by(mut self, decode: DecodeFn<F>) -> Self {
        self.decode = Some(decode);
        self
    }
}

impl<S: SessionData, F: Any> FieldDef<S, F> {
    /// The field's value from `raw` (or its default), and the failure that gave the default
    /// instead of a stored value. The one generic decode path, so that each field type
    /// compiles it once.
    fn decode(&self, raw: &RawRecord) -> (F, Option<DecodeError>) {
        let Some(decode) = self.decode else {
            return ((self.default)(), None);
        };
        let error = match stored_bytes(raw, S::SCHEMA, self.index) {
            Ok(Some(bytes)) => match decode(&bytes) {
                Ok(value) => return (value, None),
                Err(source) => decode_failed(S::SCHEMA, self.index, source),
            },
            Ok(None) => return ((self.default)(), None),
            Err(error) => error,
        };
        ((self.default)(), Some(error))
    }

    /// The cell's value, decoded into it on first use. Every path that fills a cell comes
    /// through here (one `OnceLock` initializer per field type): `value` goes in as is when
    /// given, and a decode failure is left in `error`.
    fn fill<'c>(
        &self,
        raw: &RawRecord,
        cell: &'c OnceLock<F>,
        value: Option<F>,
        error: &mut Option<DecodeError>,
    ) -> &'c F {
        cell.get_or_init(|| match value {
            Some(value) => value,
            None => {
                let (value, failure) = self.decode(raw);
                *error = failure;
                value
            }
        })
    }

    /// The field in the whole struct.
    fn member<'w>(&self, whole: &'w S) -> &'w F {
        match (self.member)(whole, self.index).downcast_ref() {
            Some(value) => value,
            None => unreachable!(
                "field {} of {} has its own type",
                self.index,
                S::SCHEMA.name()
            ),
        }
    }

    /// The field in the whole struct, mutably.
    fn member_mut<'w>(&self, whole: &'w mut S) -> &'w mut F {
        match (self.member_mut)(whole, self.index).downcast_mut() {
            Some(value) => value,
            None => unreachable!(
                "field {} of {} has its own type",
                self.index,
                S::SCHEMA.name()
            ),
        }
    }

    /// The value out of the cell, or decoded when the cell is empty.
    fn take(&self, raw: &RawRecord, cell: &mut OnceLock<F>) -> F {
        match cell.take() {
            Some(value) => value,
            None => self.decode(raw).0,
        }
    }
}

/// `f()`.
#[doc(hidden)]
#[inline]
pub fn field_get<'a, S: SessionData, F: Any>(
    core: &'a Core<S>,
    cell: &'a OnceLock<F>,
    def: &FieldDef<S, F>,
) -> &'a F {
    match &core.whole {
        Some(whole) => def.member(whole),
        // A decode failure was logged; the default stands in.
        None => def.fill(&core.raw, cell, None, &mut None),
    }
}

/// `set_f(value)`: marks the field replaced (when it is stored).
#[doc(hidden)]
#[inline]
pub fn field_set<S: SessionData, F: Any>(
    core: &mut Core<S>,
    cell: &mut OnceLock<F>,
    def: &FieldDef<S, F>,
    value: F,
) {
    if def.decode.is_some() {
        core.state.mark_replaced(def.index);
    }
    match &mut core.whole {
        Some(whole) => *def.member_mut(whole) = value,
        None => {
            let _ = cell.take();
            def.fill(&core.raw, cell, Some(value), &mut None);
        }
    }
}

/// `f_mut()`: marks the field changed (when it is stored).
#[doc(hidden)]
#[inline]
pub fn field_mut<'a, S: SessionData, F: Any>(
    core: &'a mut Core<S>,
    cell: &'a mut OnceLock<F>,
    def: &FieldDef<S, F>,
) -> &'a mut F {
    if def.decode.is_some() {
        core.state.mark_set(def.index);
    }
    match &mut core.whole {
        Some(whole) => def.member_mut(whole),
        None => {
            def.fill(&core.raw, cell, None, &mut None);
            match cell.get_mut() {
                Some(value) => value,
                None => unreachable!("filled above"),
            }
        }
    }
}

/// `take_f()`: marks the field removed (when it is stored) and leaves its default.
#[doc(hidden)]
#[inline]
pub fn field_take<S: SessionData, F: Any>(
    core: &mut Core<S>,
    cell: &mut OnceLock<F>,
    def: &FieldDef<S, F>,
) -> F {
    if def.decode.is_some() {
        core.state.mark_removed(def.index);
    }
    match &mut core.whole {
        Some(whole) => std::mem::replace(def.member_mut(whole), (def.default)()),
        None => {
            let value = def.take(&core.raw, cell);
            def.fill(&core.raw, cell, Some((def.default)()), &mut None);
            value
        }
    }
}

/// Decodes field `def` into its cell if it is not yet (for `decode_all`): its failure.
#[doc(hidden)]
pub fn field_force<S: SessionData, F: Any>(
    cell: &mut OnceLock<F>,
    raw: &RawRecord,
    def: &FieldDef<S, F>,
) -> Option<DecodeError> {
    let mut error = None;
    def.fill(raw, cell, None, &mut error);
    error
}

/// The field's value out of its cell (for the whole struct `data()` builds).
#[doc(hidden)]
pub fn field_take_whole<S: SessionData, F: Any>(
    cell: &mut OnceLock<F>,
    raw: &RawRecord,
    def: &FieldDef<S, F>,
) -> F {
    def.take(raw, cell)
}
