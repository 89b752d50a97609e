//! Helpers shared by the demo app and the end-to-end tests of `session-runtime`.
//!
//! This crate is not published; it exists so that `examples/` and `tests/` at the top of
//! the repository use `session-runtime` exactly as an application would.
