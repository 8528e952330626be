//! An insert-only concurrent hash table with lock-free look-ups, its memory charged to a budget.
