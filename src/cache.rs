//! `StaticCache<K, V>`: a bounded memo cache of `&'static V`.
