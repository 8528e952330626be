//! Layer 2: [`LeakBudget`], a capped, thread-safe arena that hands out `&'static` references.
//!
//! - `mod.rs`: the type, its allocation API, and the first-use creation of its record (with the check that its parent
//!   chain does not loop);
//! - `tree.rs`: child budgets, charged to their ancestors;
//! - `global.rs`: the process-wide budget sized by `LEAK_BUDGET`, and the free functions on it.
//!
//! A budget is a handle: everything that changes lives in its record (`crate::arena::record`), created on first use.

pub(crate) mod global;
mod tree;

use core::alloc::Layout;
use core::fmt;
use core::mem::{MaybeUninit, size_of};
use core::ptr::{self, NonNull};

use crate::arena::account::Terms;
use crate::arena::block;
use crate::arena::lane::RequestCharge;
use crate::arena::local;
use crate::arena::record::Record;
use crate::error::{LeakError, Rejected, TryWithError};
use crate::stats::{Bytes, Stats};
use crate::sync::{
    AtomicPtr, AtomicUsize, Backoff,
    Ordering::{Acquire, Relaxed, SeqCst},
    loom_const_fn, thread_token,
};

/// A capped arena that hands out `&'static` references and returns an error, instead of allocating, once its limit
/// would be exceeded.
///
/// Everything leaked into a budget lives until the process exits: values are **never dropped** and their memory is
/// never returned, which is what makes the references `'static`. The budget only bounds how much can be leaked.
///
/// - **Hard cap.** Every byte taken from the global allocator on the budget's behalf (chunks, dedicated blocks for
///   large values, per-thread lanes, the budget's own bookkeeping record, hash tables of interners and caches) is
///   charged before it is allocated, with an atomic check, so no byte is ever charged while it would leave
///   [`reserved`](Self::reserved) above [`limit`](Self::limit), under any number of threads: `reserved <= limit` at
///   every instant, unless [`set_limit`](Self::set_limit) lowered the limit below what was already reserved.
/// - **Nothing lost.** A refused request changes nothing but the rejection counter, and gives a by-value argument
///   back ([`Rejected::into_inner`]).
/// - **Fast.** Each thread bumps in a lane of its own: no lock and no shared write per allocation.
/// - **Any lifetime for the budget itself.** A budget is usually a `static`, but it may also be a local: dropping it
///   does not free anything it handed out, and its memory stays reachable (leak checkers do not report it).
///
/// # Examples
///
/// ```
/// use leak_budget::LeakBudget;
///
/// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
///
/// let greeting: &'static str = BUDGET.leak_str("hello")?;
/// let numbers: &'static mut [u32] = BUDGET.leak_slice(&[1, 2, 3])?;
/// numbers[0] = 10;
/// let handle = std::thread::spawn(move || greeting.len());
/// assert_eq!(handle.join().unwrap(), 5);
/// assert!(BUDGET.reserved() <= BUDGET.limit());
/// # Ok::<(), leak_budget::LeakError>(())
/// ```
///
/// A value that does not fit comes back:
///
/// ```
/// use leak_budget::LeakBudget;
///
/// static SMALL: LeakBudget = LeakBudget::new(1024);
/// let big = vec![0u8; 4096];
/// let refused = SMALL.leak_vec(big).unwrap_err();
/// assert_eq!(refused.into_inner().len(), 4096);
/// ```
pub struct LeakBudget {
    /// The hard cap in bytes until the record exists; from then on the record's account holds the limit and this
    /// copy is not read again. Changed by [`set_limit`](Self::set_limit) only while holding `creating`, so a record
    /// is created with the limit last set.
    limit: AtomicUsize,
    /// Shown in errors, statistics and reports. Immutable.
    name: &'static str,
    /// Budget that every charge is also made to. Immutable.
    pub(crate) parent: Option<&'static LeakBudget>,
    /// Charge the whole `limit` to `parent` up front, on first use. Immutable.
    pub(crate) prepaid: bool,
    /// This is the global budget (its errors advise `LEAK_BUDGET`). Immutable.
    global: bool,
    /// Null until the first charge, then this budget's accounting record, never changed again. Written once, with
    /// `SeqCst` (which includes `Release`), by the thread that wins `creating`.
    record: AtomicPtr<Record>,
    /// While one thread creates the account: that thread's [`thread_token`]; otherwise 0. Other threads wait for the
    /// account; the creating thread itself, if it asks again (from a global allocator that leaks into this budget),
    /// is refused with [`LeakError::Reentrant`] instead of waiting for itself.
    ///
    /// Invariant: non-zero only while the thread whose token it holds is inside `create_own_record` or `set_limit`
    /// (a guard clears it on return and on unwinding), so a live thread reads its own token here only if it is that thread.
    creating: AtomicUsize,
    /// Requests refused before the budget had its own record, not yet moved into it.
    ///
    /// Invariant: every count added here reaches the record once it exists. The creator moves the counts in after it
    /// publishes the record, and a refuser that counts here looks for the record afterwards and moves them in if it
    /// is there; the increment, the record's publication, the refuser's look and the creator's move are `SeqCst`, so
    /// whichever of the two comes last in their single total order sees the other's write (see [`Self::refuse`]).
    early_rejections: AtomicUsize,
}

impl LeakBudget {
    /// Bytes of bookkeeping a budget charges to itself (and its ancestors) on its first request that needs memory.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// assert_eq!(BUDGET.reserved(), 0);
    /// BUDGET.leak(1u8)?;
    /// assert!(BUDGET.reserved() >= LeakBudget::RECORD_BYTES);
    /// # Ok::<(), leak_budget::Rejected<u8>>(())
    /// ```
    pub const RECORD_BYTES: usize = Record::BYTES;

