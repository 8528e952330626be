//! Everything the crate takes from the global allocator, and where it keeps its bookkeeping there.
//!
//! This is the only module that calls the global allocator (`.clippy.toml` bans the `std::alloc` functions
//! elsewhere). Every function here charges the budget *before* it allocates and refunds the charge if the allocator
//! returns null, so the budget's `reserved` bounds the bytes held at every instant. Nothing handed out is ever freed:
//! blocks are linked into their budget's [`Blocks`], which keeps them reachable for leak checkers.
//!
//! Block shapes:
//! - chunk: `[BlockHeader | data ...]`, aligned to [`CHUNK_ALIGN`]; lanes bump down from the end towards the header.
//! - dedicated block, for one value too large for a chunk: `[padding | value | padding | BlockHeader]`, asked of the
//!   allocator with an alignment of at most [`CHUNK_ALIGN`]; a stricter alignment is reached by padding in front of
//!   the value, inside the block, so the budget pays for it (see [`dedicated_layout`]).
//! - records and lanes: one allocation each, of their type's layout ([`allocate_static`]).

use core::alloc::Layout;
use core::mem::{align_of, size_of};
use core::ptr::{self, NonNull};
use std::alloc::alloc as global_alloc;

use super::account::Account;
use crate::error::LeakError;
use crate::sync::{
    AppendList, AtomicPtr, AtomicUsize, Linked,
    Ordering::{Acquire, Relaxed, Release},
    loom_const_fn,
};

/// Links one block into its budget's [`Blocks`]. Written once, before the block is pushed; never read by the crate.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct BlockHeader {
    /// The block pushed before this one.
    next: AtomicPtr<BlockHeader>,
    /// Bytes this block charged (its whole allocation).
    bytes: usize,
}

impl Linked<AtomicPtr<BlockHeader>> for BlockHeader {
    fn link(&self) -> &AtomicPtr<BlockHeader> {
        &self.next
    }
}

/// The blocks a budget took (chunks and dedicated blocks), and their counters.
///
/// # Memory orderings
/// `large_used` and `large_allocations` are raised with `Release` after the block's charge, and read with `Acquire`:
/// a reader that sees a dedicated value also sees the charge that paid for it. `count` is a `Relaxed` statistic.
#[derive(Debug)]
pub(crate) struct Blocks {
    /// Every block, newest first. Never read by the crate: it is what keeps the blocks reachable for leak checkers.
    list: AppendList<BlockHeader>,
    /// Blocks taken from the global allocator.
    count: AtomicUsize,
    /// Bytes handed out in dedicated blocks (values too large for a lane's chunk).
    large_used: AtomicUsize,
    /// Values placed in dedicated blocks.
    large_allocations: AtomicUsize,
}

/// Alignment of every chunk; also the granule chunk sizes are rounded to.
pub(crate) const CHUNK_ALIGN: usize = 16;
/// Bytes at the start of a chunk taken by its header.
pub(crate) const CHUNK_HEADER: usize = size_of::<BlockHeader>().next_multiple_of(CHUNK_ALIGN);
/// A lane never takes more than this share (1/`CHUNK_SHARE`) of the bytes left in the budget for one chunk.
const CHUNK_SHARE: usize = 8;
/// Whether large chunks are advised to be backed by huge pages: with the `huge-pages` feature, on Linux, where
/// transparent huge pages in `madvise` mode (the common default) back an advised range with 2 MiB pages, so leaking
/// into it takes one page fault per 2 MiB instead of one per 4 KiB. Not under Miri or loom, which cannot call the OS.
///
/// Off by default because a huge page is taken from the kernel's free 2 MiB blocks, which are exactly what a
/// virtual machine's free page reporting hands back to its host: there its first touch waits for the host to back
/// 2 MiB again, and on the machine this was measured on, leaking 915 MB of 24-byte values took 43 to 200 ns per value
/// in some processes (`clear_page` 96% of the time) against 5.8 to 6.8 in others and a steady 9.3 to 10.4 without the
/// advice. Where memory is backed directly, the advice is a clear gain.
pub(crate) const HUGE_PAGES: bool = cfg!(all(feature = "huge-pages", target_os = "linux", not(miri), not(loom)));
/// The huge page size advised for.
const HUGE_PAGE: usize = 2 << 20;

/// Allocates `layout` from the global allocator. The caller has charged `layout.size()` to a budget.
fn allocate(layout: Layout) -> Result<NonNull<u8>, LeakError> {
    debug_assert!(layout.size() > 0);
    // SAFETY: `layout` has a non-zero size (every caller allocates a header or a record).
    #[allow(clippy::disallowed_methods)]
    let raw = unsafe { global_alloc(layout) };
    NonNull::new(raw).ok_or(LeakError::AllocFailed { size: layout.size(), align: layout.align() })
}

