//! Checks on the schema as a whole: store keys, namespace, attribute combinations and
//! accessor names.

use std::collections::BTreeMap;

use proc_macro2::Span;

use crate::{ast::Schema, ctxt::Ctxt, symbol};

pub(crate) fn check(cx: &mut Ctxt, schema: &Schema<'_>) {
    check_version(cx, schema);
    check_namespace(cx, schema);
    check_keys(cx, schema);
    check_accessors(cx, schema);
    check_field_types(cx, schema);
}

/// A borrowed field type (`&'static str`) cannot be loaded from a store, which hands out
/// bytes that do not live that long: serde's error for it ("implementation of `Deserialize`
/// is not general enough") does not say what to write instead, so this does, at the `&`.
fn check_field_types(cx: &mut Ctxt, schema: &Schema<'_>) {
    for field in &schema.fields {
        if field.attrs.skip.is_some() {
            continue;
        }
        if let Some(reference) = find_reference(field.ty) {
            let owned = match &*reference.elem {
                syn::Type::Path(path) if path.path.is_ident("str") => {
                    "`String`, or `Cow<'static, str>`".to_owned()
                }
                syn::Type::Slice(slice) => {
                    format!("`Vec<{}>`", quote::ToTokens::to_token_stream(&*slice.elem))
                }
                other => format!("`{}`", quote::ToTokens::to_token_stream(other)),
            };
            cx.error_spanned_by(
                reference,
                format!(
                    "session field `{}` borrows its value, but a stored field is decoded into a \
                     value of its own on every load; use an owned type instead: {owned}",
                    field.name()
                ),
            );
        }
    }
}

/// The first reference type in `ty`, looking through paths' type arguments, tuples, arrays,
/// slices and groups.
fn find_reference(ty: &syn::Type) -> Option<&syn::TypeReference> {
    match ty {
        syn::Type::Reference(reference) => Some(reference),
        syn::Type::Paren(inner) => find_reference(&inner.elem),
        syn::Type::Group(inner) => find_reference(&inner.elem),
        syn::Type::Array(array) => find_reference(&array.elem),
        syn::Type::Slice(slice) => find_reference(&slice.elem),
        syn::Type::Tuple(tuple) => tuple.elems.iter().find_map(find_reference),
        syn::Type::Path(path) => {
            path.path
                .segments
                .iter()
                .find_map(|segment| match &segment.arguments {
                    syn::PathArguments::AngleBracketed(args) => {
                        args.args.iter().find_map(|arg| match arg {
                            syn::GenericArgument::Type(ty) => find_reference(ty),
                            _ => None,
                        })
                    }
                    _ => None,
                })
        }
        _ => None,
    }
}

fn check_version(cx: &mut Ctxt, schema: &Schema<'_>) {
    if let (Some(migrate), None) = (&schema.attrs.migrate, &schema.attrs.version) {
        cx.error_spanned_by(
            migrate,
            "`migrate` needs `version`: a migration turns records of older versions into the \
             current one, so declare the current version, e.g. `#[session(version = 2, migrate = ...)]`",
        );
    }
}

fn key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        Some("must not be empty".to_owned())
    } else if key.starts_with(symbol::RESERVED_KEY_PREFIX) {
        Some(format!(
            "starts with `{}`, which is reserved for the session's own metadata",
            symbol::RESERVED_KEY_PREFIX
        ))
    } else if key.contains(symbol::NAMESPACE_SEPARATOR) {
        Some(format!(
            "contains `{}`, which separates a namespace from its keys",
            symbol::NAMESPACE_SEPARATOR
        ))
    } else if key.contains(symbol::ENTRY_SEPARATOR) {
        Some(format!(
            "contains `{}`, which separates a map field's key from its entries' keys",
            symbol::ENTRY_SEPARATOR
        ))
    } else {
        None
    }
}

fn check_namespace(cx: &mut Ctxt, schema: &Schema<'_>) {
    if let Some(lit) = &schema.attrs.namespace {
        if let Some(problem) = key_problem(&lit.value()) {
            cx.error_spanned_by(
                lit,
                format!(
                    "the namespace `{}` {problem}; choose another, e.g. `namespace = \"cart\"`",
                    lit.value()
                ),
            );
        }
    }
}

