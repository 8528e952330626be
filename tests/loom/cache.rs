//! Loom models: cache.
