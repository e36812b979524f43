//! The registry engine's blob paths against the fake registry.
