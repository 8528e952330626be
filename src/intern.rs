//! Interning into a budget: `Interner<T>`, `Interned<T>` and `intern()`.
