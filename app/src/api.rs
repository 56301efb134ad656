//! Server functions the pages call, and the types they exchange. The bodies only gather what the domain
//! crates already computed; the server provides the services through Leptos context.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// One signed-in session as the success page shows it (the registry's own row type).
pub use contract::sessions::SessionInfo;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overview {
    pub username: String,
    pub current: SessionInfo,
    /// When this session ends however active it is.
    pub absolute_expires_at: i64,
    /// When this session ends if it sees no request before then.
    pub idle_expires_at: i64,
    pub idle_timeout_secs: i64,
    pub others: Vec<SessionInfo>,
}

/// Every server function fails with a [`Problem`] (RFC 9457, the shape of every error a client sees);
/// a page shows its `detail` and puts `errors` under the inputs they name.
pub use contract::{FieldError, Kind, Problem};

#[cfg(feature = "ssr")]
pub mod ssr {
    use auth::sessions::SessionInfo;
    use auth::{AuthError, SessionPolicy};
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;

    /// A user's sessions that have not expired, newest first: the server answers from its session
    /// cache while they are unchanged, else from the registry. The second argument is the request's
    /// [`SessionGeneration`], if any.
    pub type SessionsOf = Arc<dyn Fn(i64, Option<u64>) -> Pin<Box<dyn Future<Output = Result<Vec<SessionInfo>, AuthError>> + Send>> + Send + Sync>;

    /// The generation of the signed-in user's sessions that the server checked this request's session
    /// at (`server::session_cache`): the page's list of sessions is answered at the same one, without
    /// reading it again.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct SessionGeneration(pub u64);

    /// [`SessionGeneration`] of the current request, for server functions.
    pub fn session_generation() -> Option<u64> {
        leptos::prelude::use_context::<http::request::Parts>().and_then(|parts| Some(parts.extensions.get::<SessionGeneration>()?.0))
    }

    /// What the server hands to pages and server functions: one context per render, so providing
    /// it is one `Arc` clone rather than a boxed clone of each service.
    pub struct PageServices {
        pub sessions_of: SessionsOf,
        pub policy: SessionPolicy,
        pub lab: crate::crypto_api::ssr::LabGate,
        /// Whether sign-up is offered (`APP_SIGNUP`).
        pub signup_offered: bool,
        /// Whether cookies are set `Secure` (`__Host-`) whatever the request looks like.
        pub secure_cookies: bool,
        pub notify: notify::NotifyService,
        pub hooks: hooks::Hooks,
        pub flows: flows::Engine,
        pub tokens: auth::tokens::ApiTokenStore,
        /// Minting a token or a webhook secret from a page asks for the password again.
        pub authenticator: auth::Authenticator,
        pub ops: crate::notify_api::ssr::OpsView,
    }

    /// The services of the current render; `None` only outside a server render (unit tests).
    pub fn services() -> Option<Arc<PageServices>> {
        leptos::prelude::use_context::<Arc<PageServices>>()
    }

    /// [`services`], or the problem a server function answers without them.
    pub fn require_services() -> Result<Arc<PageServices>, super::Problem> {
        services().ok_or_else(|| super::Problem::internal("services missing"))
    }

    pub fn sign_in_first() -> super::Problem {
        super::Problem::unauthorized("Sign in first.")
    }

    /// The client's address as the server derived it, once per request (`server::middleware::client_address`):
    /// the connection's peer, or the address a trusted proxy names. `None` when the peer is unknown.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct ClientAddr(pub Option<std::net::IpAddr>);

    /// [`ClientAddr`] of the current request, for server functions.
    pub fn client_addr() -> Option<std::net::IpAddr> {
        leptos::prelude::use_context::<http::request::Parts>().and_then(|parts| parts.extensions.get::<ClientAddr>()?.0)
    }

    /// The signed-in user of the current request, put there by the server's session middleware.
    pub fn signed_in() -> Option<auth::sessions::SignedIn> {
        leptos::prelude::use_context::<http::request::Parts>().and_then(|parts| parts.extensions.get::<auth::sessions::SignedIn>().cloned())
    }

    /// Whose things a page works on: the signed-in user's (by username, as in the REST API).
    pub fn owner() -> Result<contract::Owner, super::Problem> {
        signed_in().map(|s| contract::Owner::new(s.username)).ok_or_else(sign_in_first)
    }
}

/// The signed-in user's current session and their other sessions; `None` when signed out.
#[server]
pub async fn session_overview() -> Result<Option<Overview>, Problem> {
    use ssr::{require_services, session_generation, signed_in};
    let Some(me) = signed_in() else {
        return Ok(None);
    };
    let services = require_services()?;
    let rows = (services.sessions_of)(me.user_id, session_generation()).await.map_err(Problem::from)?;
    let (mine, others): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.handle == me.handle);
    let current = mine.into_iter().next().unwrap_or(SessionInfo {
        handle: me.handle.clone(),
        created_at: me.created_at,
        last_seen_at: me.last_seen_at,
        expires_at: services.policy.expires_at(me.created_at, me.last_seen_at),
        user_agent: String::new(),
        client_ip: String::new(),
    });
    Ok(Some(Overview {
        username: me.username.clone(),
        current,
        absolute_expires_at: services.policy.absolute_expiry(me.created_at),
        idle_expires_at: services.policy.expires_at(me.created_at, me.last_seen_at),
        idle_timeout_secs: services.policy.idle_timeout.as_secs() as i64,
        others,
    }))
}

/// The signed-in username, for the header; `None` when signed out.
#[server]
pub async fn whoami() -> Result<Option<String>, Problem> {
    Ok(ssr::signed_in().map(|s| s.username))
}

/// Why the server re-rendered the login page after a plain (no-JavaScript) form post failed.
/// The server provides it as context; the page ships it to the browser for hydration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginFailure {
    pub message: String,
    pub username: String,
}
