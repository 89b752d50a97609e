//! The intermediate representation: the user's struct and its `#[session(...)]` attributes,
//! parsed and type-checked, each part keeping the tokens it came from for error spans.

use proc_macro2::Span;
use syn::{
    meta::ParseNestedMeta, spanned::Spanned, Data, DeriveInput, Fields, Ident, LitInt, LitStr,
    Path, Type, Visibility,
};

use crate::{ctxt::Ctxt, symbol};

/// Why a struct without fields cannot be a schema.
const NO_FIELDS: &str = "`SessionData` needs at least one named field: each field becomes a \
                         store key and a set of accessors; write `struct Name { field: Type, .. }`";

/// A schema: one struct with named fields.
pub(crate) struct Schema<'a> {
    pub(crate) ident: &'a Ident,
    /// Type and const parameters are allowed: a schema's store keys never depend on them.
    pub(crate) generics: &'a syn::Generics,
    pub(crate) vis: &'a Visibility,
    pub(crate) attrs: ContainerAttrs,
    pub(crate) fields: Vec<Field<'a>>,
}

/// `#[session(...)]` on the struct.
#[derive(Default)]
pub(crate) struct ContainerAttrs {
    pub(crate) version: Option<(u32, LitInt)>,
    pub(crate) migrate: Option<Path>,
    pub(crate) namespace: Option<LitStr>,
    pub(crate) codec: Option<Path>,
    pub(crate) krate: Option<Path>,
    /// `accessors = "Name"`: the accessor type gets this name, next to the struct, so that
    /// its methods show in the crate's docs.
    pub(crate) accessors: Option<Ident>,
}

/// One named field.
pub(crate) struct Field<'a> {
    pub(crate) ident: &'a Ident,
    /// The field's own visibility, which its accessors take.
    pub(crate) vis: &'a Visibility,
    pub(crate) ty: &'a Type,
    pub(crate) attrs: FieldAttrs,
}

/// `#[session(...)]` on a field.
#[derive(Default)]
pub(crate) struct FieldAttrs {
    pub(crate) rename: Option<LitStr>,
    pub(crate) skip: Option<Span>,
    pub(crate) default: Option<Path>,
    pub(crate) index: Option<Span>,
    pub(crate) entries: Option<EntriesAttr>,
}

/// `#[session(entries)]` or `#[session(entries(max = N, max_key_len = N))]`.
pub(crate) struct EntriesAttr {
    pub(crate) span: Span,
    pub(crate) max: Option<syn::LitInt>,
    pub(crate) max_key_len: Option<syn::LitInt>,
}

impl<'a> Schema<'a> {
    /// Parses the input; structural problems (not a struct with named fields) end parsing,
    /// attribute problems are collected in `cx` and parsing goes on.
    pub(crate) fn from_input(cx: &mut Ctxt, input: &'a DeriveInput) -> Option<Self> {
        let named = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => named,
                Fields::Unnamed(fields) => {
                    cx.error_spanned_by(
                        fields,
                        "`SessionData` needs named fields, because each field becomes a store key \
                         and a set of accessors; write `struct Name { field: Type, .. }` instead \
                         of a tuple struct",
                    );
                    return None;
                }
                Fields::Unit => {
                    cx.error_spanned_by(&input.ident, NO_FIELDS);
                    return None;
                }
            },
            Data::Enum(data) => {
                cx.error_spanned_by(
                    data.enum_token,
                    "`SessionData` can only be derived for a struct with named fields, not an enum; \
                     keep the enum as the type of a field: `struct MySession { state: MyEnum }`",
                );
                return None;
            }
            Data::Union(data) => {
                cx.error_spanned_by(
                    data.union_token,
                    "`SessionData` can only be derived for a struct with named fields, not a union",
                );
                return None;
            }
        };

        // One rule for every struct without a field, braced or not: a schema stores fields,
        // and one without any would create sessions that hold nothing.
        if named.named.is_empty() {
            cx.error_spanned_by(&input.ident, NO_FIELDS);
            return None;
        }

        if let Some(lifetime) = input.generics.lifetimes().next() {
            cx.error_spanned_by(
                lifetime,
                "`SessionData` does not support lifetime parameters: a session's fields are \
                 decoded into values of their own on every load; use owned types (`String`, \
                 not `&'a str`)",
            );
        } else if let (true, Some(clause)) = (
            input.generics.params.is_empty(),
            &input.generics.where_clause,
        ) {
            cx.error_spanned_by(
                clause,
                "`SessionData` takes no `where` clause: a schema without generic parameters is \
                 one concrete type, so its bounds either always hold or never do; remove the \
                 clause",
            );
        }

        let attrs = ContainerAttrs::parse(cx, input);
        let fields = named
            .named
            .iter()
            .map(|field| Field {
                ident: field.ident.as_ref().expect("named fields have identifiers"),
                vis: &field.vis,
                ty: &field.ty,
                attrs: FieldAttrs::parse(cx, field),
            })
            .collect();
        Some(Schema {
            ident: &input.ident,
            generics: &input.generics,
            vis: &input.vis,
            attrs,
            fields,
        })
    }

    /// The version the code declares (1 when not given).
    pub(crate) fn version(&self) -> u32 {
        self.attrs.version.as_ref().map_or(1, |(v, _)| *v)
    }
}