/// Charges `bytes` to `payer` (if any), then allocates a `T` and moves `make()` into it, for the crate's bookkeeping
/// (a budget's record, charged to its parent; a lane, charged to its budget). The charge is refunded if the
/// allocator fails. `make` runs after the allocation and must not panic.
pub(crate) fn allocate_static<T>(
    payer: Option<&'static Account>,
    bytes: usize,
    make: impl FnOnce() -> T,
) -> Result<&'static T, LeakError> {
    debug_assert!(size_of::<T>() > 0);
    if let Some(payer) = payer {
        payer.charge(bytes)?;
    }
    let raw = allocate(Layout::new::<T>()).inspect_err(|_| {
        if let Some(payer) = payer {
            payer.refund(bytes);
        }
    })?;
    // SAFETY: `raw` is a fresh allocation with `T`'s layout, written once here and never freed, so the reference is
    // valid for `'static`.
    unsafe {
        let raw = raw.cast::<T>();
        raw.write(make());
        Ok(raw.as_ref())
    }
}

impl Blocks {
    loom_const_fn! {
        pub(crate) fn new() -> Self {
            Self {
                list: AppendList::new(),
                count: AtomicUsize::new(0),
                large_used: AtomicUsize::new(0),
                large_allocations: AtomicUsize::new(0),
            }
        }
    }

    /// Takes a chunk of between `min` and `want` bytes (multiples of [`CHUNK_ALIGN`]) for a lane, charged to
    /// `account`. Returns the usable range: `floor` just past the header, `top` at the end.
    pub(crate) fn take_chunk(
        &self,
        account: &'static Account,
        min: usize,
        want: usize,
    ) -> Result<(NonNull<u8>, NonNull<u8>), LeakError> {
        let size = account.charge_between(min, want.max(min), CHUNK_SHARE, CHUNK_ALIGN)?;
        let Ok(layout) = Layout::from_size_align(size, CHUNK_ALIGN) else {
            account.refund(size);
            return Err(LeakError::size_overflow(size, 1));
        };
        let base = allocate(layout).inspect_err(|_| account.refund(size))?;
        if HUGE_PAGES && size >= 2 * HUGE_PAGE {
            advise_huge_pages(base, size);
        }
        // SAFETY: the allocation is `size >= CHUNK_HEADER` bytes long and aligned for `BlockHeader`.
        unsafe { self.link(base.cast(), size) };
        // SAFETY: `CHUNK_HEADER <= min <= size`, so both pointers stay within (or one past) the allocation.
        unsafe { Ok((base.add(CHUNK_HEADER), base.add(size))) }
    }

    /// Allocates a block holding exactly one value of `layout`, charged to `account`, for values too large to share
    /// a chunk.
    pub(crate) fn alloc_dedicated(&self, account: &'static Account, layout: Layout) -> Result<NonNull<u8>, LeakError> {
        let (block, header_at) = dedicated_layout(layout).ok_or(LeakError::size_overflow(layout.size(), 1))?;
        let total = block.size();
        account.charge(total)?;
        let base = allocate(block).inspect_err(|_| account.refund(total))?;
        // The block is aligned to `min(align, CHUNK_ALIGN)` or more, so the value's offset is 0 for `align <=
        // CHUNK_ALIGN` and at most `align - CHUNK_ALIGN` above: the padding `dedicated_layout` made room for.
        let front = base.as_ptr().addr().next_multiple_of(layout.align()) - base.as_ptr().addr();
        // `front + header_at + size_of::<BlockHeader>() <= total` (see above), so the value and the header lie inside
        // the block. `header_at` is a multiple of the header's alignment, and the value's address is aligned to
        // `align`, or to the block's alignment (at least the header's) when `front` is 0, so the header is aligned.
        // SAFETY: the value and the header lie inside the block, and the header is aligned (the lines above).
        let value = unsafe {
            let value = base.add(front);
            self.link(value.add(header_at).cast(), total);
            value
        };
        // After the charge (`Release`, see the type's note).
        self.large_used.fetch_add(layout.size(), Release);
        self.large_allocations.fetch_add(1, Release);
        Ok(value)
    }

