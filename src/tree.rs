//! Budget trees: child budgets charged to their ancestors.
