//! Deterministic generator of degraded camera frames for tests and benchmarks.
