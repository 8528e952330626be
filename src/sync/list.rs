//! [`AppendList`]: the one intrusive, append-only, lock-free list, behind a budget's lanes and blocks and the
//! process-wide registry of budgets.
//!
//! A node is written in full, then pushed with a `SeqCst` compare-and-swap of the head (which includes `Release`);
//! readers load the head with `SeqCst` (which includes `Acquire`) and follow the links with `Relaxed` loads. A link is
//! written before its node's push and never after, and each later push is a read-modify-write of the head, so it
//! continues the release sequence of every earlier push: a reader that reaches a node through the head sees it fully
//! written. Nodes are never removed or freed, so a node once reached stays valid. The registry's consistent reading
//! (the report's double collect) needs its pushes and head reads in the single `SeqCst` order; the other lists are
//! pushed on slow paths only, where `SeqCst` costs nothing over `Release`.

use core::marker::PhantomData;
use core::ptr;

use super::Ordering::{self, Relaxed, SeqCst};

/// An atomic pointer a list can use as its head and its links: the crate's (loom's under loom), or `core`'s for the
/// process-wide `static` lists that outlive a loom execution.
pub(crate) trait AtomicLink<T> {
    fn load(&self, order: Ordering) -> *mut T;
    fn store(&self, value: *mut T, order: Ordering);
    fn compare_exchange_weak(
        &self,
        current: *mut T,
        new: *mut T,
        success: Ordering,
        failure: Ordering,
    ) -> Result<*mut T, *mut T>;
}

macro_rules! atomic_link {
    ($atomic:ty) => {
        impl<T> AtomicLink<T> for $atomic {
            #[inline]
            fn load(&self, order: Ordering) -> *mut T {
                <$atomic>::load(self, order)
            }
            #[inline]
            fn store(&self, value: *mut T, order: Ordering) {
                <$atomic>::store(self, value, order);
            }
            #[inline]
            fn compare_exchange_weak(
                &self,
                current: *mut T,
                new: *mut T,
                success: Ordering,
                failure: Ordering,
            ) -> Result<*mut T, *mut T> {
                <$atomic>::compare_exchange_weak(self, current, new, success, failure)
            }
        }
    };
}
atomic_link!(core::sync::atomic::AtomicPtr<T>);
#[cfg(loom)]
atomic_link!(loom::sync::atomic::AtomicPtr<T>);

/// A node of an [`AppendList`]: it holds the link to the node pushed before it.
pub(crate) trait Linked<A>: 'static {
    /// The link. Written only by [`AppendList::push`], before the node is published.
    fn link(&self) -> &A;
}

/// The head of an intrusive list of `'static` nodes, newest first. Nodes are only ever pushed, never removed.
///
/// Invariant: the head and every link are null or point to a node pushed onto this list, fully written, never freed.
#[derive(Debug)]
pub(crate) struct AppendList<T: 'static, A = super::AtomicPtr<T>> {
    head: A,
    /// The list hands out `&'static T`, but its nodes are the crate's own bookkeeping, built to be shared: like the
    /// `AtomicPtr` it wraps, the list takes no auto trait from `T`. Covariant in `T`, sound because only the crate's
    /// own node types are ever pushed, through `push(&'static T)`, never a value of a caller's type.
    nodes: PhantomData<fn() -> &'static T>,
}

/// The process-wide list kind: `core` atomics, which a `static` can hold under loom too.
pub(crate) type StaticList<T> = AppendList<T, core::sync::atomic::AtomicPtr<T>>;

impl<T: 'static> AppendList<T> {
    super::loom_const_fn! {
        pub(crate) fn new() -> Self {
            Self { head: super::AtomicPtr::new(ptr::null_mut()), nodes: PhantomData }
        }
    }
}

impl<T: 'static> StaticList<T> {
    /// An empty list for a `static` (`const` under loom too).
    #[cfg(loom)]
    pub(crate) const fn new_static() -> Self {
        Self { head: core::sync::atomic::AtomicPtr::new(ptr::null_mut()), nodes: PhantomData }
    }

    /// An empty list for a `static`.
    #[cfg(not(loom))]
    pub(crate) const fn new_static() -> Self {
        Self::new()
    }
}

impl<T: Linked<A>, A: AtomicLink<T>> AppendList<T, A> {
    /// Pushes `node`, fully written and on no list, as the new head.
    pub(crate) fn push(&self, node: &'static T) {
        let new = ptr::from_ref(node).cast_mut();
        let mut head = self.head.load(Relaxed);
        loop {
            // The node is not shared until the CAS publishes it, so rewriting its link on a retry races with nothing.
            node.link().store(head, Relaxed);
            match self.head.compare_exchange_weak(head, new, SeqCst, Relaxed) {
                Ok(_) => return,
                Err(current) => head = current,
            }
        }
    }

    /// The current head: the nodes pushed up to this reading. Equal readings mean nothing was pushed in between.
    pub(crate) fn head(&self) -> ListHead<T, A> {
        ListHead { node: self.head.load(SeqCst), links: PhantomData }
    }

    /// Every node pushed so far, newest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &'static T> {
        self.head().iter()
    }
}

/// A reading of a list's head.
///
/// Invariant: null, or a node pushed onto a list of this kind (only [`AppendList::head`] makes one).
#[derive(Debug)]
pub(crate) struct ListHead<T, A> {
    node: *mut T,
    /// Covariant in `A`, which is only named (the atomic type of the links), never stored here.
    links: PhantomData<fn() -> A>,
}

impl<T, A> Clone for ListHead<T, A> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T, A> Copy for ListHead<T, A> {}

impl<T, A> PartialEq for ListHead<T, A> {
    fn eq(&self, other: &Self) -> bool {
        self.node == other.node
    }
}

impl<T, A> Eq for ListHead<T, A> {}

impl<T: Linked<A>, A: AtomicLink<T>> ListHead<T, A> {
    /// The nodes pushed up to this reading, newest first.
    pub(crate) fn iter(self) -> impl Iterator<Item = &'static T> {
        let mut next = self.node;
        core::iter::from_fn(move || {
            // SAFETY: `next` is null or a pushed node (the `ListHead` invariant, then the `AppendList` invariant for
            // links), fully written before the push this reading synchronises with (see the module note), and never
            // freed.
            let node: &'static T = unsafe { next.as_ref() }?;
            next = node.link().load(Relaxed);
            Some(node)
        })
    }

    /// The nodes pushed after `older` (an earlier reading of the same list) up to this reading, newest first.
    pub(crate) fn since(self, older: Self) -> impl Iterator<Item = &'static T> {
        self.iter().take_while(move |node| !ptr::eq(*node, older.node))
    }
}