impl Field<'_> {
    /// The key inside the schema's namespace: the `rename` value or the field's name.
    pub(crate) fn key(&self) -> String {
        match &self.attrs.rename {
            Some(lit) => lit.value(),
            None => self.ident.to_string().trim_start_matches("r#").to_owned(),
        }
    }

    /// The span to blame for the key: the `rename` literal if any, else the field name.
    pub(crate) fn key_span(&self) -> Span {
        match &self.attrs.rename {
            Some(lit) => lit.span(),
            None => self.ident.span(),
        }
    }

    /// The field's name without a raw-identifier prefix.
    pub(crate) fn name(&self) -> String {
        self.ident.to_string().trim_start_matches("r#").to_owned()
    }
}

fn session_attrs(attrs: &[syn::Attribute]) -> impl Iterator<Item = &syn::Attribute> {
    attrs.iter().filter(|a| a.path().is_ident(symbol::SESSION))
}

fn serde_attrs(attrs: &[syn::Attribute]) -> impl Iterator<Item = &syn::Attribute> {
    attrs.iter().filter(|a| a.path().is_ident(symbol::SERDE))
}

/// What to say about a serde attribute the derive does not honour.
fn serde_unsupported(meta: &ParseNestedMeta<'_>, place: &str) -> syn::Error {
    let name = meta
        .path
        .get_ident()
        .map_or_else(|| "this".to_owned(), ToString::to_string);
    let hint = match place {
        "container" => {
            "keep the struct's store keys with `#[session(rename = \"..\")]` on its fields and \
             `#[session(namespace = \"..\")]` on the struct"
        }
        _ => {
            "a session field is stored with its own type's `Serialize` and `Deserialize`: put \
             serde attributes on that type (a newtype, say), or choose the encoding with \
             `#[session(codec = ..)]`; the derive honours `#[serde(rename = \"..\")]`, \
             `#[serde(skip)]` and `#[serde(default)]` on fields"
        }
    };
    meta.error(format!(
        "`#[serde({name})]` has no effect on `SessionData`'s store, and would be silently \
         ignored; {hint}"
    ))
}

fn unknown(meta: &ParseNestedMeta<'_>, expected: &[&str], place: &str) -> syn::Error {
    let name = meta
        .path
        .get_ident()
        .map_or_else(|| "this".to_owned(), ToString::to_string);
    let list = expected
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    meta.error(format!(
        "unknown session {place} attribute `{name}`; expected one of {list}"
    ))
}

fn duplicate(cx: &mut Ctxt, meta: &ParseNestedMeta<'_>, name: &str) {
    cx.error_spanned_by(&meta.path, format!("duplicate session attribute `{name}`"));
}

fn value_as<T: syn::parse::Parse>(
    meta: &ParseNestedMeta<'_>,
    name: &str,
    expected: &str,
) -> syn::Result<T> {
    let value = meta.value()?;
    value
        .parse::<T>()
        .map_err(|err| syn::Error::new(err.span(), format!("`{name}` expects {expected}")))
}

fn path_from_str(meta: &ParseNestedMeta<'_>, name: &str, example: &str) -> syn::Result<Path> {
    // Accept both `migrate = path::to::fn` and `migrate = "path::to::fn"` (as serde does).
    let value = meta.value()?;
    if value.peek(LitStr) {
        let lit: LitStr = value.parse()?;
        lit.parse::<Path>().map_err(|_| {
            syn::Error::new(
                lit.span(),
                format!("`{name}` expects a path, e.g. {example}"),
            )
        })
    } else {
        value.parse::<Path>().map_err(|err| {
            syn::Error::new(
                err.span(),
                format!("`{name}` expects a path, e.g. {example}"),
            )
        })
    }
}

