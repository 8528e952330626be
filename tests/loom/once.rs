//! Loom models: once.
