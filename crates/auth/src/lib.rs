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

/// Seconds since the Unix epoch, the one clock every table in this crate uses.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
