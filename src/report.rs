//! The leak report: every budget as a tree, with its figures.