    loom_const_fn! {
        /// A budget of `limit` bytes, named `"unnamed"`. Nothing is allocated until the first request.
        ///
        /// # Examples
        ///
        /// ```
        /// use leak_budget::LeakBudget;
        ///
        /// static BUDGET: LeakBudget = LeakBudget::new(64 << 20);
        /// assert_eq!(BUDGET.limit(), 64 << 20);
        /// assert_eq!(BUDGET.reserved(), 0);
        /// ```
        #[must_use]
        pub fn new(limit: usize) -> Self {
            Self::build(limit, "unnamed", None, false)
        }
    }

    loom_const_fn! {
        /// A budget of `limit` bytes with a name, shown in errors, [`Stats`] and reports.
        ///
        /// # Examples
        ///
        /// ```
        /// use leak_budget::{LeakBudget, LeakError};
        ///
        /// static CONFIG: LeakBudget = LeakBudget::named("config", 0);
        /// let err = CONFIG.leak_str("x").unwrap_err();
        /// assert!(matches!(err, LeakError::BudgetExceeded { budget: "config", .. }));
        /// ```
        #[must_use]
        pub fn named(name: &'static str, limit: usize) -> Self {
            Self::build(limit, name, None, false)
        }
    }

    loom_const_fn! {
        /// Every constructor ends here: roots (`new`, `named`) and children (`src/budget/tree.rs`).
        pub(crate) fn build(limit: usize, name: &'static str, parent: Option<&'static LeakBudget>, prepaid: bool) -> Self {
            Self {
                limit: AtomicUsize::new(limit),
                name,
                parent,
                prepaid,
                global: false,
                record: AtomicPtr::new(ptr::null_mut()),
                creating: AtomicUsize::new(0),
                early_rejections: AtomicUsize::new(0),
            }
        }
    }

    /// The hard cap, in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// static BUDGET: leak_budget::LeakBudget = leak_budget::LeakBudget::new(4096);
    /// assert_eq!(BUDGET.limit(), 4096);
    /// ```
    #[must_use]
    pub fn limit(&self) -> usize {
        self.existing_record().map_or_else(|| self.limit.load(SeqCst), |record| record.account.limit())
    }

    /// Raises or lowers the hard cap at run time: for a budget whose size is known only once the program runs (a
    /// `--budget` flag read after the statics exist), or to stop a budget from growing.
    ///
    /// Nothing is ever freed, so a limit below [`reserved`](Self::reserved) takes nothing back: from then on every
    /// request that needs a new charge is refused until the limit is raised again (values that fit in room already
    /// charged, the rest of a thread's chunk, are still served). The cap stays hard in its restated form: no byte is
    /// charged while it would leave `reserved` above the limit.
    ///
    /// A request racing `set_limit` on another thread is served under the old limit or the new one, never a mix; a
    /// request that starts after `set_limit` returned sees the new limit. A child's limit and its ancestors' are
    /// independent: each charge still has to fit every level.
    ///
    /// # Errors
    ///
    /// [`LeakError::FixedLimit`] for a [prepaid child](Self::prepaid_child_of) whose record exists: its whole limit
    /// was charged to its parent when it was created, so it cannot change (before that, the new limit is what will be
    /// prepaid). [`LeakError::Reentrant`] if called, from a global allocator, while the calling thread creates this
    /// budget's record.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{LeakBudget, LeakError};
    ///
    /// static BUDGET: LeakBudget = LeakBudget::named("cli", 0);
    /// assert!(BUDGET.leak(1u64).is_err());
    ///
    /// BUDGET.set_limit(1 << 20)?; // say, from `--budget 1MiB`
    /// BUDGET.leak(2u64).unwrap();
    ///
    /// BUDGET.set_limit(0)?; // no further growth
    /// assert!(BUDGET.reserved() > BUDGET.limit());
    /// assert!(matches!(BUDGET.leak_str(&"x".repeat(1 << 16)), Err(LeakError::BudgetExceeded { .. })));
    /// # Ok::<(), LeakError>(())
    /// ```
    pub fn set_limit(&self, limit: usize) -> Result<(), LeakError> {
        let me = thread_token();
        let backoff = Backoff::new();
        loop {
            if let Some(record) = self.existing_record() {
                if self.prepaid {
                    return Err(LeakError::FixedLimit { budget: self.name });
                }
                record.account.set_limit(limit);
                return Ok(());
            }
            // No record yet: change the copy the record will be created with, holding `creating` so that no record is
            // being created from the old value meanwhile.
            match self.creating.compare_exchange(0, me, SeqCst, Relaxed) {
                Ok(_) => {
                    let _creating = Creating(&self.creating);
                    if self.existing_record().is_none() {
                        self.limit.store(limit, SeqCst);
                        return Ok(());
                    }
                    // Created between the look and the CAS: set the record's limit on the next pass.
                }
                // This thread holds it (the `creating` invariant): its global allocator called in while it creates
                // the record.
                Err(holder) if holder == me => return Err(LeakError::Reentrant { budget: self.name }),
                Err(_) => backoff.snooze(),
            }
        }
    }

    /// The budget's name (`"unnamed"` unless given one).
    ///
    /// # Examples
    ///
    /// ```
    /// static BUDGET: leak_budget::LeakBudget = leak_budget::LeakBudget::named("tables", 4096);
    /// assert_eq!(BUDGET.name(), "tables");
    /// ```
    #[must_use]
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// Bytes taken from the global allocator on this budget's behalf: chunks, dedicated blocks, lanes, bookkeeping,
    /// tables, and whatever its children took. Never more than [`limit`](Self::limit), unless
    /// [`set_limit`](Self::set_limit) lowered the limit below it (nothing is ever given back).
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// BUDGET.leak([0u64; 4])?;
    /// assert!(BUDGET.reserved() >= 32 && BUDGET.reserved() <= BUDGET.limit());
    /// # Ok::<(), leak_budget::Rejected<[u64; 4]>>(())
    /// ```
    #[must_use]
    pub fn reserved(&self) -> usize {
        let in_creation = self.record_in_creation();
        self.existing_record().map_or(in_creation, |record| record.account.reserved())
    }

