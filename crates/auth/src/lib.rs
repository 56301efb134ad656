//! Accounts and sessions for Implementation-Eng: Argon2id password hashing, the new-password policy, the
//! user store, failed-login throttling, the registry of signed-in sessions and API tokens.
//! Plain library code: the web layer lives in `server/`.

pub mod db;
pub mod error;
pub mod form;
pub mod password;
pub mod policy;
pub mod service;
pub mod sessions;
pub mod throttle;
pub mod tokens;
pub mod users;

pub use error::AuthError;
pub use form::LoginForm;
pub use password::PasswordHasher;
pub use policy::{check_new_password, PasswordPolicy};
pub use service::{check_login_input, Authenticator, LoginAttempt};
pub use sessions::{SessionInfo, SessionPolicy, SessionRegistry};
pub use throttle::{AddressRateLimit, LoginThrottle, StoredBytes, ThrottleConfig};
pub use tokens::{ApiTokenStore, Scope, TokenInfo, TokenPrincipal};
pub use users::{User, UserStore};

/// What retention prunes of accounts (issue 17): sessions once expired (they are refused on read
/// before that), by their absolute expiry (`SessionPolicy` keeps it beyond the idle one).
pub const RETAINED_SESSIONS: &[::db::Prunable] =
    &[::db::Prunable { table: "user_sessions", key: "handle", older_than: "expires_at < $1", age: "expires_at", in_secs: true }];

/// API tokens some time after they were revoked or expired (until then the settings page lists them,
/// and a request with one is told it is revoked or expired rather than unknown).
pub const RETAINED_TOKENS: &[::db::Prunable] = &[::db::Prunable {
    table: "api_tokens",
    key: "id",
    older_than: "COALESCE(revoked_at, expires_at) < $1",
    age: "COALESCE(revoked_at, expires_at)",
    in_secs: true,
}];

/// Seconds since the Unix epoch, the one clock every table in this crate uses.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
