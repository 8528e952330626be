//! Loom models: tree.
