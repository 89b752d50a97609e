//! What the derive emits next to its errors: a minimal `SessionData` impl, so that one mistake
//! in a schema does not also produce errors at every place the schema is used.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::DeriveInput;

use crate::{ast::Schema, expand::runtime_path};

pub(crate) fn expand(input: &DeriveInput, schema: Option<&Schema<'_>>) -> TokenStream {
    // Generic structs get no fallback: their impl would need the generics, which are already
    // reported as unsupported.
    if !input.generics.params.is_empty() {
        return TokenStream::new();
    }
    let krate = runtime_path(schema);
    let private = quote!(#krate::__private);
    let ident = &input.ident;
    let vis = &input.vis;
    let fields_ty = format_ident!("{}Fields", ident);
    quote! {
        const _: () = {
            #vis struct #fields_ty(#private::FieldState, ::core::marker::PhantomData<#ident>);

            impl ::core::ops::Deref for #fields_ty {
                type Target = #ident;
                fn deref(&self) -> &#ident {
                    ::core::unimplemented!()
                }
            }

            impl #private::SchemaFields for #fields_ty {
                type Data = #ident;
                fn from_parts(_: #ident, _: #private::FieldState) -> Self {
                    ::core::unimplemented!()
                }
                fn into_parts(self) -> (#ident, #private::FieldState) {
                    ::core::unimplemented!()
                }
                fn parts(&self) -> (&#ident, &#private::FieldState) {
                    ::core::unimplemented!()
                }
                fn parts_mut(&mut self) -> (&mut #ident, &mut #private::FieldState) {
                    ::core::unimplemented!()
                }
            }

            impl #private::SessionData for #ident {
                type Fields = #fields_ty;
                const SCHEMA: &'static #private::Schema =
                    &#private::Schema::new("", 1, ::core::option::Option::None, "", &[]);
                fn from_defaults() -> Self {
                    ::core::unimplemented!()
                }
                fn reset_field(&mut self, _: usize) {}
                fn decode_field<__C: #private::Codec>(
                    &mut self,
                    _: usize,
                    _: &[u8],
                ) -> ::core::result::Result<(), #private::CodecError> {
                    ::core::unimplemented!()
                }
                fn encode_field<__C: #private::Codec>(
                    &self,
                    _: usize,
                ) -> ::core::result::Result<::std::vec::Vec<u8>, #private::CodecError> {
                    ::core::unimplemented!()
                }
            }
        };
    }
}
