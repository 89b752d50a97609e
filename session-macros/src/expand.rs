//! Writes the `SessionData` impl and the typed accessor type for a valid schema.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;

use crate::{
    ast::{fields_ident, runtime_path, Field, Schema},
    symbol, valid,
};

pub(crate) fn expand(schema: &Schema<'_>) -> TokenStream {
    let krate = runtime_path(Some(schema));
    // Inside the block, the runtime's items are reached through a short alias (as serde's
    // `_serde`); a named accessor type sits outside it, and so spells the whole path.
    let private = if schema.attrs.accessors.is_some() {
        quote!(#krate::__private)
    } else {
        quote!(__sr)
    };
    let ident = schema.ident;
    // A generic schema (its store keys never depend on the parameters): every generated
    // impl takes the struct's generics, plus the bounds its fields' types need.
    let generics = with_field_bounds(schema, &private);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let self_ty = quote!(#ident #ty_generics);
    let is_generic = !schema.generics.params.is_empty();
    let vis = schema.vis;
    let fields_ty = schema
        .attrs
        .accessors
        .clone()
        .unwrap_or_else(|| fields_ident(ident));
    let version = schema.version();
    let name = ident.to_string();
    let namespace = schema.attrs.namespace.as_ref().map(syn::LitStr::value);
    let namespace_tokens = match &namespace {
        Some(ns) => quote!(::core::option::Option::Some(#ns)),
        None => quote!(::core::option::Option::None),
    };
    // The version of a schema is stored under a key of its own, so that schemas sharing
    // a session keep separate versions: the namespace when there is one, else the struct name.
    let version_key = format!(
        "{}v{}{}",
        symbol::RESERVED_KEY_PREFIX,
        symbol::NAMESPACE_SEPARATOR,
        namespace.as_deref().unwrap_or(&name)
    );

    let field_infos = schema.fields.iter().map(|field| {
        let field_name = field.name();
        let persisted = field.attrs.skip.is_none();
        let key = if persisted {
            field.key()
        } else {
            String::new()
        };
        let store_key = match (&namespace, persisted) {
            (_, false) => String::new(),
            (Some(ns), true) => format!("{ns}{}{key}", symbol::NAMESPACE_SEPARATOR),
            (None, true) => key.clone(),
        };
        let index_key = if persisted && field.attrs.index.is_some() {
            format!("{}{store_key}", symbol::INDEX_KEY_PREFIX)
        } else {
            String::new()
        };
        let info =
            quote!(#private::FieldInfo::new(#field_name, #key, #store_key, #persisted, #index_key));
        match (&field.attrs.entries, persisted) {
            (Some(entries), true) => {
                let prefix = format!("{store_key}{}", symbol::ENTRY_SEPARATOR);
                let max = entries
                    .max
                    .as_ref()
                    .map_or_else(|| quote!(#private::DEFAULT_MAX_ENTRIES), |lit| quote!(#lit));
                let max_key_len = entries
                    .max_key_len
                    .as_ref()
                    .map_or_else(|| quote!(#private::DEFAULT_MAX_KEY_LEN), |lit| quote!(#lit));
                quote!(#info.with_entries(#prefix, #max, #max_key_len))
            }
            _ => info,
        }
    });
    // Indexed fields: their term as the session's index sees it, and a typed handle on the
    // user's struct to list and revoke by (with the field's own visibility).
    let indexed: Vec<(&Field<'_>, usize)> = schema
        .fields
        .iter()
        .zip(0..)
        .filter(|(field, _)| field.attrs.skip.is_none() && field.attrs.index.is_some())
        .collect();
    let index_arms = indexed.iter().map(|(field, index)| {
        let ty = self_as(field.ty, &self_ty);
        let getter = getter_ident(field);
        let call = quote_spanned!(field.ty.span()=> #private::index_term::<#ty>(#fields_ty::#getter(self)));
        quote!(#index => #call,)
    });
    let index_term = (!indexed.is_empty()).then(|| {
        quote! {
            fn index_term(&self, __index: ::core::primitive::usize) -> ::core::option::Option<::std::string::String> {
                match __index {
                    #(#index_arms)*
                    _ => ::core::option::Option::None,
                }
            }
        }
    });
    let index_handles = indexed.iter().map(|(field, index)| {
        let ty = self_as(field.ty, &self_ty);
        let vis = field.vis;
        let name = field.name();
        let by = format_ident!("by_{}", name, span = field.ident.span());
        let doc = format!(
            "The session index on `{name}`: list and revoke the sessions that share a value of it \
             (`TypedSession::sessions`, `SessionLayer::sessions`)."
        );
        quote_spanned! {field.ty.span()=>
            #[doc = #doc]
            #[must_use]
            #vis fn #by() -> #private::Index<#self_ty, #ty> {
                #private::Index::new(#index)
            }
        }
    });
    let index_impl = (!indexed.is_empty()).then(|| {
        quote! {
            #[allow(non_snake_case)]
            impl #impl_generics #self_ty #where_clause {
                #(#index_handles)*
            }
        }
    });

    let load_keys: Vec<String> = schema
        .fields
        .iter()
        .filter(|f| f.attrs.skip.is_none())
        .map(|f| {
            let store_key = match &namespace {
                Some(ns) => format!("{ns}{}{}", symbol::NAMESPACE_SEPARATOR, f.key()),
                None => f.key(),
            };
            // A map field's entries: a load key ending in `#` asks for all of them.
            if f.attrs.entries.is_some() {
                format!("{store_key}{}", symbol::ENTRY_SEPARATOR)
            } else {
                store_key
            }
        })
        .collect();
    // An indexed field's term is loaded with it, so a load can tell a missing one.
    let index_keys: Vec<String> = schema
        .fields
        .iter()
        .filter(|f| f.attrs.skip.is_none() && f.attrs.index.is_some())
        .map(|f| {
            let store_key = match &namespace {
                Some(ns) => format!("{ns}{}{}", symbol::NAMESPACE_SEPARATOR, f.key()),
                None => f.key(),
            };
            format!("{}{store_key}", symbol::INDEX_KEY_PREFIX)
        })
        .collect();
    let indices: Vec<usize> = (0..schema.fields.len()).collect();
    let cells: Vec<syn::Ident> = indices
        .iter()
        .map(|i| format_ident!("__field{}", i))
        .collect();
    // Inside the generated impls `Self` is the accessor type: a field type that says `Self`
    // means the user's struct.
    let tys: Vec<TokenStream> = schema
        .fields
        .iter()
        .map(|f| self_as(f.ty, &self_ty))
        .collect();
    let is_entries =
        |field: &Field<'_>| field.attrs.skip.is_none() && field.attrs.entries.is_some();
    let cell_tys: Vec<TokenStream> = schema
        .fields
        .iter()
        .zip(&tys)
        .map(|(field, ty)| {
            if is_entries(field) {
                quote_spanned!(field.ty.span()=> #private::EntriesCell<#ty>)
            } else {
                quote!(::std::sync::OnceLock<#ty>)
            }
        })
        .collect();
    let schema_ref = quote!(<#self_ty as #private::SessionData>::SCHEMA);
    let codec = match &schema.attrs.codec {
        Some(path) => quote!(#path),
        None => quote!(#private::JsonCodec),
    };

    let encode_arms = schema
        .fields
        .iter()
        .zip(&indices)
        .filter(|(field, _)| field.attrs.skip.is_none() && !is_entries(field))
        .map(|(field, index)| {
            let ty = self_as(field.ty, &self_ty);
            let getter = getter_ident(field);
            let call = quote_spanned!(field.ty.span()=> <#ty as #private::Storable>::encode_with::<__C>(#fields_ty::#getter(self)));
            quote!(#index => #call,)
        });
    let entry_arms = schema
        .fields
        .iter()
        .zip(&cells)
        .zip(&indices)
        .filter(|((field, _), _)| is_entries(field))
        .map(|((field, cell), index)| {
            let ty = self_as(field.ty, &self_ty);
            let member = field.ident;
            let encode = quote_spanned!(field.ty.span()=> <<#ty as #private::EntryMap>::Value as #private::Storable>::encode_with::<__C>(__value));
            quote! {
                #index => {
                    let __map = self.__core.whole.as_ref().map(|__w| &__w.#member);
                    #private::entries_writes(
                        __map,
                        &mut self.#cell,
                        &#schema_ref.fields()[#index],
                        |__value| #encode,
                        __out,
                    )
                }
            }
        })
        .collect::<Vec<_>>();
    let entry_writes = (!entry_arms.is_empty()).then(|| {
        quote! {
            fn entry_writes<__C: #private::Codec>(
                &mut self,
                __index: ::core::primitive::usize,
                __out: &mut ::std::vec::Vec<#private::FieldWrite>,
            ) -> ::core::result::Result<(), #private::CodecError> {
                match __index {
                    #(#entry_arms)*
                    _ => ::core::result::Result::Err(#private::CodecError::not_persisted(__index)),
                }
            }
        }
    });
    let force_all = schema
        .fields
        .iter()
        .zip(&cells)
        .zip(&indices)
        .filter(|((field, _), _)| field.attrs.skip.is_none())
        .map(|((field, cell), index)| {
            let decoder = decoder_ident(*index);
            if is_entries(field) {
                return quote! {
                    ::core::iter::Extend::extend(&mut __errors, #private::entries_force(
                        &mut self.#cell, &self.__core.raw, #schema_ref, #index, Self::#decoder,
                    ));
                };
            }
            let def = def_ident(*index);
            quote! {
                ::core::iter::Extend::extend(&mut __errors, #private::field_force(&mut self.#cell, &self.__core.raw, &Self::#def));
            }
        });
    let whole_fields = schema
        .fields
        .iter()
        .zip(&cells)
        .zip(&indices)
        .map(|((field, cell), index)| {
            let member = field.ident;
            if is_entries(field) {
                let decoder = decoder_ident(*index);
                quote!(#member: #private::entries_take_map(&mut self.#cell, &self.__core.raw, #schema_ref, #index, Self::#decoder))
            } else {
                let def = def_ident(*index);
                quote!(#member: #private::field_take_whole(&mut self.#cell, &self.__core.raw, &Self::#def))
            }
        });
    // One decode function per stored field, spanned at its type: a type that cannot be
    // stored gets one error, at the field.
    // (A plain field's decoder is named in its slot function only, at its type.)
    let decoders = schema
        .fields
        .iter()
        .zip(&indices)
        .filter(|(field, _)| is_entries(field))
        .map(|(field, index)| {
            let ty = self_as(field.ty, &self_ty);
            // A map stored entry by entry decodes one entry's value at a time.
            let ty = if is_entries(field) {
                quote_spanned!(field.ty.span()=> <#ty as #private::EntryMap>::Value)
            } else {
                ty
            };
            let decoder = decoder_ident(*index);
            let call = quote_spanned!(field.ty.span()=> <#ty as #private::Storable>::decode_with::<#codec>(__bytes));
            quote! {
                fn #decoder(__bytes: &[::core::primitive::u8]) -> ::core::result::Result<#ty, #private::CodecError> {
                    #call
                }
            }
        });
    // The hook is first bound to the signature it must have, spanned at the user's path: a
    // hook of another shape is one error there.
    // Every field, stored or not, is shared across threads with the session: one check per
    // field, at its type, instead of errors about the whole struct.
    let thread_safe = schema.fields.iter().filter(|_| !is_generic).map(|field| {
        let ty = self_as(field.ty, &self_ty);
        quote_spanned!(field.ty.span()=> #private::assert_field::<#ty>();)
    });
    let migrate = schema.attrs.migrate.as_ref().map(|path| {
        let hook = quote_spanned! {path.span()=>
            let __hook: fn(
                ::core::primitive::u32,
                &mut #private::RawFields<#codec>,
            ) -> ::core::result::Result<(), #private::MigrationError> = #path;
        };
        quote! {
            fn migrate(
                __from: ::core::primitive::u32,
                __fields: &mut #private::RawFields<#codec>,
            ) -> ::core::result::Result<(), #private::MigrationError> {
                #hook
                __hook(__from, __fields)
            }
        }
    });
    // The whole struct's fields by index, for the accessors once `data()` built it.
    let (members, members_mut): (Vec<_>, Vec<_>) = schema
        .fields
        .iter()
        .zip(&indices)
        .filter(|(field, _)| !is_entries(field))
        .map(|(field, index)| {
            let member = field.ident;
            (
                quote!(#index => &__w.#member,),
                quote!(#index => &mut __w.#member,),
            )
        })
        .unzip();
    let member_fns = (!members.is_empty()).then(|| {
        quote! {
            fn __sr_member(__w: &#self_ty, __index: ::core::primitive::usize) -> &dyn ::core::any::Any {
                match __index {
                    #(#members)*
                    _ => ::core::unreachable!(),
                }
            }

            fn __sr_member_mut(__w: &mut #self_ty, __index: ::core::primitive::usize) -> &mut dyn ::core::any::Any {
                match __index {
                    #(#members_mut)*
                    _ => ::core::unreachable!(),
                }
            }
        }
    });
    let accessors = schema
        .fields
        .iter()
        .zip(&cells)
        .zip(&indices)
        .map(|((field, cell), index)| {
            if is_entries(field) {
                entry_accessors(field, &self_ty, cell, *index, &private, &schema_ref)
            } else {
                accessors(field, &self_ty, cell, *index, &private, &codec)
            }
        });
    let doc = format!(
        "Typed accessors for the `{name}` session schema, reached through \
         `TypedSession<{name}>`: generated by `#[derive(SessionData)]`."
    );

    let fields_struct = quote! {
        #[doc = #doc]
        #vis struct #fields_ty #impl_generics #where_clause {
            __core: #private::Core<#self_ty>,
            #( #cells: #cell_tys, )*
        }
    };
    // Named by the user (`accessors = "..."`), the type sits next to the struct, where the
    // docs show it; otherwise it is out of reach, inside the block.
    let alias = if schema.attrs.accessors.is_some() {
        TokenStream::new()
    } else {
        quote!(use #krate::__private as __sr;)
    };
    let (outside, inside) = if schema.attrs.accessors.is_some() {
        (fields_struct, TokenStream::new())
    } else {
        (TokenStream::new(), fields_struct)
    };
    quote! {
        #outside

        #[doc(hidden)]
        #[allow(unused_qualifications)]
        const _: () = {
            #alias

            #inside

            #[automatically_derived]
            impl #impl_generics #private::SchemaFields for #fields_ty #ty_generics #where_clause {
                type Data = #self_ty;

                #[inline]
                fn from_record(__raw: #private::RawRecord, __state: #private::FieldState) -> Self {
                    Self {
                        __core: #private::Core::new(__raw, __state),
                        #( #cells: ::core::default::Default::default(), )*
                    }
                }

                #[inline]
                fn state(&self) -> &#private::FieldState {
                    &self.__core.state
                }

                #[inline]
                fn state_mut(&mut self) -> &mut #private::FieldState {
                    &mut self.__core.state
                }

                fn encode_field<__C: #private::Codec>(
                    &mut self,
                    __index: ::core::primitive::usize,
                ) -> ::core::result::Result<::std::vec::Vec<::core::primitive::u8>, #private::CodecError> {
                    match __index {
                        #(#encode_arms)*
                        _ => ::core::result::Result::Err(#private::CodecError::not_persisted(__index)),
                    }
                }

                // Codegen only where the schema is used (as serde's generic impls).
                #[inline]
                fn decode_all(&mut self) -> ::std::vec::Vec<#private::DecodeError> {
                    let mut __errors = ::std::vec::Vec::new();
                    if self.__core.whole.is_none() {
                        #(#force_all)*
                    }
                    __errors
                }

                // Codegen only where the schema is used (as serde's generic impls).
                #[inline]
                fn data(&mut self) -> &#self_ty {
                    if self.__core.whole.is_none() {
                        let __whole = #ident { #(#whole_fields),* };
                        self.__core.whole = ::core::option::Option::Some(::std::boxed::Box::new(__whole));
                    }
                    match &self.__core.whole {
                        ::core::option::Option::Some(__whole) => __whole,
                        ::core::option::Option::None => ::core::unreachable!(),
                    }
                }

                // Codegen only where the schema is used (as serde's generic impls).
                #[inline]
                fn into_data(mut self) -> #self_ty {
                    let _ = <Self as #private::SchemaFields>::data(&mut self);
                    match self.__core.whole {
                        ::core::option::Option::Some(__whole) => *__whole,
                        ::core::option::Option::None => ::core::unreachable!(),
                    }
                }

                #index_term
                #entry_writes
            }

            #index_impl

            // Field names are the user's: `#[allow(non_snake_case)]` on their struct does not
            // reach these. The derive's own items here are named `__sr_*`, a prefix no
            // field's accessor may take.
            #[allow(non_snake_case, non_upper_case_globals)]
            impl #impl_generics #fields_ty #ty_generics #where_clause {
                #member_fns
                #(#accessors)*
                #(#decoders)*
            }

            const _: () = {
                #(#thread_safe)*
            };

            #[automatically_derived]
            impl #impl_generics #private::SessionData for #self_ty #where_clause {
                type Fields = #fields_ty #ty_generics;
                type Codec = #codec;
                const SCHEMA: &'static #private::Schema = &#private::Schema::new(
                    #name,
                    #version,
                    #namespace_tokens,
                    #version_key,
                    &[#(#field_infos),*],
                    &[#(#load_keys,)* #(#index_keys,)* #version_key, #private::CREATED_KEY, #private::IDLE_TIMEOUT_KEY, #private::DATA_KEY_KEY],
                );

                #migrate
            }
        };
    }
}

fn def_ident(index: usize) -> syn::Ident {
    format_ident!("__sr_field{}", index)
}

fn decoder_ident(index: usize) -> syn::Ident {
    format_ident!("__sr_decode{}", index)
}

fn getter_ident(field: &Field<'_>) -> syn::Ident {
    syn::Ident::new_raw_if_needed(&field.name(), field.ident.span())
}

/// A field's default as a function (the user's `default = path`, or its type's
/// `FieldDefault`), spanned at the user's tokens.
fn default_fn(field: &Field<'_>, self_ty: &TokenStream, private: &TokenStream) -> TokenStream {
    let ty = self_as(field.ty, self_ty);
    match &field.attrs.default {
        Some(path) => quote_spanned!(path.span()=> #path),
        None => quote_spanned!(field.ty.span()=> <#ty as #private::FieldDefault>::field_default),
    }
}

/// The tokens of `ty` with every `Self` replaced by the struct's type (with its generics),
/// spans kept.
fn self_as(ty: &syn::Type, self_ty: &TokenStream) -> TokenStream {
    fn replace(tokens: TokenStream, self_ty: &TokenStream) -> TokenStream {
        let mut out = TokenStream::new();
        for tree in tokens {
            match tree {
                TokenTree::Ident(word) if word == "Self" => {
                    out.extend(self_ty.clone().into_iter().map(|mut tree| {
                        tree.set_span(word.span());
                        tree
                    }));
                }
                TokenTree::Group(group) => {
                    let mut inner = proc_macro2::Group::new(
                        group.delimiter(),
                        replace(group.stream(), self_ty),
                    );
                    inner.set_span(group.span());
                    out.extend([TokenTree::Group(inner)]);
                }
                other => out.extend([other]),
            }
        }
        out
    }
    replace(ty.to_token_stream(), self_ty)
}

/// The struct's generics with the bounds the generated code needs of its fields' types
/// (stored, thread-safe, with a default, indexable), and `'static` for every type
/// parameter. A schema without parameters gets nothing added: its field types are checked
/// one by one, at the field, instead.
fn with_field_bounds(schema: &Schema<'_>, private: &TokenStream) -> syn::Generics {
    let mut generics = schema.generics.clone();
    if generics.params.is_empty() {
        return generics;
    }
    let ident = schema.ident;
    let (_, ty_generics, _) = schema.generics.split_for_impl();
    let self_ty = quote!(#ident #ty_generics);
    let mut predicates: Vec<TokenStream> = Vec::new();
    for param in schema.generics.type_params() {
        let name = &param.ident;
        predicates.push(quote!(#name: 'static));
    }
    for field in &schema.fields {
        let ty = self_as(field.ty, &self_ty);
        predicates.push(quote!(#ty: #private::SessionField));
        if field.attrs.skip.is_some() {
            if field.attrs.default.is_none() {
                predicates.push(quote!(#ty: #private::FieldDefault));
            }
            continue;
        }
        if field.attrs.entries.is_some() {
            predicates.push(quote!(#ty: #private::EntryMap));
            predicates.push(quote!(<#ty as #private::EntryMap>::Value: #private::Storable));
            continue;
        }
        predicates.push(quote!(#ty: #private::Storable));
        if field.attrs.default.is_none() {
            predicates.push(quote!(#ty: #private::FieldDefault));
        }
        if field.attrs.index.is_some() {
            predicates.push(quote!(#ty: #private::IndexValue));
        }
    }
    let clause = generics.make_where_clause();
    for predicate in predicates {
        clause
            .predicates
            .push(syn::parse2(predicate).expect("a where predicate"));
    }
    generics
}

/// The four accessors' names of a field (`f`, `set_f`, `f_mut`, `take_f`), at its span.
fn accessor_idents(field: &Field<'_>) -> [syn::Ident; 4] {
    let [_, set, mutable, take] = valid::accessor_names(&field.name());
    let span = field.ident.span();
    [
        getter_ident(field),
        syn::Ident::new(&set, span),
        syn::Ident::new(&mutable, span),
        syn::Ident::new(&take, span),
    ]
}

fn accessors(
    field: &Field<'_>,
    self_ty: &TokenStream,
    cell: &syn::Ident,
    index: usize,
    private: &TokenStream,
    codec: &TokenStream,
) -> TokenStream {
    let vis = field.vis;
    let ty = self_as(field.ty, self_ty);
    let name = field.name();
    let [get, set, mutable, take] = accessor_idents(field);
    let persisted = field.attrs.skip.is_none();
    let def = def_ident(index);
    // The field's decoder and default are named here only, spanned at the user's tokens:
    // a type that cannot be stored, or has no default, is one error, at the field.
    let default = default_fn(field, self_ty, private);
    let def_value = if persisted {
        let decode =
            quote_spanned!(field.ty.span()=> <#ty as #private::Storable>::decode_with::<#codec>);
        quote!(#private::FieldDef::stored(#index, #decode, #default, Self::__sr_member, Self::__sr_member_mut))
    } else {
        quote!(#private::FieldDef::skipped(#index, #default, Self::__sr_member, Self::__sr_member_mut))
    };
    let store_note = if persisted {
        format!("store key `{}`", field.key())
    } else {
        "never stored: `#[session(skip)]`".to_owned()
    };
    let get_doc = format!(
        "Reads `{name}` ({store_note}), decoding it on first access. Reading never marks the field changed."
    );
    let set_doc = format!("Replaces `{name}` and marks it changed, so the next save writes it.");
    let mut_doc =
        format!("Borrows `{name}` mutably and marks it changed, so the next save writes it.");
    let take_doc = format!(
        "Returns `{name}`, resets it to its default and marks it for removal from the store. \
         Taking a field the store does not have writes nothing (and creates no session)."
    );
    quote! {
        const #def: #private::FieldDef<#self_ty, #ty> = #def_value;

        #[doc = #get_doc]
        #[inline]
        #[must_use]
        #vis fn #get(&self) -> &#ty {
            #private::field_get(&self.__core, &self.#cell, &Self::#def)
        }

        #[doc = #set_doc]
        #[inline]
        #vis fn #set(&mut self, value: #ty) {
            #private::field_set(&mut self.__core, &mut self.#cell, &Self::#def, value)
        }

        #[doc = #mut_doc]
        #[inline]
        #vis fn #mutable(&mut self) -> &mut #ty {
            #private::field_mut(&mut self.__core, &mut self.#cell, &Self::#def)
        }

        #[doc = #take_doc]
        #[inline]
        #vis fn #take(&mut self) -> #ty {
            #private::field_take(&mut self.__core, &mut self.#cell, &Self::#def)
        }
    }
}

/// The accessors of a `#[session(entries)]` map field: the map to read, an
/// entry-tracking handle to change it, and whole replacement and removal.
fn entry_accessors(
    field: &Field<'_>,
    self_ty: &TokenStream,
    cell: &syn::Ident,
    index: usize,
    private: &TokenStream,
    schema_ref: &TokenStream,
) -> TokenStream {
    let member = field.ident;
    let vis = field.vis;
    let ty = self_as(field.ty, self_ty);
    let name = field.name();
    let [get, set, mutable, take] = accessor_idents(field);
    let decoder = decoder_ident(index);
    let key = field.key();
    let get_doc = format!(
        "Reads the map `{name}` (stored entry by entry, under `{key}#...`), decoding its entries on \
         first access. Reading never marks anything changed."
    );
    let mut_doc = format!(
        "Changes the map `{name}` entry by entry: each insert, removal or `get_mut` marks only its \
         own entry, and the next save writes only those, so concurrent requests that change \
         different entries all keep their change."
    );
    let set_doc = format!(
        "Replaces the whole map `{name}`: the next save removes every entry the store holds for it \
         and writes these.\n\n# Errors\n\nWhen the map breaks the field's bounds (entries, key \
         length); nothing changes then."
    );
    let take_doc = format!(
        "Returns the map `{name}` and empties it: the next save removes every entry the store holds \
         for it, including entries other requests added meanwhile."
    );
    let whole = quote! {
        let __whole = self.__core.whole.as_mut().map(|__w| &mut __w.#member);
    };
    quote! {
        #[doc = #get_doc]
        #[inline]
        #[must_use]
        #vis fn #get(&self) -> &#ty {
            match &self.__core.whole {
                ::core::option::Option::Some(__whole) => &__whole.#member,
                ::core::option::Option::None => #private::entries_get(&self.#cell, &self.__core.raw, #schema_ref, #index, Self::#decoder),
            }
        }

        #[doc = #mut_doc]
        #vis fn #mutable(&mut self) -> #private::EntriesMut<'_, #ty> {
            #whole
            #private::entries_mut(__whole, &mut self.#cell, &mut self.__core.state, &self.__core.raw, #schema_ref, #index, Self::#decoder)
        }

        #[doc = #set_doc]
        #vis fn #set(&mut self, value: #ty) -> ::core::result::Result<(), #private::EntriesError> {
            #whole
            #private::entries_set(__whole, &mut self.#cell, &mut self.__core.state, #schema_ref, #index, value)
        }

        #[doc = #take_doc]
        #vis fn #take(&mut self) -> #ty {
            #whole
            #private::entries_take(__whole, &mut self.#cell, &mut self.__core.state, &self.__core.raw, #schema_ref, #index, Self::#decoder)
        }
    }
}

trait NewRawIfNeeded {
    fn new_raw_if_needed(name: &str, span: Span) -> syn::Ident;
}

impl NewRawIfNeeded for syn::Ident {
    fn new_raw_if_needed(name: &str, span: Span) -> syn::Ident {
        syn::parse_str::<syn::Ident>(name)
            .map(|mut ident| {
                ident.set_span(span);
                ident
            })
            .unwrap_or_else(|_| syn::Ident::new_raw(name, span))
    }
}
