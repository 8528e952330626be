//! Loom models: budget.
