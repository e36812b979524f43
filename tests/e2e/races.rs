//! Concurrent jobs in one run: shared sources, shared repositories, the pull budget.