impl ContainerAttrs {
    fn parse(cx: &mut Ctxt, input: &DeriveInput) -> Self {
        let mut out = ContainerAttrs::default();
        for attr in serde_attrs(&input.attrs) {
            if let Err(err) =
                attr.parse_nested_meta(|meta| Err(serde_unsupported(&meta, "container")))
            {
                cx.push(err);
            }
        }
        for attr in session_attrs(&input.attrs) {
            let result = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident(symbol::VERSION) {
                    let lit: LitInt = value_as(
                        &meta,
                        symbol::VERSION,
                        "an integer literal, e.g. `version = 2`",
                    )?;
                    let value = match lit.base10_parse::<u32>() {
                        Ok(0) => {
                            cx.error_spanned_by(
                                &lit,
                                "`version` starts at 1: version 1 is the first shape of a schema \
                                 and migrations run from older to newer versions",
                            );
                            1
                        }
                        Ok(v) => v,
                        Err(_) => {
                            cx.error_spanned_by(
                                &lit,
                                "`version` expects a positive integer that fits in u32",
                            );
                            1
                        }
                    };
                    if out.version.is_some() {
                        duplicate(cx, &meta, symbol::VERSION);
                    }
                    out.version = Some((value, lit));
                } else if meta.path.is_ident(symbol::MIGRATE) {
                    let path = path_from_str(&meta, symbol::MIGRATE, "`migrate = migrate_cart`")?;
                    if out.migrate.is_some() {
                        duplicate(cx, &meta, symbol::MIGRATE);
                    }
                    out.migrate = Some(path);
                } else if meta.path.is_ident(symbol::NAMESPACE) {
                    let lit: LitStr = value_as(
                        &meta,
                        symbol::NAMESPACE,
                        "a string literal, e.g. `namespace = \"cart\"`",
                    )?;
                    if out.namespace.is_some() {
                        duplicate(cx, &meta, symbol::NAMESPACE);
                    }
                    out.namespace = Some(lit);
                } else if meta.path.is_ident(symbol::CODEC) {
                    let path = path_from_str(&meta, symbol::CODEC, "`codec = MsgPackCodec`")?;
                    if out.codec.is_some() {
                        duplicate(cx, &meta, symbol::CODEC);
                    }
                    out.codec = Some(path);
                } else if meta.path.is_ident(symbol::CRATE) {
                    let lit: LitStr = value_as(
                        &meta,
                        symbol::CRATE,
                        "a string literal, e.g. `crate = \"my_sessions\"`",
                    )?;
                    match lit.parse::<Path>() {
                        Ok(path) => {
                            if out.krate.is_some() {
                                duplicate(cx, &meta, symbol::CRATE);
                            }
                            out.krate = Some(path);
                        }
                        Err(_) => cx.error_spanned_by(
                            &lit,
                            "`crate` expects a path in a string, e.g. `crate = \"my_sessions\"`",
                        ),
                    }
                } else if meta.path.is_ident(symbol::ACCESSORS) {
                    let lit: LitStr = value_as(
                        &meta,
                        symbol::ACCESSORS,
                        "a string literal, e.g. `accessors = \"CartAccessors\"`",
                    )?;
                    match lit.parse::<Ident>() {
                        Ok(name) => {
                            if out.accessors.is_some() {
                                duplicate(cx, &meta, symbol::ACCESSORS);
                            }
                            out.accessors = Some(name);
                        }
                        Err(_) => cx.error_spanned_by(
                            &lit,
                            "`accessors` expects a type name in a string, e.g. `accessors = \"CartAccessors\"`",
                        ),
                    }
                } else {
                    return Err(unknown(&meta, symbol::CONTAINER_KEYS, "container"));
                }
                Ok(())
            });
            if let Err(err) = result {
                cx.push(err);
            }
        }
        out
    }
}

