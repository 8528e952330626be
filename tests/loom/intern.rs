//! Loom models: intern.
