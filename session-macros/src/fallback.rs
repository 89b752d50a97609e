//! What the derive emits next to its errors: a minimal `SessionData` impl, so that one mistake
//! in a schema does not also produce errors at every place the schema is used.

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

use crate::ast::{fields_ident, runtime_path, Schema};

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
    let fields_ty = fields_ident(ident);
    quote! {
        const _: () = {
            #vis struct #fields_ty(#private::FieldState, ::core::marker::PhantomData<#ident>);

            impl #private::SchemaFields for #fields_ty {
                type Data = #ident;
                fn from_record(_: #private::RawRecord, _: #private::FieldState) -> Self {
                    ::core::unimplemented!()
                }
                fn state(&self) -> &#private::FieldState {
                    &self.0
                }
                fn state_mut(&mut self) -> &mut #private::FieldState {
                    &mut self.0
                }
                fn encode_field<__C: #private::Codec>(
                    &mut self,
                    _: ::core::primitive::usize,
                ) -> ::core::result::Result<::std::vec::Vec<::core::primitive::u8>, #private::CodecError> {
                    ::core::unimplemented!()
                }
                fn decode_all(&mut self) -> ::std::vec::Vec<#private::DecodeError> {
                    ::core::unimplemented!()
                }
                fn data(&mut self) -> &#ident {
                    ::core::unimplemented!()
                }
                fn into_data(self) -> #ident {
                    ::core::unimplemented!()
                }
            }

            impl #private::SessionData for #ident {
                type Fields = #fields_ty;
                type Codec = #private::JsonCodec;
                const SCHEMA: &'static #private::Schema =
                    &#private::Schema::new("", 1, ::core::option::Option::None, "", &[], &[]);
            }
        };
    }
}
