//! The API tokens settings page's server functions. Tokens are `auth::tokens` (server only): the page
//! sees names, display prefixes and times, and the token itself exactly once, in the answer to
//! [`create_api_token`].

use contract::Problem;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Every scope a token can have, in the order the form lists them (the names `auth::tokens::Scope` uses).
pub const SCOPES: &[&str] = &["notifications:read", "notifications:write", "webhooks:read", "webhooks:write", "workflows:read", "workflows:write"];

/// The expiry choices: (form value, label). Every token expires (at most `auth.token_max_lifetime_days`,
/// 365 unless the operator set it lower, which refuses the longer choices with a message).
pub const EXPIRY_CHOICES: &[(&str, &str)] = &[("7", "in 7 days"), ("30", "in 30 days"), ("90", "in 90 days"), ("365", "in 1 year")];

/// A token as the list shows it (never the secret): the token store's own record, and whether it has
/// expired by the server's clock (the page must not judge that by the browser's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRow {
    pub token: contract::tokens::TokenInfo,
    pub expired: bool,
}

/// The answer to a create: the token, shown once. A refusal is a problem naming the form's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CreatedToken {
    pub name: String,
    pub token: String,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use contract::Problem;

    pub fn store() -> Result<auth::tokens::ApiTokenStore, Problem> {
        Ok(crate::api::ssr::require_services()?.tokens.clone())
    }

    /// Tokens belong to the user id (usernames are not forever).
    pub fn user_id() -> Result<i64, Problem> {
        crate::api::ssr::signed_in().map(|s| s.user_id).ok_or_else(crate::api::ssr::sign_in_first)
    }

    /// Asks the signed-in user's password again before a browser session mints a credential (an API
    /// token, a webhook signing secret): a stolen session alone must not be enough. A wrong password
    /// is a 401 and counts as a failed sign-in for the account's throttle (429 once locked).
    pub async fn confirm_password(user_id: i64, current_password: String) -> Result<(), Problem> {
        let services = crate::api::ssr::require_services()?;
        match services.authenticator.confirm_password(user_id, secrecy::SecretString::from(current_password)).await {
            Ok(()) => Ok(()),
            Err(auth::AuthError::InvalidCredentials) => Err(Problem::unauthorized("Your current password is not correct.")
                .with_field("current_password", "Your current password is not correct.")),
            Err(e) => Err(Problem::from(e)),
        }
    }

    /// The form's input for a field `auth::tokens` names (the form asks for days, not a time).
    pub fn input_of(field: &str) -> &str {
        match field {
            "expires_at" => "expires_days",
            other => other,
        }
    }
}

/// The signed-in user's tokens, newest first; `None` when signed out.
#[server]
pub async fn list_api_tokens() -> Result<Option<Vec<TokenRow>>, Problem> {
    let Ok(me) = ssr::user_id() else { return Ok(None) };
    let now = auth::now_unix();
    let rows = ssr::store()?.list(me).await.map_err(Problem::from)?;
    Ok(Some(rows.into_iter().map(|t| TokenRow { expired: t.expires_at.is_some_and(|e| e <= now), token: t }).collect()))
}

/// Creates a token from the form: a name, ticked scopes (`scopes[i]`), an expiry in days (empty: the
/// longest allowed) and the user's current password (`current_password`, checked after the cheap
/// checks of the other fields). The token is in the answer and nowhere else: it is not logged and the
/// server keeps only its hash.
#[server]
pub async fn create_api_token(
    name: String,
    scopes: Option<Vec<String>>,
    expires_days: Option<String>,
    current_password: Option<String>,
) -> Result<CreatedToken, Problem> {
    use secrecy::ExposeSecret;
    let me = ssr::user_id()?;
    let refuse = |field: &str, message: String| Err(Problem::invalid(field, message));
    let mut parsed = vec![];
    for s in scopes.unwrap_or_default() {
        match s.parse::<auth::Scope>() {
            Ok(scope) => parsed.push(scope),
            Err(e) => return refuse("scopes", e.to_string()),
        }
    }
    let store = ssr::store()?;
    let max_days = store.max_lifetime_days();
    let days = expires_days.unwrap_or_default();
    let expires_at = match days.trim() {
        "" => None,
        d => match d.parse::<i64>() {
            Ok(n) if (1..=max_days).contains(&n) => Some(auth::now_unix() + n * 86_400),
            Ok(n) if n > max_days => {
                return refuse("expires_days", format!("Tokens expire within {max_days} days at most: choose an earlier expiry."))
            }
            _ => return refuse("expires_days", format!("Choose an expiry between 1 and {max_days} days.")),
        },
    };
    if let Err(e) = auth::tokens::validate_name(&name) {
        return refuse("name", e.to_string());
    }
    if parsed.is_empty() {
        return refuse("scopes", "Choose at least one scope.".into());
    }
    ssr::confirm_password(me, current_password.unwrap_or_default()).await?;
    match store.create(me, &name, &parsed, expires_at).await {
        Ok((info, token)) => {
            let token = token.expose_secret().to_string();
            crate::shown_once::ssr::stash(&crate::shown_once::ShownOnce {
                kind: "token".into(),
                title: format!("Token “{}” created", info.name),
                secret: token.clone(),
                link: None,
            });
            Ok(CreatedToken { name: info.name, token })
        }
        Err(e) => Err(Problem::from(e).renaming_fields(|field| ssr::input_of(field).to_string())),
    }
}

/// Revokes one of the signed-in user's tokens; it stops working at once.
#[server]
pub async fn revoke_api_token(id: i64) -> Result<(), Problem> {
    let me = ssr::user_id()?;
    match ssr::store()?.revoke(me, id).await {
        Ok(()) | Err(auth::AuthError::NotFound) => Ok(()),
        Err(e) => Err(Problem::from(e)),
    }
}
