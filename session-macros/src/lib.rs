//! The `#[derive(SessionData)]` macro.
//!
//! Do not depend on this crate directly: depend on `session-runtime`, which re-exports the
//! derive and pins this crate to the exact same version. The generated code names runtime
//! items through `::session_runtime::__private` (or the path given by
//! `#[session(crate = "...")]`).
//!
//! The macro works in three steps, each in its own module: `ast` parses the input and its
//! `#[session(...)]` attributes into an intermediate representation that keeps the user's
//! tokens for error spans, `valid` checks the schema as a whole (store keys, accessor
//! names), and `expand` writes the code. When anything is wrong, every error found is
//! reported together and `fallback` still emits a minimal impl so that one mistake does not
//! cascade into a screen of follow-on errors.

mod ast;
mod ctxt;
mod expand;
mod fallback;
mod symbol;
mod valid;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use syn::{parse_macro_input, DeriveInput};

use crate::{ast::Schema, ctxt::Ctxt};

/// Derives `session_runtime::SessionData` for a struct with named fields.
///
/// See the `session_runtime::SessionData` documentation for the generated accessors and the
/// `#[session(...)]` attributes.
#[proc_macro_derive(SessionData, attributes(session, serde))]
pub fn derive_session_data(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    derive(&input).into()
}

fn derive(input: &DeriveInput) -> TokenStream2 {
    let mut cx = Ctxt::default();
    let schema = Schema::from_input(&mut cx, input);
    if let Some(schema) = &schema {
        valid::check(&mut cx, schema);
    }
    match (cx.check(), schema) {
        (Ok(()), Some(schema)) => expand::expand(&schema),
        (Err(errors), schema) => {
            let mut out = errors.to_compile_error();
            out.extend(fallback::expand(input, schema.as_ref()));
            out
        }
        (Ok(()), None) => unreachable!("a schema that failed to parse always records an error"),
    }
}