    /// Writes a block's header and pushes it onto the list.
    ///
    /// # Safety
    /// `header` must be valid for writing a `BlockHeader`, inside a block of `bytes` bytes that is never freed.
    unsafe fn link(&self, header: NonNull<BlockHeader>, bytes: usize) {
        // SAFETY: the caller guarantees `header` is writable and never freed; the block is not shared yet.
        let header: &'static BlockHeader = unsafe {
            header.write(BlockHeader { next: AtomicPtr::new(ptr::null_mut()), bytes });
            header.as_ref()
        };
        self.list.push(header);
        self.count.fetch_add(1, Relaxed);
    }

    /// Bytes handed out in dedicated blocks, and the values placed there (`Acquire`, see the type's note).
    pub(crate) fn large(&self) -> (usize, usize) {
        (self.large_used.load(Acquire), self.large_allocations.load(Acquire))
    }

    /// Blocks taken from the global allocator.
    pub(crate) fn count(&self) -> usize {
        self.count.load(Relaxed)
    }
}

/// Bytes a chunk must have to serve `layout` by bumping down from its end: header, value, and worst-case alignment
/// padding, rounded up to [`CHUNK_ALIGN`]. `None` if that overflows `isize::MAX`.
pub(crate) fn chunk_bytes_for(layout: Layout) -> Option<usize> {
    let bytes = CHUNK_HEADER.checked_add(layout.size())?.checked_add(layout.align() - 1)?;
    let bytes = bytes.checked_next_multiple_of(CHUNK_ALIGN)?;
    (isize::try_from(bytes).is_ok()).then_some(bytes)
}

/// The block layout for a dedicated value of `layout`, and where its header goes, counted from the value. `None` if
/// too large.
///
/// The block is asked of the allocator with an alignment of at most [`CHUNK_ALIGN`], and room for up to
/// `align - CHUNK_ALIGN` bytes of padding in front of the value: the value is aligned inside the block. Asking the
/// allocator for a stricter alignment instead would let it take memory the budget never sees (glibc's `memalign`
/// carves the block out of one `align` bytes larger and touches pages around it): a 1 MiB budget of 1-byte values
/// aligned to 1 KiB grew the resident set by 85 MiB that way.
fn dedicated_layout(layout: Layout) -> Option<(Layout, usize)> {
    let header_at = layout.size().checked_next_multiple_of(align_of::<BlockHeader>())?;
    let front = layout.align().saturating_sub(CHUNK_ALIGN);
    let total = front.checked_add(header_at)?.checked_add(size_of::<BlockHeader>())?;
    let block = Layout::from_size_align(total, layout.align().clamp(align_of::<BlockHeader>(), CHUNK_ALIGN)).ok()?;
    Some((block, header_at))
}

/// The least a request for `layout` can charge when the calling thread has no room left in its lane: a dedicated
/// block or a fresh chunk, whichever is smaller. `None` if the request is too large to ever be served.
pub(crate) fn least_charge_for(layout: Layout) -> Option<usize> {
    let (dedicated, _) = dedicated_layout(layout)?;
    Some(chunk_bytes_for(layout)?.min(dedicated.size()))
}

/// Advises the kernel to back the 2 MiB-aligned pages inside the chunk `[base, base + size)` with huge pages.
///
/// The chunk is asked of the allocator with its ordinary alignment (asking for 2 MiB alignment would let the
/// allocator take memory the budget never sees), so only the aligned middle is advised: a chunk of at least 4 MiB
/// holds at least one such page. Everything advised is inside the chunk, which is charged in full, so the advice
/// cannot make the process hold more than the budget allows. Failure is ignored: the advice is only advice.
#[cfg(all(feature = "huge-pages", target_os = "linux", not(miri), not(loom)))]
fn advise_huge_pages(base: NonNull<u8>, size: usize) {
    let start = base.as_ptr().addr().next_multiple_of(HUGE_PAGE);
    let end = (base.as_ptr().addr() + size) & !(HUGE_PAGE - 1);
    if end > start {
        // SAFETY: `[start, end)` lies inside the chunk just allocated, which this budget owns and never frees.
        // `MADV_HUGEPAGE` only tells the kernel how to back those pages: it changes neither their contents nor the
        // mapping, so no memory anyone reads or writes is affected.
        let _ = unsafe { libc::madvise(base.as_ptr().with_addr(start).cast(), end - start, libc::MADV_HUGEPAGE) };
    }
}

/// Nothing to advise where huge pages are not used.
#[cfg(not(all(feature = "huge-pages", target_os = "linux", not(miri), not(loom))))]
fn advise_huge_pages(_base: NonNull<u8>, _size: usize) {}

/// A non-null, suitably aligned pointer for a zero-sized value of alignment `align`. Nothing is allocated or charged.
pub(crate) fn dangling(align: usize) -> NonNull<u8> {
    debug_assert!(align.is_power_of_two());
    NonNull::new(ptr::without_provenance_mut(align)).expect("alignments are non-zero")
}
