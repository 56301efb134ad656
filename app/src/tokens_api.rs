//! The API tokens settings page's server functions. Tokens are `auth::tokens` (server only): the page
//! sees names, display prefixes and times, and the token itself exactly once, in the answer to
//! [`create_api_token`].

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Every scope a token can have, in the order the form lists them (the names `auth::tokens::Scope` uses).
pub const SCOPES: &[&str] =
    &["notifications:read", "notifications:write", "webhooks:read", "webhooks:write", "workflows:read", "workflows:write"];

/// The expiry choices: (form value, label). Empty means never.
pub const EXPIRY_CHOICES: &[(&str, &str)] = &[("7", "in 7 days"), ("30", "in 30 days"), ("90", "in 90 days"), ("365", "in 1 year"), ("", "never")];

/// A token as the list shows it: never the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub expired: bool,
}

/// The answer to a create: the token (shown once), or what was wrong, field by field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CreatedToken {
    pub name: String,
    pub token: Option<String>,
    pub errors: Vec<(String, String)>,
    pub message: Option<String>,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use leptos::prelude::*;

    pub fn store() -> Result<auth::tokens::ApiTokenStore, ServerFnError> {
        use_context::<auth::tokens::ApiTokenStore>().ok_or_else(|| ServerFnError::new("token store missing"))
    }

    /// Tokens belong to the user id (usernames are not forever).
    pub fn user_id() -> Result<i64, ServerFnError> {
        crate::api::ssr::signed_in().map(|s| s.user_id).ok_or_else(crate::api::ssr::sign_in_first)
    }

    /// Which form field an `InvalidInput` message from `auth::tokens` is about.
    pub fn field_of(message: &str) -> &'static str {
        let m = message.to_ascii_lowercase();
        if m.contains("scope") {
            "scopes"
        } else if m.contains("expir") {
            "expires_days"
        } else if m.contains("name") {
            "name"
        } else {
            ""
        }
    }
}

/// The signed-in user's tokens, newest first; `None` when signed out.
#[server]
pub async fn list_api_tokens() -> Result<Option<Vec<TokenRow>>, ServerFnError> {
    let Ok(me) = ssr::user_id() else { return Ok(None) };
    let now = auth::now_unix();
    let rows = ssr::store()?.list(me).await.map_err(|e| crate::api::ssr::refuse(e.status(), e.to_string()))?;
    Ok(Some(
        rows.into_iter()
            .map(|t| TokenRow {
                id: t.id,
                expired: t.expires_at.is_some_and(|e| e <= now),
                name: t.name,
                prefix: t.prefix,
                scopes: t.scopes.iter().map(|s| s.as_str().to_string()).collect(),
                created_at: t.created_at,
                last_used_at: t.last_used_at,
                expires_at: t.expires_at,
            })
            .collect(),
    ))
}

/// Creates a token from the form: a name, ticked scopes (`scopes[i]`) and an expiry in days (empty:
/// never). The token is in the answer and nowhere else: it is not logged and the server keeps only
/// its hash.
#[server]
pub async fn create_api_token(name: String, scopes: Option<Vec<String>>, expires_days: Option<String>) -> Result<CreatedToken, ServerFnError> {
    use secrecy::ExposeSecret;
    let me = ssr::user_id()?;
    let refuse = |field: &str, message: String| CreatedToken {
        name: name.clone(),
        errors: if field.is_empty() { vec![] } else { vec![(field.to_string(), message.clone())] },
        message: field.is_empty().then_some(message),
        ..Default::default()
    };
    let mut parsed = vec![];
    for s in scopes.unwrap_or_default() {
        match s.parse::<auth::Scope>() {
            Ok(scope) => parsed.push(scope),
            Err(e) => return Ok(refuse("scopes", e.to_string())),
        }
    }
    let days = expires_days.unwrap_or_default();
    let expires_at = match days.trim() {
        "" => None,
        d => match d.parse::<i64>() {
            Ok(n) if (1..=3650).contains(&n) => Some(auth::now_unix() + n * 86_400),
            _ => return Ok(refuse("expires_days", "Choose an expiry between 1 and 3650 days, or never.".into())),
        },
    };
    match ssr::store()?.create(me, &name, &parsed, expires_at).await {
        Ok((info, token)) => {
            let token = token.expose_secret().to_string();
            crate::shown_once::ssr::stash(&crate::shown_once::ShownOnce {
                kind: "token".into(),
                title: format!("Token “{}” created", info.name),
                secret: token.clone(),
                link: None,
            });
            Ok(CreatedToken { name: info.name, token: Some(token), ..Default::default() })
        }
        Err(auth::AuthError::InvalidInput(m)) => Ok(refuse(ssr::field_of(&m), m)),
        Err(e) => Ok(refuse("", e.to_string())),
    }
}

/// Revokes one of the signed-in user's tokens; it stops working at once.
#[server]
pub async fn revoke_api_token(id: i64) -> Result<(), ServerFnError> {
    let me = ssr::user_id()?;
    match ssr::store()?.revoke(me, id).await {
        Ok(()) | Err(auth::AuthError::NotFound) => Ok(()),
        Err(e) => Err(crate::api::ssr::refuse(e.status(), e.to_string())),
    }
}
