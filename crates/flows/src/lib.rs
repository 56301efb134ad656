//! Orchestrated workflows (being built).
