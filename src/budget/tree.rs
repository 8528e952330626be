//! Budget trees: child budgets charged to their ancestors.
//!
//! A child is an ordinary [`LeakBudget`] with a parent. Every byte it takes from the global allocator is charged to it
//! *and* to every ancestor, child first, each level with a checked compare-and-swap; if any level refuses, the levels
//! already charged are given back and the request fails, so a request that fits the child but not an ancestor changes
//! neither (`src/arena/account.rs`, `Account::charge`). Charges go up the tree only when a chunk, a lane, a dedicated block
//! or a record is taken: the per-value fast path bumps in the calling thread's lane and never looks at an ancestor, so
//! a leak into a grandchild costs what a leak into a root does.
//!
//! A child's limit is a *ceiling*, not a reservation: it may exceed what its parent has left (or even its parent's
//! limit), and the child simply cannot grow past whatever its ancestors can still afford. A *prepaid* child instead
//! takes its whole limit from its parent once, when its record is created, and from then on charges only itself: it
//! can always use its full limit, and nothing it does can fail for its parent's sake.
//!
//! A tree is walked without recursion: checking room, creating the records of a budget's ancestors, charging and
//! refunding every level are loops in constant stack space, so a tree's depth is bounded only by memory. `const`
//! constructors can tie a knot (`static A: LeakBudget = LeakBudget::child_of(&A, ..)`): such a parent chain is found
//! on first use, with a walk that ends whatever the chain's shape, and refused with [`LeakError::ParentCycle`].

use core::alloc::Layout;

use super::LeakBudget;
use crate::error::LeakError;
use crate::sync::loom_const_fn;

impl LeakBudget {
    loom_const_fn! {
        /// A child of `parent` named `name` with a cap of `limit` bytes, built in a `const` context so that it can be a
        /// `static`. Nothing is allocated or charged until its first request.
        ///
        /// Everything the child takes is charged to it and to every ancestor: a request fails if it does not fit the
        /// child *or* any ancestor, and then changes none of them. `limit` is a ceiling, not a reservation: it may be
        /// larger than what `parent` has left (or than `parent`'s limit); the child then stops where its ancestors do.
        /// Use [`prepaid_child_of`](Self::prepaid_child_of) to set the bytes aside instead.
        ///
        /// A `static` may name itself, or a later `static`, as its parent, so a parent chain can lead back to itself
        /// (`static A: LeakBudget = LeakBudget::child_of(&A, ..)`, or `A → B → A`). Such a budget has no root to charge:
        /// its first request that needs memory finds the loop, and every request that charges or registers it (or a
        /// budget under it) is refused with [`LeakError::ParentCycle`]; nothing hangs. Its `const` accessors keep
        /// answering, and its figures are zeros (with the refusals counted). The depth of a tree is not limited: every
        /// walk up it is a loop, not a recursion.
        ///
        /// # Examples
        ///
        /// ```
        /// use leak_budget::{LeakBudget, LeakError};
        ///
        /// static APP: LeakBudget = LeakBudget::named("app", 64 << 10);
        /// static CONFIG: LeakBudget = LeakBudget::child_of(&APP, "config", 16 << 10);
        /// // A ceiling, not a reservation: larger than what its parent could ever give.
        /// static CACHE: LeakBudget = LeakBudget::child_of(&APP, "cache", 1 << 20);
        ///
        /// let name: &'static str = CONFIG.leak_str("service-a")?;
        /// assert_eq!(name, "service-a");
        /// // The parent is charged for everything its child took.
        /// assert!(APP.reserved() >= CONFIG.reserved() && CONFIG.reserved() > 0);
        ///
        /// // CACHE may take up to 1 MiB, but APP has only 64 KiB in all: the parent refuses.
        /// let err = CACHE.leak_uninit_slice::<u8>(100 << 10).unwrap_err();
        /// assert!(matches!(err, LeakError::BudgetExceeded { budget: "app", .. }));
        /// # Ok::<(), LeakError>(())
        /// ```
        ///
        /// A budget that is its own ancestor is refused, never spun on:
        ///
        /// ```
        /// use leak_budget::{LeakBudget, LeakError};
        ///
        /// static PING: LeakBudget = LeakBudget::child_of(&PONG, "ping", 1 << 20);
        /// static PONG: LeakBudget = LeakBudget::child_of(&PING, "pong", 1 << 20);
        ///
        /// assert_eq!(PING.leak_str("x").unwrap_err(), LeakError::ParentCycle { budget: "ping" });
        /// assert_eq!(PONG.register().unwrap_err(), LeakError::ParentCycle { budget: "pong" });
        /// assert_eq!((PING.name(), PING.reserved(), PONG.parent().map(LeakBudget::name)), ("ping", 0, Some("ping")));
        /// ```
        #[must_use]
        pub fn child_of(parent: &'static LeakBudget, name: &'static str, limit: usize) -> Self {
            Self::build(limit, name, Some(parent), false)
        }
    }