impl FieldAttrs {
    fn parse(cx: &mut Ctxt, field: &syn::Field) -> Self {
        let mut out = FieldAttrs::default();
        for attr in session_attrs(&field.attrs) {
            let result = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident(symbol::RENAME) {
                    let lit: LitStr = value_as(
                        &meta,
                        symbol::RENAME,
                        "a string literal, e.g. `rename = \"th\"`",
                    )?;
                    if out.rename.is_some() {
                        duplicate(cx, &meta, symbol::RENAME);
                    }
                    out.rename = Some(lit);
                } else if meta.path.is_ident(symbol::SKIP) {
                    if meta.input.peek(syn::Token![=]) {
                        return Err(meta.error("`skip` takes no value: write `#[session(skip)]`"));
                    }
                    if out.skip.is_some() {
                        duplicate(cx, &meta, symbol::SKIP);
                    }
                    out.skip = Some(meta.path.span());
                } else if meta.path.is_ident(symbol::INDEX) {
                    if meta.input.peek(syn::Token![=]) {
                        return Err(meta.error("`index` takes no value: write `#[session(index)]`"));
                    }
                    if out.index.is_some() {
                        duplicate(cx, &meta, symbol::INDEX);
                    }
                    out.index = Some(meta.path.span());
                } else if meta.path.is_ident(symbol::ENTRIES) {
                    if meta.input.peek(syn::Token![=]) {
                        return Err(meta.error(
                            "`entries` takes no value: write `#[session(entries)]`, or \
                             `#[session(entries(max = 100, max_key_len = 64))]` for other bounds",
                        ));
                    }
                    if out.entries.is_some() {
                        duplicate(cx, &meta, symbol::ENTRIES);
                    }
                    let mut attr = EntriesAttr {
                        span: meta.path.span(),
                        max: None,
                        max_key_len: None,
                    };
                    if meta.input.peek(syn::token::Paren) {
                        meta.parse_nested_meta(|inner| {
                            let slot = if inner.path.is_ident(symbol::MAX) {
                                &mut attr.max
                            } else if inner.path.is_ident(symbol::MAX_KEY_LEN) {
                                &mut attr.max_key_len
                            } else {
                                return Err(unknown(
                                    &inner,
                                    &[symbol::MAX, symbol::MAX_KEY_LEN],
                                    "`entries`",
                                ));
                            };
                            let lit: syn::LitInt =
                                value_as(&inner, "this bound", "a whole number, e.g. `max = 100`")?;
                            if lit.base10_parse::<u64>().map_or(true, |n| n == 0) {
                                return Err(syn::Error::new(
                                    lit.span(),
                                    "an entries bound must be a whole number of at least 1",
                                ));
                            }
                            *slot = Some(lit);
                            Ok(())
                        })?;
                    }
                    out.entries = Some(attr);
                } else if meta.path.is_ident(symbol::DEFAULT) {
                    // `#[session(default)]`, as serde users write it: the type's `Default`.
                    let path = if meta.input.peek(syn::Token![=]) {
                        path_from_str(&meta, symbol::DEFAULT, "`default = default_theme`")?
                    } else {
                        let span = meta.path.span();
                        syn::parse_quote_spanned!(span=> ::core::default::Default::default)
                    };
                    if out.default.is_some() {
                        duplicate(cx, &meta, symbol::DEFAULT);
                    }
                    out.default = Some(path);
                } else {
                    return Err(unknown(&meta, symbol::FIELD_KEYS, "field"));
                }
                Ok(())
            });
            if let Err(err) = result {
                cx.push(err);
            }
        }
        out.parse_serde(cx, field);
        out
    }

    /// Honours the serde field attributes that mean what a session attribute means (`rename`,
    /// `skip`, `default`) and refuses every other, so none is silently ignored.
    fn parse_serde(&mut self, cx: &mut Ctxt, field: &syn::Field) {
        for attr in serde_attrs(&field.attrs) {
            let result = attr.parse_nested_meta(|meta| {
                let conflict = |name: &str| {
                    meta.error(format!(
                        "`#[serde({name})]` and `#[session({name})]` on one field: keep one"
                    ))
                };
                if meta.path.is_ident(symbol::RENAME) {
                    if !meta.input.peek(syn::Token![=]) {
                        return Err(meta.error(
                            "`SessionData` takes one store key per field: write \
                             `#[session(rename = \"..\")]`",
                        ));
                    }
                    let lit: LitStr = value_as(
                        &meta,
                        symbol::RENAME,
                        "a string literal, e.g. `rename = \"th\"`",
                    )?;
                    if self.rename.is_some() {
                        return Err(conflict(symbol::RENAME));
                    }
                    self.rename = Some(lit);
                } else if meta.path.is_ident(symbol::SKIP) {
                    if self.skip.is_some() {
                        return Err(conflict(symbol::SKIP));
                    }
                    self.skip = Some(meta.path.span());
                } else if meta.path.is_ident(symbol::DEFAULT) {
                    if self.default.is_some() {
                        return Err(conflict(symbol::DEFAULT));
                    }
                    self.default = Some(if meta.input.peek(syn::Token![=]) {
                        path_from_str(&meta, symbol::DEFAULT, "`default = \"default_theme\"`")?
                    } else {
                        let span = meta.path.span();
                        syn::parse_quote_spanned!(span=> ::core::default::Default::default)
                    });
                } else {
                    return Err(serde_unsupported(&meta, "field"));
                }
                Ok(())
            });
            if let Err(err) = result {
                cx.push(err);
            }
        }
    }
}

/// The name of the accessor type generated for the struct `ident`. It lives inside the
/// derive's `const _` block, where it would shadow a user's type of the same name in the
/// field types: hence a name no user writes.
pub(crate) fn fields_ident(ident: &Ident) -> Ident {
    quote::format_ident!("__{}SessionFields", ident)
}

/// The path to the runtime crate: `#[session(crate = "...")]` or `::session_runtime`.
pub(crate) fn runtime_path(schema: Option<&Schema<'_>>) -> Path {
    schema
        .and_then(|s| s.attrs.krate.clone())
        .unwrap_or_else(|| syn::parse_quote!(::session_runtime))
}