    /// What a budget without a record has reserved: its record's bytes while a thread creates the record (from before
    /// the record is allocated until it is published), otherwise nothing. So `reserved` counts every byte taken from
    /// the allocator on the budget's behalf at every instant, the record's own bytes too.
    ///
    /// Read before the record pointer: `creating` is set (`SeqCst`) before the record is allocated and cleared after
    /// it is published (`SeqCst`), so a reader that sees `creating` clear and then no record read at an instant when
    /// no record was allocated.
    /// A record larger than the limit is refused before it is allocated, so it is never counted here (`reserved`
    /// never exceeds `limit`).
    fn record_in_creation(&self) -> usize {
        if self.creating.load(SeqCst) == 0 || Self::RECORD_BYTES > self.limit.load(SeqCst) {
            0
        } else {
            Self::RECORD_BYTES
        }
    }

    /// Bytes handed out to callers, alignment padding included. At most [`reserved`](Self::reserved) (the rest is
    /// bookkeeping and the unused ends of chunks).
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// BUDGET.leak_str("abc")?;
    /// assert_eq!(BUDGET.used(), 3);
    /// # Ok::<(), leak_budget::LeakError>(())
    /// ```
    #[must_use]
    pub fn used(&self) -> usize {
        self.stats().used
    }

    /// `limit - reserved`: bytes that can still be charged.
    ///
    /// A request for `layout` is never refused for lack of budget while `remaining()` is at least
    /// [`max_charge_for(layout)`](Self::max_charge_for) (plus [`RECORD_BYTES`](Self::RECORD_BYTES) before the first
    /// request), in this budget and each ancestor.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// assert_eq!(BUDGET.remaining(), 1 << 20);
    /// BUDGET.leak(5u32)?;
    /// assert_eq!(BUDGET.remaining(), BUDGET.limit() - BUDGET.reserved());
    /// # Ok::<(), leak_budget::Rejected<u32>>(())
    /// ```
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.limit().saturating_sub(self.reserved())
    }

    /// A snapshot of the budget's figures: limit, reserved, used, allocations, rejections, peak reserved. Its
    /// `Display` is a small table.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static BUDGET: LeakBudget = LeakBudget::named("demo", 1 << 20);
    /// BUDGET.leak(1u64)?;
    /// let stats = BUDGET.stats();
    /// assert_eq!((stats.name, stats.allocations, stats.used, stats.rejections), ("demo", 1, 8, 0));
    /// assert!(stats.to_string().contains("allocations"));
    /// # Ok::<(), leak_budget::Rejected<u64>>(())
    /// ```
    #[must_use]
    pub fn stats(&self) -> Stats {
        let early = self.early_rejections.load(Relaxed);
        let in_creation = self.record_in_creation();
        let mut stats = match self.existing_record() {
            Some(record) => record.stats(),
            None => Stats {
                name: self.name,
                limit: self.limit.load(SeqCst),
                reserved: in_creation,
                used: 0,
                allocations: 0,
                rejections: 0,
                peak_reserved: in_creation,
                blocks: 0,
                lanes: 0,
            },
        };
        stats.rejections = stats.rejections.saturating_add(early);
        stats
    }

    /// The smallest [`remaining`](Self::remaining) with which a request for `layout` cannot be refused for lack of
    /// budget (on the budget's first request, add [`RECORD_BYTES`](Self::RECORD_BYTES)). It covers the value, its
    /// worst-case alignment padding, a chunk header and a lane for a thread's first request. Saturates at
    /// `usize::MAX` for layouts too large to ever fit.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::alloc::Layout;
    /// use leak_budget::LeakBudget;
    ///
    /// let bound = LeakBudget::max_charge_for(Layout::new::<[u8; 24]>());
    /// assert!(bound >= 24 && bound < 24 + 256);
    /// ```
    #[must_use]
    pub fn max_charge_for(layout: Layout) -> usize {
        RequestCharge::of(layout).map_or(usize::MAX, |charge| charge.most)
    }

    /// Moves `value` into the budget and returns a `'static` mutable reference to it. It is never dropped.
    ///
    /// # Errors
    ///
    /// [`Rejected`] holding `value` and the reason ([`LeakError::BudgetExceeded`] when it does not fit,
    /// [`LeakError::AllocFailed`] if the global allocator fails). The budget is unchanged but for its rejection count.
    ///
    /// Every method that charges can also refuse, in a [tree](Self::child_of), with [`LeakError::ParentCycle`] (the
    /// budget's parent chain leads back to itself) or [`LeakError::Reentrant`] (the calling thread is creating the
    /// record of this budget or of an ancestor, and re-entered from a global allocator).
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    ///
    /// #[derive(Debug)]
    /// struct Config { workers: usize }
    /// let config: &'static mut Config = BUDGET.leak(Config { workers: 4 })?;
    /// config.workers += 1;
    /// let config: &'static Config = config;
    /// std::thread::spawn(move || assert_eq!(config.workers, 5)).join().unwrap();
    /// # Ok::<(), leak_budget::Rejected<Config>>(())
    /// ```
    ///
    /// A reference into a shorter-lived value cannot be leaked as `'static`:
    ///
    /// ```compile_fail
    /// # #![allow(unused)] // only the error under test may stop the compilation
    /// use leak_budget::LeakBudget;
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// let local = String::from("short-lived");
    /// let leaked: &'static mut &str = BUDGET.leak(local.as_str()).unwrap();
    /// ```
    ///
    /// A non-`Sync` value can be leaked, but its `&'static` cannot be shared with another thread:
    ///
    /// ```compile_fail
    /// # #![allow(unused)] // only the error under test may stop the compilation
    /// use std::cell::Cell;
    /// use leak_budget::LeakBudget;
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// let counter: &'static Cell<u32> = BUDGET.leak(Cell::new(0)).unwrap();
    /// std::thread::spawn(move || counter.set(1));
    /// ```
    #[inline]
    pub fn leak<T: 'static>(&self, value: T) -> Result<&'static mut T, Rejected<T>> {
        match self.alloc(Layout::new::<T>()) {
            Ok(memory) => {
                let slot = memory.cast::<T>();
                // SAFETY: `alloc` returned memory valid for a `T`, aligned, owned by nobody else and never freed.
                unsafe {
                    slot.write(value);
                    Ok(&mut *slot.as_ptr())
                }
            }
            Err(error) => Err(Rejected::new(value, error)),
        }
    }

    /// Reserves room for a `T`, then calls `f` and writes its result in place, so a large value need not be built
    /// on the stack first (where the optimiser manages). `f` is called only once the room is reserved.
    ///
    /// If `f` panics, the panic propagates; the reserved bytes stay charged and counted as used, and nothing is
    /// dropped in the budget.
    ///
    /// # Errors
    ///
    /// [`LeakError::BudgetExceeded`] or [`LeakError::AllocFailed`]; `f` is not called.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// let table: &'static mut [u32; 1024] = BUDGET.leak_with(|| [7; 1024])?;
    /// assert_eq!(table[1023], 7);
    ///
    /// static NONE: LeakBudget = LeakBudget::new(0);
    /// assert!(NONE.leak_with(|| -> [u8; 16] { unreachable!("not called when refused") }).is_err());
    /// # Ok::<(), leak_budget::LeakError>(())
    /// ```
    #[inline]
    pub fn leak_with<T: 'static>(&self, f: impl FnOnce() -> T) -> Result<&'static mut T, LeakError> {
        let slot = self.alloc(Layout::new::<T>())?.cast::<T>();
        // SAFETY: as in `leak`. The memory is reserved before `f` runs, so if `f` leaks into this budget too, the two
        // allocations are disjoint.
        unsafe {
            slot.write(f());
            Ok(&mut *slot.as_ptr())
        }
    }

    /// Copies `s` into the budget. The empty string is free.
    ///
    /// # Errors
    ///
    /// [`LeakError::BudgetExceeded`] or [`LeakError::AllocFailed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// let name = String::from("worker-1");
    /// let name: &'static str = BUDGET.leak_str(&name)?;
    /// assert_eq!(name, "worker-1");
    /// assert_eq!(BUDGET.leak_str("")?, "");
    /// # Ok::<(), leak_budget::LeakError>(())
    /// ```
    #[inline]
    pub fn leak_str(&self, s: &str) -> Result<&'static str, LeakError> {
        let bytes = self.leak_slice(s.as_bytes())?;
        // SAFETY: the bytes were copied from a `str`, so they are valid UTF-8.
        Ok(unsafe { core::str::from_utf8_unchecked(bytes) })
    }

    /// Copies `s` into the budget. Empty slices and zero-sized elements are free.
    ///
    /// # Errors
    ///
    /// [`LeakError::BudgetExceeded`] or [`LeakError::AllocFailed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// let primes: &'static mut [u16] = BUDGET.leak_slice(&[2, 3, 5, 7])?;
    /// primes[3] = 11;
    /// assert_eq!(primes, [2, 3, 5, 11]);
    /// # Ok::<(), leak_budget::LeakError>(())
    /// ```
    #[inline]
    pub fn leak_slice<T: Copy + 'static>(&self, s: &[T]) -> Result<&'static mut [T], LeakError> {
        // An existing slice always has a valid layout.
        let layout = Layout::for_value(s);
        let memory = self.alloc(layout)?.cast::<T>();
        // SAFETY: `memory` is valid for `s.len()` elements, aligned, fresh (so not overlapping `s`) and never freed;
        // `T: Copy`, so a bitwise copy is a valid copy.
        unsafe {
            ptr::copy_nonoverlapping(s.as_ptr(), memory.as_ptr(), s.len());
            Ok(core::slice::from_raw_parts_mut(memory.as_ptr(), s.len()))
        }
    }

    /// Reserves room for a `T`, then calls `f` and writes its value in place: the fallible [`leak_with`](Self::leak_with).
    /// A refusal and an error from `f` are told apart, and `f` runs only once the room is reserved.
    ///
    /// If `f` returns an error or panics, the room stays charged and counted as used (a bump arena gives nothing
    /// back), and nothing is dropped in the budget.
    ///
    /// # Errors
    ///
    /// [`TryWithError::Leak`] if the budget refuses the room (`f` is not called), [`TryWithError::Init`] with `f`'s
    /// error.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{LeakBudget, TryWithError};
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// let port: &'static mut u16 = BUDGET.leak_try_with(|| "8080".parse::<u16>())?;
    /// assert_eq!(*port, 8080);
    /// assert!(matches!(BUDGET.leak_try_with(|| "80x".parse::<u16>()), Err(TryWithError::Init(_))));
    ///
    /// static NONE: LeakBudget = LeakBudget::new(0);
    /// let refused = NONE.leak_try_with(|| -> Result<u16, std::num::ParseIntError> { unreachable!() });
    /// assert!(matches!(refused, Err(TryWithError::Leak(_))));
    /// # Ok::<(), TryWithError<std::num::ParseIntError>>(())
    /// ```
    pub fn leak_try_with<T: 'static, E>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<&'static mut T, TryWithError<E>> {
        let slot = self.alloc(Layout::new::<T>()).map_err(TryWithError::Leak)?.cast::<T>();
        let value = f().map_err(TryWithError::Init)?;
        // SAFETY: as in `leak`; the memory was reserved before `f` ran, so anything `f` leaked is elsewhere.
        unsafe {
            slot.write(value);
            Ok(&mut *slot.as_ptr())
        }
    }

    /// Reserves room for `len` values, then fills it with `f(0)`, `f(1)`, ... in order.
    ///
    /// If `f` panics, the panic propagates; the values written so far are never dropped nor handed out, and the
    /// whole slice stays charged and counted as used.
    ///
    /// # Errors
    ///
    /// [`LeakError::SizeOverflow`] if `len` values do not fit in `isize::MAX` bytes; otherwise as
    /// [`leak_uninit`](Self::leak_uninit). `f` is not called.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// let squares: &'static mut [u64] = BUDGET.leak_slice_fill_with(5, |i| (i * i) as u64)?;
    /// assert_eq!(squares, [0, 1, 4, 9, 16]);
    /// # Ok::<(), leak_budget::LeakError>(())
    /// ```
    pub fn leak_slice_fill_with<T: 'static>(
        &self,
        len: usize,
        mut f: impl FnMut(usize) -> T,
    ) -> Result<&'static mut [T], LeakError> {
        let memory = self.leak_uninit_slice::<T>(len)?;
        for (index, slot) in memory.iter_mut().enumerate() {
            slot.write(f(index));
        }
        // SAFETY: every element was written just above (a panic in `f` leaves before this point, handing nothing out).
        Ok(unsafe { &mut *(ptr::from_mut(memory) as *mut [T]) })
    }

    /// Clones every element of `s` into the budget: [`leak_slice`](Self::leak_slice) for types that are `Clone` but
    /// not `Copy`.
    ///
    /// If a `clone` panics, the panic propagates; the clones made so far are never dropped nor handed out, and the
    /// whole slice stays charged and counted as used.
    ///
    /// # Errors
    ///
    /// As [`leak_slice`](Self::leak_slice); nothing is cloned.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// let hosts = [String::from("a.example"), String::from("b.example")];
    /// let hosts: &'static [String] = BUDGET.leak_slice_clone(&hosts)?;
    /// assert_eq!(hosts[1], "b.example");
    /// # Ok::<(), leak_budget::LeakError>(())
    /// ```
    pub fn leak_slice_clone<T: Clone + 'static>(&self, s: &[T]) -> Result<&'static mut [T], LeakError> {
        self.leak_slice_fill_with(s.len(), |index| s[index].clone())
    }

    /// A slice of `len` clones of `value` (the last element is `value` itself, moved in). `len == 0` drops `value`.
    ///
    /// If a `clone` panics, the panic propagates (dropping `value`); the clones made so far are never dropped nor
    /// handed out, and the whole slice stays charged and counted as used.
    ///
    /// # Errors
    ///
    /// [`Rejected`] holding `value` and the reason (as [`leak_slice_fill_with`](Self::leak_slice_fill_with)); nothing
    /// is cloned.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// let rows: &'static mut [Vec<u8>] = BUDGET.leak_slice_fill(3, vec![0u8; 4]).unwrap();
    /// rows[0][0] = 1;
    /// assert_eq!(rows, [vec![1, 0, 0, 0], vec![0; 4], vec![0; 4]]);
    ///
    /// static NONE: LeakBudget = LeakBudget::new(0);
    /// assert_eq!(NONE.leak_slice_fill(3, String::from("back")).unwrap_err().into_inner(), "back");
    /// ```
    pub fn leak_slice_fill<T: Clone + 'static>(&self, len: usize, value: T) -> Result<&'static mut [T], Rejected<T>> {
        let memory = match self.leak_uninit_slice::<T>(len) {
            Ok(memory) => memory,
            Err(error) => return Err(Rejected::new(value, error)),
        };
        if let Some((last, rest)) = memory.split_last_mut() {
            for slot in rest {
                slot.write(value.clone());
            }
            last.write(value);
        }
        // SAFETY: every element was written just above (`len == 0` writes none and needs none; a panicking `clone`
        // leaves before this point).
        Ok(unsafe { &mut *(ptr::from_mut(memory) as *mut [T]) })
    }

    /// Moves the items of an iterator that knows its length into the budget, reserving the whole slice first.
    ///
    /// An iterator whose [`len`](ExactSizeIterator::len) is wrong is handled: if it ends early, the slice returned
    /// holds the items it gave (the rest of the room stays charged and counted as used); if it has more, only the
    /// first `len` are taken and the iterator, with the others, is dropped. If `next` panics, the panic propagates;
    /// the items taken so far are never dropped nor handed out, and the whole room stays charged.
    ///
    /// # Errors
    ///
    /// [`Rejected`] holding the iterator, untouched, and the reason (as
    /// [`leak_slice_fill_with`](Self::leak_slice_fill_with)).
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// let words: &'static mut [String] = BUDGET.leak_iter("a b c".split(' ').map(String::from).collect::<Vec<_>>()).unwrap();
    /// assert_eq!(words, ["a", "b", "c"]);
    /// let evens: &'static [u32] = BUDGET.leak_iter((0..10).filter(|n| n % 2 == 0).collect::<Vec<_>>()).unwrap();
    /// assert_eq!(evens, [0, 2, 4, 6, 8]);
    /// ```
    pub fn leak_iter<I>(&self, items: I) -> Result<&'static mut [I::Item], Rejected<I::IntoIter>>
    where
        I: IntoIterator,
        I::IntoIter: ExactSizeIterator,
        I::Item: 'static,
    {
        let mut items = items.into_iter();
        let memory = match self.leak_uninit_slice::<I::Item>(items.len()) {
            Ok(memory) => memory,
            Err(error) => return Err(Rejected::new(items, error)),
        };
        let mut written = 0;
        for slot in memory.iter_mut() {
            let Some(item) = items.next() else { break };
            slot.write(item);
            written += 1;
        }
        // SAFETY: the first `written` elements were written just above; the rest of the room is never handed out.
        Ok(unsafe { core::slice::from_raw_parts_mut(memory.as_mut_ptr().cast::<I::Item>(), written) })
    }

    /// Moves the elements of `v` into the budget (its buffer is freed) and returns them as a `'static` slice. They are
    /// never dropped.
    ///
    /// # Errors
    ///
    /// [`Rejected`] holding `v`, unchanged, and the reason.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// let names = vec![String::from("a"), String::from("b")];
    /// let names: &'static mut [String] = BUDGET.leak_vec(names)?;
    /// assert_eq!(names[1], "b");
    /// # Ok::<(), leak_budget::Rejected<Vec<String>>>(())
    /// ```
    pub fn leak_vec<T: 'static>(&self, v: Vec<T>) -> Result<&'static mut [T], Rejected<Vec<T>>> {
        let layout = Layout::for_value(v.as_slice());
        match self.alloc(layout) {
            Ok(memory) => {
                let memory = memory.cast::<T>();
                let mut v = v;
                let len = v.len();
                // SAFETY: `memory` is valid for `len` elements, aligned, fresh and never freed. The elements are moved
                // bitwise, then `set_len(0)` makes `v` forget them, so each is owned exactly once (by the budget) and
                // dropping `v` only frees its buffer.
                unsafe {
                    ptr::copy_nonoverlapping(v.as_ptr(), memory.as_ptr(), len);
                    v.set_len(0);
                    Ok(core::slice::from_raw_parts_mut(memory.as_ptr(), len))
                }
            }
            Err(error) => Err(Rejected::new(v, error)),
        }
    }

    /// Reserves uninitialised room for one `T`, for callers that build the value in place.
    ///
    /// # Errors
    ///
    /// [`LeakError::BudgetExceeded`] or [`LeakError::AllocFailed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// let slot = BUDGET.leak_uninit::<u64>()?;
    /// let value: &'static mut u64 = slot.write(42);
    /// assert_eq!(*value, 42);
    /// # Ok::<(), leak_budget::LeakError>(())
    /// ```
    pub fn leak_uninit<T: 'static>(&self) -> Result<&'static mut MaybeUninit<T>, LeakError> {
        let memory = self.alloc(Layout::new::<T>())?.cast::<MaybeUninit<T>>();
        // SAFETY: valid, aligned, fresh and never freed; `MaybeUninit` needs no initialisation.
        Ok(unsafe { &mut *memory.as_ptr() })
    }

    /// Reserves uninitialised room for `len` values of `T`.
    ///
    /// # Errors
    ///
    /// [`LeakError::SizeOverflow`] if `len * size_of::<T>()` exceeds `isize::MAX`; otherwise as
    /// [`leak_uninit`](Self::leak_uninit).
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{LeakBudget, LeakError};
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// let squares = BUDGET.leak_uninit_slice::<u32>(4)?;
    /// for (i, slot) in squares.iter_mut().enumerate() {
    ///     slot.write((i * i) as u32);
    /// }
    /// assert!(matches!(BUDGET.leak_uninit_slice::<u64>(usize::MAX), Err(LeakError::SizeOverflow { .. })));
    /// # Ok::<(), LeakError>(())
    /// ```
    pub fn leak_uninit_slice<T: 'static>(&self, len: usize) -> Result<&'static mut [MaybeUninit<T>], LeakError> {
        let layout = Layout::array::<T>(len).map_err(|_| self.refuse(LeakError::size_overflow(size_of::<T>(), len)))?;
        let memory = self.alloc(layout)?.cast::<MaybeUninit<T>>();
        // SAFETY: valid for `len` elements, aligned, fresh and never freed; `MaybeUninit` needs no initialisation.
        Ok(unsafe { core::slice::from_raw_parts_mut(memory.as_ptr(), len) })
    }

    /// Reserves `layout.size()` uninitialised bytes aligned to `layout.align()`, for custom layouts (a header
    /// followed by a payload, say). The alignment may be up to [`MAX_ALIGN`] (2^29); its padding is
    /// charged like any other byte taken from the allocator, so a request may charge up to `align` bytes more than its
    /// size (see [`max_charge_for`](Self::max_charge_for)).
    ///
    /// # Errors
    ///
    /// [`LeakError::UnsupportedAlignment`] above 2^29; otherwise as [`leak_uninit`](Self::leak_uninit).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::alloc::Layout;
    /// use leak_budget::{LeakBudget, LeakError};
    ///
    /// static BUDGET: LeakBudget = LeakBudget::new(1 << 20);
    /// let page = BUDGET.leak_layout(Layout::from_size_align(100, 4096).unwrap())?;
    /// assert_eq!((page.len(), page.as_ptr() as usize % 4096), (100, 0));
    ///
    /// let absurd = Layout::from_size_align(1, 1 << 30).unwrap();
    /// assert_eq!(BUDGET.leak_layout(absurd).unwrap_err(), LeakError::UnsupportedAlignment { align: 1 << 30 });
    /// # Ok::<(), LeakError>(())
    /// ```
    pub fn leak_layout(&self, layout: Layout) -> Result<&'static mut [MaybeUninit<u8>], LeakError> {
        if layout.align() > MAX_ALIGN {
            return Err(self.refuse(LeakError::UnsupportedAlignment { align: layout.align() }));
        }
        let memory = self.alloc(layout)?.cast::<MaybeUninit<u8>>();
        // SAFETY: valid for `layout.size()` bytes, aligned, fresh and never freed; `MaybeUninit` needs no
        // initialisation.
        Ok(unsafe { core::slice::from_raw_parts_mut(memory.as_ptr(), layout.size()) })
    }

    /// Allocates `layout` (alignment at most [`MAX_ALIGN`]) from this budget: the crate's one allocation entry point.
    /// Zero-sized layouts get a dangling, aligned pointer and charge nothing. Refusals are counted.
    #[inline]
    pub(crate) fn alloc(&self, layout: Layout) -> Result<NonNull<u8>, LeakError> {
        if layout.size() == 0 {
            return Ok(block::dangling(layout.align()));
        }
        // `Relaxed` is enough here: the fast path only compares the pointer with the one this thread cached, which
        // it read with `Acquire` on a slow path before.
        if let Some(memory) = local::try_alloc_fast(self.record.load(Relaxed), layout) {
            return Ok(memory);
        }
        self.alloc_slow(layout)
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, layout: Layout) -> Result<NonNull<u8>, LeakError> {
        let record = match self.existing_record() {
            Some(record) => record,
            None => self.first_record(layout).map_err(|error| self.refuse(error.for_value(layout.size())))?,
        };
        local::alloc(record, layout).map_err(|error| self.refuse(error.for_value(layout.size())))
    }

    /// Creates the record for the budget's first request, unless the request could not fit even in the empty budget
    /// (with the record): then nothing is created, so a refused request leaves the budget untouched.
    fn first_record(&self, layout: Layout) -> Result<&'static Record, LeakError> {
        // A request that fits no lane is served in a block of its own (`arena::local::alloc`): its least charge.
        let least = RequestCharge::of(layout)?.least;
        self.check_room(least)?;
        self.create_record()
    }

    /// What the record is created with: the limit last set, the name and the kind of budget.
    fn terms(&self) -> Terms {
        Terms { limit: self.limit.load(SeqCst), name: self.name, prepaid: self.prepaid, global: self.global }
    }

    /// The global budget: a root named `global` whose errors advise `LEAK_BUDGET`.
    pub(crate) fn new_global(limit: usize) -> Self {
        Self { global: true, ..Self::build(limit, "global", None, false) }
    }

    /// This budget's account, creating it (and its ancestors') on first use.
    pub(crate) fn record(&self) -> Result<&'static Record, LeakError> {
        match self.existing_record() {
            Some(record) => Ok(record),
            None => self.create_record(),
        }
    }

    /// This budget's account, if its first charge has happened.
    pub(crate) fn existing_record(&self) -> Option<&'static Record> {
        // SAFETY: the pointer is null or a record published with `Release` (read here with `Acquire`); records are
        // never freed.
        unsafe { self.record.load(Acquire).as_ref() }
    }

    /// The next budget up the chain that still has to be walked: the parent, unless this budget has its account
    /// (then so does every ancestor, and the accounts' own chain, which cannot loop, takes over).
    fn unaccounted_parent(&self) -> Option<&'static LeakBudget> {
        if self.existing_record().is_some() { None } else { self.parent }
    }

    /// Refuses with [`LeakError::ParentCycle`] if the parent chain, walked up to the first budget that has its account
    /// (or past the root), runs into a loop.
    ///
    /// Brent's algorithm: constant memory, and a number of steps proportional to the length of the chain (the budgets
    /// before the loop and on it), so it ends whatever the chain's shape. A budget on a loop can never have an
    /// account (creating one needs this check to pass), and a budget with an account has an acyclic chain above it
    /// (its ancestors' accounts were created before it), so stopping there is exact. Accounts only ever appear, so a
    /// chain found acyclic stays so, and later walks of it end at the same place or earlier.
    fn check_acyclic(&self) -> Result<(), LeakError> {
        match self.cycle_entry() {
            Some(on_cycle) => Err(LeakError::ParentCycle { budget: on_cycle.name }),
            None => Ok(()),
        }
    }

    /// The first budget of this one's chain (this one included) that is its own ancestor, if the chain loops.
    fn cycle_entry(&self) -> Option<&LeakBudget> {
        let step = |budget: &LeakBudget| budget.unaccounted_parent();
        // Brent: the hare runs ahead; the tortoise teleports to it at every power of two; they meet once both are in
        // the loop and the power exceeds its length, which is then `length`.
        let (mut power, mut length) = (1_usize, 1_usize);
        let mut tortoise: &LeakBudget = self;
        let mut hare: &LeakBudget = step(self)?;
        while !ptr::eq(tortoise, hare) {
            if power == length {
                tortoise = hare;
                power = power.saturating_mul(2);
                length = 0;
            }
            hare = step(hare)?;
            length += 1;
        }
        // With the hare `length` steps ahead, both reach the loop's first budget at the same step.
        let (mut tortoise, mut hare): (&LeakBudget, &LeakBudget) = (self, self);
        for _ in 0..length {
            hare = step(hare)?;
        }
        while !ptr::eq(tortoise, hare) {
            tortoise = step(tortoise)?;
            hare = step(hare)?;
        }
        Some(tortoise)
    }

    /// Creates the accounts this budget's first charge needs: its ancestors' that do not exist yet, top-down, then
    /// its own.
    ///
    /// Iterative: each pass walks up from this budget to the first ancestor with an account (or past the root),
    /// keeping the topmost [`CREATE_BATCH`] budgets without one, and creates those, top-down. A chain of `n` budgets
    /// without accounts takes `n / CREATE_BATCH + 1` passes, in constant stack space, whatever its depth.
    #[cold]
    fn create_record(&self) -> Result<&'static Record, LeakError> {
        if let Some(account) = self.existing_record() {
            return Ok(account);
        }
        self.check_acyclic()?;
        loop {
            // Walk up, keeping the last `CREATE_BATCH` budgets without an account in a ring. The walk ends: the chain
            // was found acyclic up to the first account, and accounts only appear.
            let mut ring: [Option<&LeakBudget>; CREATE_BATCH] = [None; CREATE_BATCH];
            let mut pending = 0_usize;
            let mut above = None;
            let mut level: Option<&LeakBudget> = Some(self);
            while let Some(budget) = level {
                if let Some(account) = budget.existing_record() {
                    above = Some(account);
                    break;
                }
                ring[pending % CREATE_BATCH] = Some(budget);
                pending += 1;
                level = budget.parent;
            }
            // Create the kept ones top-down: the topmost one's parent has its account (`above`), or it is a root;
            // each next one's parent is the one just created.
            let lowest = pending.saturating_sub(CREATE_BATCH);
            for index in (lowest..pending).rev() {
                let budget = ring[index % CREATE_BATCH].expect("kept by the walk above");
                above = Some(budget.create_own_record(above)?);
            }
            if lowest == 0 {
                // `pending == 0` only if another thread created this budget's account meanwhile: then `above` is it.
                return Ok(above.expect("this budget's account: created above, or by another thread"));
            }
        }
    }

    /// Creates this budget's own account under `parent`, its parent's account (which exists; `None` for a root), or
    /// returns it if another thread did first.
    ///
    /// One thread creates it; others wait briefly (one allocation). The creating thread itself, asking again while it
    /// creates (its global allocator leaking into this budget), is refused with [`LeakError::Reentrant`].
    fn create_own_record(&self, parent: Option<&'static Record>) -> Result<&'static Record, LeakError> {
        debug_assert!(match (self.parent, parent) {
            (Some(budget), Some(account)) => budget.existing_record().is_some_and(|own| ptr::eq(own, account)),
            (budget, account) => budget.is_none() && account.is_none(),
        });
        let me = thread_token();
        let backoff = Backoff::new();
        loop {
            if let Some(account) = self.existing_record() {
                return Ok(account);
            }
            // `SeqCst`: set before the record is allocated, for `record_in_creation`.
            match self.creating.compare_exchange(0, me, SeqCst, Relaxed) {
                Ok(_) => break,
                // This thread holds it (the `creating` invariant): waiting would wait for itself.
                Err(holder) if holder == me => return Err(LeakError::Reentrant { budget: self.name }),
                // Another thread is creating the account: one allocation, so wait briefly rather than allocate a
                // second record (which would briefly hold more than the limit allows).
                Err(_) => backoff.snooze(),
            }
        }
        let _creating = Creating(&self.creating);
        // Re-check: the thread that created it may have finished between the load above and the CAS.
        if let Some(account) = self.existing_record() {
            return Ok(account);
        }
        let account = Record::create(self.terms(), parent)?;
        // `SeqCst`: ordered with the refusers' increments and looks (the `early_rejections` invariant).
        self.record.store(ptr::from_ref(account).cast_mut(), SeqCst);
        // Requests refused before the record existed move into it, so the report (which only sees records) counts
        // them; after publishing, so that a refusal counted while this ran is either moved here or by its refuser.
        self.move_early_rejections(account);
        Ok(account)
    }

    /// Refuses, with the error a charge would give, if `bytes` more could not be charged right now (counting this
    /// budget's record if it has none yet, and going up the tree). A check made before a multi-step operation (an
    /// insert that may grow a table) so that a refusal changes nothing; the charges themselves still decide.
    ///
    /// Iterative, in constant stack space: each budget without an account needs `bytes` plus its record (or, for a
    /// prepaid child, its whole limit) from its parent; the first account up the chain checks the rest.
    pub(crate) fn check_room(&self, bytes: usize) -> Result<(), LeakError> {
        if let Some(account) = self.existing_record() {
            return account.account.check_room(bytes);
        }
        self.check_acyclic()?;
        // The walk ends: the chain was found acyclic up to the first account, and accounts only appear.
        let (mut level, mut bytes) = (self, bytes);
        loop {
            if let Some(account) = level.existing_record() {
                return account.account.check_room(bytes);
            }
            let needed = bytes.saturating_add(Self::RECORD_BYTES);
            let limit = level.limit.load(SeqCst);
            if needed > limit {
                return Err(LeakError::exceeded(level.name, level.global, needed, limit, limit));
            }
            match level.parent {
                Some(parent) => {
                    bytes = if level.prepaid { limit } else { needed };
                    level = parent;
                }
                None => return Ok(()),
            }
        }
    }

    /// Requests refused before this budget had a record and not yet moved into it.
    pub(crate) fn early_rejections(&self) -> usize {
        self.early_rejections.load(Relaxed)
    }

    /// Counts a refused request on this budget, and returns its error.
    pub(crate) fn refuse(&self, error: LeakError) -> LeakError {
        if let Some(account) = self.existing_record() {
            account.account.note_rejection();
            return error;
        }
        // No record yet: count it here, then look again. If the record was published meanwhile, its creator may have
        // moved the early counts before this one was added, so move them now (the `early_rejections` invariant).
        let _ = self.early_rejections.fetch_update(SeqCst, SeqCst, |n| n.checked_add(1));
        // SAFETY: as in `existing_account`: null or a published account, never freed.
        if let Some(account) = unsafe { self.record.load(SeqCst).as_ref() } {
            self.move_early_rejections(account);
        }
        error
    }

    /// Moves the requests counted in `early_rejections` into `account`, this budget's record. Each count is moved
    /// once (a swap), by whichever thread takes it.
    fn move_early_rejections(&self, record: &Record) {
        record.account.add_rejections(self.early_rejections.swap(0, SeqCst));
    }
}

/// The largest alignment a budget accepts: 2^29, the largest alignment a Rust type can have.
pub const MAX_ALIGN: usize = 1 << 29;

/// Clears a budget's `creating` when dropped: after success, failure or unwinding, so waiters never wait forever.
struct Creating<'a>(&'a AtomicUsize);

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        // `SeqCst`: after the record's publication, for `record_in_creation`.
        self.0.store(0, SeqCst);
    }
}

/// Budgets without an account that one pass of `create_account` creates (see there).
const CREATE_BATCH: usize = 32;

impl fmt::Debug for LeakBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stats = self.stats();
        f.debug_struct("LeakBudget")
            .field("name", &self.name)
            .field("limit", &self.limit())
            .field("reserved", &stats.reserved)
            .field("used", &stats.used)
            .field("parent", &self.parent.map(LeakBudget::name))
            .finish_non_exhaustive()
    }
}

impl fmt::Display for LeakBudget {
    /// `name: reserved / limit`, e.g. `config: 4.00 KiB / 1.00 MiB`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} / {}", self.name, Bytes(self.reserved()), Bytes(self.limit()))
    }
}