    loom_const_fn! {
        /// A *prepaid* child of `parent`: when its record is created (on its first request, or at
        /// [`register`](Self::register)), its whole `limit` is charged to `parent` (and `parent`'s ancestors) at once,
        /// and from then on it charges only itself. It can always use all of `limit`, whatever its siblings do; in
        /// exchange, `parent` counts `limit` as reserved even while the child uses less.
        ///
        /// Call [`register`](Self::register) early (in `main`, say) to take the bytes then, so that a parent too small
        /// for the child fails at start-up rather than at the child's first request.
        ///
        /// As with [`child_of`](Self::child_of), a parent chain that leads back to the child is refused with
        /// [`LeakError::ParentCycle`] on first use (nothing is charged to any budget of the loop).
        ///
        /// # Examples
        ///
        /// ```
        /// use leak_budget::LeakBudget;
        ///
        /// static APP: LeakBudget = LeakBudget::named("app", 1 << 20);
        /// static CACHE: LeakBudget = LeakBudget::prepaid_child_of(&APP, "cache", 256 << 10);
        ///
        /// CACHE.register()?; // takes its 256 KiB from APP now
        /// assert!(APP.reserved() >= 256 << 10);
        /// let before = APP.reserved();
        /// CACHE.leak([0u64; 64])?;
        /// assert_eq!(APP.reserved(), before); // paid for already
        /// # Ok::<(), leak_budget::LeakError>(())
        /// ```
        #[must_use]
        pub fn prepaid_child_of(parent: &'static LeakBudget, name: &'static str, limit: usize) -> Self {
            Self::build(limit, name, Some(parent), true)
        }
    }

