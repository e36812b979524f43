//! The docker engine (placeholder until main's refactor moves `copy` here; main supersedes).
