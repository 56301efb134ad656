//! What the sign-up and password-change pages exchange with the server. Both forms post to server
//! routes (`/signup`, `/settings/password`), like the login; this module has the types those routes
//! hand back to a re-rendered page, and the one server function the pages read them through.

use contract::Problem;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Why the server re-rendered a form page after a plain form post failed: the message, the field it
/// is about (`None`: the form as a whole) and the username to keep in the form. Passwords are never
/// sent back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FormFailure {
    pub message: String,
    pub field: Option<String>,
    pub username: String,
}

impl FormFailure {
    /// The message if it is about `field`.
    pub fn for_field(&self, field: &str) -> Option<String> {
        (self.field.as_deref() == Some(field)).then(|| self.message.clone())
    }

    /// The message if it is about the form as a whole.
    pub fn general(&self) -> Option<String> {
        self.field.is_none().then(|| self.message.clone())
    }
}

/// What a form page needs from the server before it renders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FormPageState {
    pub signup_offered: bool,
    /// Set only when the server re-renders the page after a failed plain form post.
    pub failure: Option<FormFailure>,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;

    pub fn signup_offered() -> bool {
        crate::api::ssr::services().is_some_and(|s| s.signup_offered)
    }

    pub fn form_failure() -> Option<FormFailure> {
        use_context::<http::request::Parts>().and_then(|p| p.extensions.get::<FormFailure>().cloned())
    }
}

/// Whether sign-up is offered, and the failure of the form post this page answers (if any).
#[server]
pub async fn load_form_page() -> Result<FormPageState, Problem> {
    Ok(FormPageState { signup_offered: ssr::signup_offered(), failure: ssr::form_failure() })
}
