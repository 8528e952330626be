//! The variance and auto-trait marker of the containers.

use core::marker::PhantomData;

/// The marker of a container that stores values of `T` through `&self` and hands them out again as `&'static T`
/// (an interner, a cache, a once-cell): it decides the container's variance and auto traits at once.
///
/// - `&'static T`: the container shares `&T` with whichever thread holds it, so it is `Send` and `Sync` exactly when
///   `&T` is (`T: Sync`), and unwind-safe when `&T` is. Stored values are never moved or dropped after they are
///   stored, so `T: Send` is not needed.
/// - `fn(&'static T) -> &'static T`: invariant in `T`. A covariant container of `for<'a> fn(&'a str)` could be used
///   as one of `fn(&'static str)` to store a function that keeps its argument, which readers at the original type
///   would then call with short-lived strings: a use-after-free in safe code. A function pointer is `Send`, `Sync`
///   and unwind-safe, so this half changes no auto trait.
pub(crate) type StoresShared<T> = PhantomData<(&'static T, fn(&'static T) -> &'static T)>;
