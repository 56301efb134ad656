//! The auth crate's integration tests, in one binary: each file a module, the shared helpers in `common`.
//! `login_timing` is a binary of its own, so no other test's Argon2 work runs beside its measurement.

mod common;

mod api_tokens;
mod credentials;
mod login;
mod sign_up_and_password_change;
mod throttle;
