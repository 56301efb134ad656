//! API tokens as their owner sees them (never the secret or its hash), and the scopes a token can
//! have. `auth` stores and checks them and re-exports these types; the settings page shows them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::FieldError;

/// What a token may do. The names are stable (stored in the database and shown in the API docs).
/// A `write` scope does not imply the `read` one: a token gets exactly what was ticked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "notifications:read")]
    NotificationsRead,
    #[serde(rename = "notifications:write")]
    NotificationsWrite,
    #[serde(rename = "webhooks:read")]
    WebhooksRead,
    #[serde(rename = "webhooks:write")]
    WebhooksWrite,
    #[serde(rename = "workflows:read")]
    WorkflowsRead,
    #[serde(rename = "workflows:write")]
    WorkflowsWrite,
    /// The machine's storage and retention (`/api/v1/ops/…`); only operators' tokens may carry it.
    #[serde(rename = "ops:read")]
    OpsRead,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::NotificationsRead,
        Scope::NotificationsWrite,
        Scope::WebhooksRead,
        Scope::WebhooksWrite,
        Scope::WorkflowsRead,
        Scope::WorkflowsWrite,
        Scope::OpsRead,
    ];

    /// What every user may give a token (and a browser session may do): all but the operators' scopes.
    pub const USER: [Scope; 6] =
        [Scope::NotificationsRead, Scope::NotificationsWrite, Scope::WebhooksRead, Scope::WebhooksWrite, Scope::WorkflowsRead, Scope::WorkflowsWrite];

    /// Only operators (`APP_OPERATORS`) may hold it.
    pub fn is_operators(self) -> bool {
        matches!(self, Scope::OpsRead)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::NotificationsRead => "notifications:read",
            Scope::NotificationsWrite => "notifications:write",
            Scope::WebhooksRead => "webhooks:read",
            Scope::WebhooksWrite => "webhooks:write",
            Scope::WorkflowsRead => "workflows:read",
            Scope::WorkflowsWrite => "workflows:write",
            Scope::OpsRead => "ops:read",
        }
    }

    /// Parses a list separated by spaces and/or commas (`"webhooks:read, workflows:write"`); the result
    /// is sorted and without duplicates. An unknown name is an error that names it.
    pub fn parse_list(s: &str) -> Result<Vec<Scope>, FieldError> {
        let scopes =
            s.split(|c: char| c == ',' || c.is_whitespace()).filter(|p| !p.is_empty()).map(Scope::from_str).collect::<Result<Vec<_>, _>>()?;
        Ok(Scope::normalise(&scopes))
    }

    /// Sorted, without duplicates.
    pub fn normalise(scopes: &[Scope]) -> Vec<Scope> {
        let mut v = scopes.to_vec();
        v.sort();
        v.dedup();
        v
    }

    /// The stored form: names separated by single spaces.
    pub fn join(scopes: &[Scope]) -> String {
        scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
    }
}

impl FromStr for Scope {
    /// About the input `scopes`.
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s).ok_or_else(|| {
            let shown: String = s.chars().take(40).collect();
            FieldError::new("scopes", format!("Unknown scope {shown:?}. Known scopes: {}.", Scope::join(&Scope::ALL).replace(' ', ", ")))
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token as the settings page may show it: never the secret or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    /// The token's first characters, e.g. `ie_Ab3xY`.
    pub prefix: String,
    pub scopes: Vec<Scope>,
    pub created_at: i64,
    /// To within a minute; `None` if never used.
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
}