    /// A child of this budget, created at run time, named `name` with a cap of `limit` bytes.
    ///
    /// The child's handle (a [`LeakBudget`]) is leaked into this budget, which is charged for it (a few dozen bytes,
    /// and a chunk if this thread has no room left in its lane here). Otherwise it behaves as
    /// [`child_of`](Self::child_of): its charges go to it and to every ancestor, and `limit` is a ceiling, not a
    /// reservation; nothing more is charged until its first request.
    ///
    /// # Errors
    ///
    /// As [`leak`](Self::leak), if this budget cannot hold the child's handle; nothing is created then.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{LeakBudget, LeakError};
    ///
    /// static APP: LeakBudget = LeakBudget::named("app", 1 << 20);
    ///
    /// let plugins: &'static LeakBudget = APP.child("plugins", 256 << 10)?;
    /// let tiny: &'static LeakBudget = plugins.child("tiny-plugin", 8 << 10)?;
    /// tiny.leak_str("loaded")?;
    /// assert_eq!(tiny.parent().map(LeakBudget::name), Some("plugins"));
    /// assert!(APP.reserved() >= plugins.reserved() && plugins.reserved() >= tiny.reserved());
    ///
    /// let err = tiny.leak_uninit_slice::<u8>(16 << 10).unwrap_err();
    /// assert!(matches!(err, LeakError::BudgetExceeded { budget: "tiny-plugin", .. }));
    /// # Ok::<(), LeakError>(())
    /// ```
    pub fn child(&'static self, name: &'static str, limit: usize) -> Result<&'static LeakBudget, LeakError> {
        Ok(self.leak(Self::child_of(self, name, limit))?)
    }

    /// A [prepaid](Self::prepaid_child_of) child of this budget, created at run time: its whole `limit` is charged
    /// to this budget (and its ancestors) now, and from then on it charges only itself.
    ///
    /// The child's handle lives in the child's own bytes (so it counts against `limit`, and costs this budget nothing
    /// beyond `limit`).
    ///
    /// # Errors
    ///
    /// [`LeakError::BudgetExceeded`] naming this budget or an ancestor if they cannot afford `limit`, or naming the
    /// child if `limit` is too small to hold the child's record and handle (below
    /// [`RECORD_BYTES`](Self::RECORD_BYTES) `+` [`max_charge_for`](Self::max_charge_for)`(Layout::new::<LeakBudget>())`,
    /// a few hundred bytes); nothing is created or charged then. [`LeakError::AllocFailed`] if the global allocator
    /// fails (if that happens after `limit` was charged, the charge stays: the child's record exists).
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{LeakBudget, LeakError};
    ///
    /// static APP: LeakBudget = LeakBudget::named("app", 1 << 20);
    ///
    /// let cache = APP.prepaid_child("cache", 512 << 10)?;
    /// assert!(cache.is_prepaid() && APP.reserved() >= 512 << 10);
    /// // The parent cannot afford a second one: refused, and nothing changed.
    /// let before = APP.reserved();
    /// let err = APP.prepaid_child("cache-2", 768 << 10).unwrap_err();
    /// assert!(matches!(err, LeakError::BudgetExceeded { budget: "app", .. }));
    /// assert_eq!(APP.reserved(), before);
    /// # Ok::<(), LeakError>(())
    /// ```
    pub fn prepaid_child(&'static self, name: &'static str, limit: usize) -> Result<&'static LeakBudget, LeakError> {
        let child = Self::prepaid_child_of(self, name, limit);
        // Refuse a limit that could not hold the record and the handle before anything is charged: once the record
        // exists, its `limit` stays charged to this budget for good.
        let needed = Self::max_charge_for(Layout::new::<LeakBudget>()).saturating_add(Self::RECORD_BYTES);
        if needed > limit {
            return Err(LeakError::exceeded(name, false, needed, limit, limit));
        }
        child.register()?;
        // The handle moves into the child's own bytes: the slot's lifetime is `'static`, not tied to `child`.
        let slot = child.leak_uninit::<LeakBudget>()?;
        Ok(slot.write(child))
    }

    /// The budget this one is a child of, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static APP: LeakBudget = LeakBudget::named("app", 1 << 20);
    /// static CONFIG: LeakBudget = LeakBudget::child_of(&APP, "config", 4096);
    /// assert!(core::ptr::eq(CONFIG.parent().unwrap(), &APP));
    /// assert!(APP.parent().is_none());
    /// ```
    #[must_use]
    pub const fn parent(&self) -> Option<&'static LeakBudget> {
        self.parent
    }

    /// Whether this budget is a [prepaid](Self::prepaid_child_of) child (its whole limit is charged to its parent).
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::LeakBudget;
    ///
    /// static APP: LeakBudget = LeakBudget::named("app", 1 << 20);
    /// static CACHE: LeakBudget = LeakBudget::prepaid_child_of(&APP, "cache", 4096);
    /// static CONFIG: LeakBudget = LeakBudget::child_of(&APP, "config", 4096);
    /// assert!(CACHE.is_prepaid() && !CONFIG.is_prepaid());
    /// ```
    #[must_use]
    pub const fn is_prepaid(&self) -> bool {
        self.prepaid
    }

    /// Creates this budget's record now rather than on its first request (and its ancestors' records, if they have
    /// none yet). From then on the budget appears in [reports](fn@crate::report), even if it never leaks anything. For
    /// a [prepaid](Self::prepaid_child_of) child, this is when its whole limit is taken from its parent. Does nothing
    /// if the record exists already.
    ///
    /// The record costs [`RECORD_BYTES`](Self::RECORD_BYTES), charged to the budget and its ancestors (a prepaid child
    /// charges its parent its limit instead).
    ///
    /// # Errors
    ///
    /// [`LeakError::BudgetExceeded`] if the budget's limit is below `RECORD_BYTES`, or if an ancestor cannot afford
    /// the charge (it names the budget that refused); [`LeakError::AllocFailed`] if the global allocator fails;
    /// [`LeakError::ParentCycle`] if the budget's parent chain leads back to itself (it names the first budget of the
    /// chain on the loop); [`LeakError::Reentrant`] if called by the thread that is creating the record of this budget
    /// or of an ancestor (from a global allocator, say). Nothing is created or charged then: the room the records
    /// need up the tree is checked before any is created (as a first request does), so a refusal leaves the
    /// ancestors as they were, but for a race with other threads taking the room in between, where an ancestor's
    /// record created before the refusal stays (it is one its first request would create). A refused `register` is
    /// not counted as a rejected request.
    ///
    /// Registering at start-up is also what makes a budget safe to leak into from a custom global allocator: with
    /// every record created, no request has to create one while the allocator is serving another.
    ///
    /// # Examples
    ///
    /// ```
    /// use leak_budget::{LeakBudget, LeakError};
    ///
    /// static APP: LeakBudget = LeakBudget::named("app", 64 << 10);
    /// static IDLE: LeakBudget = LeakBudget::child_of(&APP, "idle", 4096);
    /// static TOO_BIG: LeakBudget = LeakBudget::prepaid_child_of(&APP, "too-big", 1 << 20);
    ///
    /// IDLE.register()?;
    /// assert_eq!(IDLE.reserved(), LeakBudget::RECORD_BYTES);
    /// assert!(APP.report().find("idle").is_some());
    ///
    /// let err = TOO_BIG.register().unwrap_err();
    /// assert!(matches!(err, LeakError::BudgetExceeded { budget: "app", .. }));
    /// assert_eq!(TOO_BIG.reserved(), 0);
    ///
    /// // Refused before its parent's record is created: nothing changes up the tree either.
    /// static FRESH: LeakBudget = LeakBudget::named("fresh", 4 << 10);
    /// static PREPAID: LeakBudget = LeakBudget::prepaid_child_of(&FRESH, "prepaid", 8 << 10);
    /// assert!(PREPAID.register().is_err());
    /// assert_eq!(FRESH.reserved(), 0);
    /// # Ok::<(), LeakError>(())
    /// ```
    pub fn register(&self) -> Result<(), LeakError> {
        if self.existing_record().is_none() {
            // Up front, as a first request does, so that a parent that cannot afford this record (or a prepaid
            // child's limit) is refused before the missing ancestors' records are created.
            self.check_room(0)?;
        }
        self.record().map(|_| ())
    }
}
