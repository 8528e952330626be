//! Layer 1: where a budget's bytes come from.

pub(crate) mod account;
pub(crate) mod block;
pub(crate) mod lane;
