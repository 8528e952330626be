//! Placeholder: filled in with its component.
fn main() {}
