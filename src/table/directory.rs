//! [`Directory`]: a shard's map from hash bits to buckets, reached through a [`DirRef`].

use core::alloc::Layout;
use core::mem::{align_of, size_of};
use core::ptr::NonNull;

use super::SHARD_BITS;
use super::bucket::Bucket;
use crate::budget::LeakBudget;
use crate::error::LeakError;
use crate::sync::AtomicPtr;

/// The hash bits that select directory slots, most significant first (the shard bits shifted out).
pub(super) fn directory_bits(hash: u64) -> u64 {
    hash << SHARD_BITS
}

/// A directory header; `1 << depth` bucket pointers follow it in the same allocation. Only ever handled through a
/// [`DirRef`], never a `&Directory`: a reference would cover the header alone, not the slots after it.
#[repr(C)]
#[derive(Debug)]
pub(super) struct Directory {
    /// Bits of the hash (after the shard bits) that index this directory. Immutable.
    depth: u32,
}

/// A published directory: a pointer whose provenance covers the whole allocation (header and slots).
#[derive(Debug, Clone, Copy)]
pub(super) struct DirRef(NonNull<Directory>);

impl DirRef {
    /// The directory `raw` points to, if any.
    ///
    /// # Safety
    /// `raw` must be null or a directory from [`DirRef::leak`] (fully written, never freed).
    pub(super) unsafe fn new(raw: *mut Directory) -> Option<DirRef> {
        NonNull::new(raw).map(DirRef)
    }

    pub(super) fn depth(self) -> u32 {
        // SAFETY: a `DirRef` points to a written directory header, never freed; read through the raw pointer.
        unsafe { (*self.0.as_ptr()).depth }
    }

    /// The directory's bucket pointers.
    #[inline(always)]
    pub(super) fn slots(self) -> &'static [AtomicPtr<Bucket>] {
        // SAFETY: a directory is always allocated with `Directory::layout(depth)`, whose slots start at
        // `SLOTS_OFFSET`; its `1 << depth` slots are initialised before it is published (`DirRef::leak`), and it is
        // never freed. The pointer's provenance covers the whole allocation.
        unsafe {
            let first = self.0.cast::<u8>().add(Directory::SLOTS_OFFSET).cast::<AtomicPtr<Bucket>>();
            core::slice::from_raw_parts(first.as_ptr(), 1 << self.depth())
        }
    }

    /// The slot that `hash` selects.
    #[inline(always)]
    pub(super) fn slot_of(self, hash: u64) -> usize {
        let depth = self.depth();
        if depth == 0 { 0 } else { (directory_bits(hash) >> (64 - depth)) as usize }
    }

    pub(super) fn as_ptr(self) -> *mut Directory {
        self.0.as_ptr()
    }

    /// Leaks a directory of `depth` whose slot `i` points to `bucket_at(i)`.
    pub(super) fn leak(
        budget: &LeakBudget,
        depth: u32,
        bucket_at: impl Fn(usize) -> *mut Bucket,
    ) -> Result<DirRef, LeakError> {
        let (layout, offset) = Directory::layout(depth);
        let memory = budget.leak_layout(layout)?.as_mut_ptr().cast::<u8>();
        debug_assert_eq!(memory.addr() % align_of::<Directory>(), 0);
        // SAFETY: `memory` is `layout` bytes, aligned for `Directory` (and so for its slots, at `offset`), fresh, never
        // freed; the header and every slot are written before the directory is returned (and published).
        unsafe {
            memory.cast::<Directory>().write(Directory { depth });
            let slots = memory.add(offset).cast::<AtomicPtr<Bucket>>();
            for index in 0..1usize << depth {
                slots.add(index).write(AtomicPtr::new(bucket_at(index)));
            }
            Ok(DirRef(NonNull::new_unchecked(memory.cast::<Directory>())))
        }
    }
}

impl Directory {
    /// Where the bucket pointers start, after the header (the same for every depth).
    const SLOTS_OFFSET: usize = size_of::<Directory>().next_multiple_of(align_of::<AtomicPtr<Bucket>>());

    pub(super) fn layout(depth: u32) -> (Layout, usize) {
        let slots = Layout::array::<AtomicPtr<Bucket>>(1 << depth).expect("depth is at most MAX_DEPTH");
        let (layout, offset) = Layout::new::<Directory>().extend(slots).expect("depth is at most MAX_DEPTH");
        debug_assert_eq!(offset, Self::SLOTS_OFFSET);
        (layout.pad_to_align(), offset)
    }
}
