//! The bench harness library (placeholder until its issue lands).