fn check_keys(cx: &mut Ctxt, schema: &Schema<'_>) {
    let mut seen: BTreeMap<String, &syn::Ident> = BTreeMap::new();
    for field in &schema.fields {
        if let (Some(_), Some(rename)) = (field.attrs.skip, &field.attrs.rename) {
            cx.error_spanned_by(
                rename,
                format!(
                    "field `{}` is `skip`, so it is never stored and `rename` has no effect; remove one of them",
                    field.name()
                ),
            );
            continue;
        }
        if let (Some(_), Some(index)) = (field.attrs.skip, field.attrs.index) {
            cx.push(syn::Error::new(
                index,
                format!(
                    "field `{}` is `skip`, so it is never stored and cannot index sessions; remove one of them",
                    field.name()
                ),
            ));
            continue;
        }
        if let Some(entries) = &field.attrs.entries {
            let conflict = if field.attrs.skip.is_some() {
                Some("`skip`, so it is never stored")
            } else if field.attrs.index.is_some() {
                Some("`index`, and an index term is one value, not one per entry")
            } else if field.attrs.default.is_some() {
                Some("`default`, but a map stored entry by entry starts empty")
            } else {
                None
            };
            if let Some(conflict) = conflict {
                cx.push(syn::Error::new(
                    entries.span,
                    format!(
                        "field `{}` is `entries` and {conflict}; remove one of them",
                        field.name()
                    ),
                ));
                continue;
            }
            let is_map = match field.ty {
                syn::Type::Path(path) => path
                    .path
                    .segments
                    .last()
                    .is_some_and(|last| last.ident == "BTreeMap" || last.ident == "HashMap"),
                _ => false,
            };
            if !is_map {
                cx.error_spanned_by(
                    field.ty,
                    format!(
                        "field `{}` is `entries`, which stores a map entry by entry: its type must \
                         be a `BTreeMap<K, V>` or a `HashMap<K, V>`, not `{}`",
                        field.name(),
                        quote::ToTokens::to_token_stream(field.ty)
                            .to_string()
                            .replace(" < ", "<")
                            .replace(" >", ">")
                            .replace(" ,", ",")
                    ),
                );
                continue;
            }
            if let Some(lit) = &entries.max_key_len {
                if lit
                    .base10_parse::<u64>()
                    .is_ok_and(|n| n > symbol::MAX_KEY_LEN_LIMIT)
                {
                    cx.error_spanned_by(
                        lit,
                        format!(
                            "`max_key_len` may be at most {}: an entry's store key must fit the \
                             SQL stores' name column with its field's key",
                            symbol::MAX_KEY_LEN_LIMIT
                        ),
                    );
                }
            }
        }
        if field.attrs.skip.is_some() {
            continue;
        }
        let key = field.key();
        if let Some(problem) = key_problem(&key) {
            let fix = if field.attrs.rename.is_some() {
                "choose another `rename`".to_owned()
            } else {
                format!(
                    "give it another store key with `#[session(rename = \"...\")]` on `{}`",
                    field.name()
                )
            };
            cx.push(syn::Error::new(
                field.key_span(),
                format!("the store key `{key}` {problem}; {fix}"),
            ));
            continue;
        }
        if let Some(first) = seen.get(&key) {
            cx.push(syn::Error::new(
                field.key_span(),
                format!(
                    "duplicate store key `{key}`: field `{}` already uses it; each field needs its own \
                     key, so change or remove a `rename`",
                    first.to_string().trim_start_matches("r#")
                ),
            ));
        } else {
            seen.insert(key, field.ident);
        }
    }
}

/// The accessor names generated for a field called `name`.
pub(crate) fn accessor_names(name: &str) -> [String; 4] {
    [
        name.to_owned(),
        format!("set_{name}"),
        format!("{name}_mut"),
        format!("take_{name}"),
    ]
}

fn check_accessors(cx: &mut Ctxt, schema: &Schema<'_>) {
    let mut owners: BTreeMap<String, (String, Span)> = BTreeMap::new();
    for field in &schema.fields {
        let name = field.name();
        // The getter and `_mut` carry the field's name first: one error for both.
        if name.starts_with(symbol::GENERATED_PREFIX) {
            cx.error_spanned_by(
                field.ident,
                format!(
                    "field `{name}` would generate the accessor `{name}()`, and names starting \
                     with `{prefix}` are the derive's own; rename the Rust field and keep its store \
                     key with `#[session(rename = \"{key}\")]`",
                    prefix = symbol::GENERATED_PREFIX,
                    key = field.key()
                ),
            );
        }
        for accessor in accessor_names(&name) {
            if symbol::RESERVED_METHODS.contains(&accessor.as_str()) {
                cx.error_spanned_by(
                    field.ident,
                    format!(
                        "field `{name}` would generate the accessor `{accessor}()`, which clashes with \
                         the method `TypedSession::{accessor}`; rename the Rust field and keep its store \
                         key with `#[session(rename = \"{key}\")]`",
                        key = field.key()
                    ),
                );
            }
            if let Some((other, _)) = owners.get(&accessor) {
                cx.error_spanned_by(
                    field.ident,
                    format!(
                        "field `{name}` would generate the accessor `{accessor}()`, which field `{other}` \
                         also generates; rename one of the two fields"
                    ),
                );
            } else {
                owners.insert(accessor, (name.clone(), field.ident.span()));
            }
        }
    }
}
