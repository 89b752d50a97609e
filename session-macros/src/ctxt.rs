//! Collects every error found while reading a schema so they are all reported at once.

use std::fmt::Display;

use quote::ToTokens;

/// Accumulates `syn::Error`s; [`Ctxt::check`] combines them into one.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: Option<syn::Error>,
}

impl Ctxt {
    pub(crate) fn error_spanned_by<T: ToTokens, M: Display>(&mut self, tokens: T, message: M) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.errors {
            Some(existing) => existing.combine(error),
            None => self.errors = Some(error),
        }
    }

    pub(crate) fn check(self) -> Result<(), syn::Error> {
        match self.errors {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}
