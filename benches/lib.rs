//! Benchmarks of session-runtime: see `sessions.rs` and `BENCHMARKS.md` at the repository
//! root. This library is empty; the package exists for its bench target.
