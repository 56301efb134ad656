//! Webhooks out and in (being built).
