//! Interop suites live in `tests/`; see README.md.
