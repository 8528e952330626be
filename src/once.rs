//! `LeakOnce<T>` and `leak_once!`: initialise once, share as `&'static T`.
