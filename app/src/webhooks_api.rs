//! The webhooks settings page's server functions. Endpoints, their secrets, deliveries and owner
//! notices are `crates/hooks` (server only); endpoints and notices travel as `contract::webhooks` types,
//! the ones the REST API answers with too. Secrets appear only in the answers to
//! [`create_webhook_endpoint`] and [`rotate_webhook_secret`].

use contract::ids::{EndpointId, MessageId};
use contract::Problem;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Endpoints and notices as every client sees them (the REST API answers with the same types).
pub use contract::webhooks::{Endpoint, OwnerNotice};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhooksDashboard {
    pub endpoints: Vec<Endpoint>,
    /// Unread notices (an endpoint disabled after failing repeatedly).
    pub notices: Vec<OwnerNotice>,
    /// Every event type an endpoint can subscribe to.
    pub event_types: Vec<EventTypeView>,
}

/// An event type of the catalogue as the page shows it: its name and what it means. Each type's
/// example body and JSON Schema are in the API reference (`/api/docs#event-<name>`), rendered once per
/// process, rather than in every render of the settings page and its hydration state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventTypeView {
    pub name: String,
    pub description: String,
}

/// One delivery attempt in an endpoint's log, with its message's event type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptView {
    pub attempt: contract::webhooks::AttemptRecord,
    pub event_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointDetail {
    pub endpoint: Endpoint,
    pub attempts: Vec<AttemptView>,
    /// Its latest "recover failed messages since", newest first.
    pub recoveries: Vec<contract::webhooks::Recovery>,
    /// What the recover form starts with: a day ago, as `<input type="datetime-local">` writes it (UTC).
    pub suggested_since: String,
}

/// The answer to "Add endpoint": the new endpoint's secret, shown once. A refusal is a problem naming
/// the form's inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CreatedEndpointView {
    pub endpoint_id: String,
    pub url: String,
    pub secret: String,
}

/// The answer to "Rotate secret": the new secret, shown once.
pub use contract::webhooks::RotatedSecret;

/// Attempts listed on an endpoint's page.
pub const ATTEMPTS_SHOWN: u32 = 50;

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;

    pub fn hooks() -> Result<hooks::Hooks, Problem> {
        Ok(crate::api::ssr::require_services()?.hooks.clone())
    }

    pub use crate::api::ssr::owner;

    /// Field errors keyed by form field: `event_types[2]` belongs under the event types.
    pub fn form_errors(e: &hooks::HooksError) -> Vec<contract::FieldError> {
        e.field_errors().iter().map(|fe| contract::FieldError::new(fe.field.split('[').next().unwrap_or(&fe.field), sentence(&fe.message))).collect()
    }

    /// `2026-12-06T10:30` (what `<input type="datetime-local">` sends, seconds optional), read as UTC,
    /// in ms since the epoch.
    pub fn utc_minute_ms(s: &str) -> Option<i64> {
        let (s, minute, second) = (s.trim(), MINUTE, format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"));
        let t = time::PrimitiveDateTime::parse(s, minute).or_else(|_| time::PrimitiveDateTime::parse(s, second)).ok()?;
        Some((t.assume_utc().unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// A time as `<input type="datetime-local">` shows it (UTC, to the minute).
    pub fn utc_minute(ms: i64) -> String {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        t.format(MINUTE).unwrap_or_default()
    }

    use time::macros::format_description;
    const MINUTE: &[time::format_description::BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]T[hour]:[minute]");

    /// `must not be empty` → `Must not be empty.`
    pub fn sentence(m: &str) -> String {
        let mut c = m.chars();
        let mut s: String = c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default();
        if !s.ends_with('.') {
            s.push('.');
        }
        s
    }
}

/// The signed-in user's endpoints, unread notices and the event catalogue; `None` when signed out.
#[server]
pub async fn webhooks_overview() -> Result<Option<WebhooksDashboard>, Problem> {
    use ssr::*;
    let Ok(me) = owner() else { return Ok(None) };
    let hooks = hooks()?;
    let endpoints = hooks.list_endpoints(&me, hooks::PageRequest::first(100)).await.map_err(Problem::from)?;
    let notices = hooks.notices(&me, hooks::PageRequest::first(20)).await.map_err(Problem::from)?;
    Ok(Some(WebhooksDashboard {
        endpoints: endpoints.items,
        notices: notices.items.into_iter().filter(|n| !n.read).collect(),
        event_types: hooks::events::CATALOGUE
            .iter()
            .map(|e| EventTypeView { name: e.name.to_string(), description: e.description.to_string() })
            .collect(),
    }))
}

/// Registers an endpoint from the form (`event_types[i]` checkboxes; none ticked means all events).
/// The `whsec_` secret is in the answer only: never logged, never shown again.
#[server]
pub async fn create_webhook_endpoint(
    url: String,
    description: Option<String>,
    event_types: Option<Vec<String>>,
    rate_limit_per_sec: Option<String>,
) -> Result<CreatedEndpointView, Problem> {
    let me = ssr::owner()?;
    let rate_limit_per_sec = match rate_limit_per_sec.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        None => None,
        Some(r) => Some(r.parse::<u32>().map_err(|_| Problem::invalid("rate_limit_per_sec", "A whole number of messages a second, or empty."))?),
    };
    let new =
        hooks::NewEndpoint { url, description: description.unwrap_or_default(), event_types: event_types.unwrap_or_default(), rate_limit_per_sec };
    match ssr::hooks()?.create_endpoint(&me, new).await {
        Ok(created) => {
            crate::shown_once::ssr::stash(&crate::shown_once::ShownOnce {
                kind: "endpoint".into(),
                title: format!("Endpoint {} added: its signing secret", created.endpoint.id),
                secret: created.secret.clone(),
                link: Some(format!("/settings/webhooks/{}", created.endpoint.id)),
            });
            Ok(CreatedEndpointView { endpoint_id: created.endpoint.id, url: created.endpoint.url, secret: created.secret })
        }
        Err(e) => {
            // Each message goes under its input (`event_types[2]` under the event types), and the
            // detail says them all with the inputs' labels, for the alert.
            let errors = ssr::form_errors(&e);
            let label = |f: &str| match f {
                "url" => "URL".to_string(),
                "event_types" => "Event types".to_string(),
                other => other.replace('_', " "),
            };
            let said = errors.iter().map(|f| format!("{}: {}", label(&f.field), f.message)).collect::<Vec<_>>().join(" ");
            let mut problem = Problem::from(e);
            problem.errors = errors;
            if !said.is_empty() {
                problem.detail = said;
            }
            Err(problem)
        }
    }
}

/// One of the user's endpoints with its latest delivery attempts (newest first); `None` if there is
/// no such endpoint of theirs.
#[server]
pub async fn webhook_endpoint_detail(id: EndpointId) -> Result<Option<EndpointDetail>, Problem> {
    let me = ssr::owner()?;
    let hooks = ssr::hooks()?;
    let endpoint = match hooks.get_endpoint(&me, &id).await {
        Ok(e) => e,
        Err(hooks::HooksError::NotFound) => return Ok(None),
        Err(e) => return Err(Problem::from(e)),
    };
    let attempts = hooks.endpoint_attempts(&me, &id, hooks::PageRequest::first(ATTEMPTS_SHOWN)).await.map_err(Problem::from)?;
    // The attempt log has message ids; the recent messages say which event each one carried.
    let messages = hooks.list_messages(&me, hooks::PageRequest::first(100)).await.map_err(Problem::from)?;
    let event_of = |id: &str| messages.items.iter().find(|m| m.id == id).map(|m| m.event_type.clone());
    let recoveries = hooks.recoveries(&me, &id).await.map_err(Problem::from)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    Ok(Some(EndpointDetail {
        attempts: attempts.items.into_iter().map(|a| AttemptView { event_type: event_of(&a.message_id), attempt: a }).collect(),
        endpoint,
        recoveries,
        suggested_since: ssr::utc_minute(now - 86_400_000),
    }))
}

/// Sends a `test.ping` to this endpoint only. Answers the message id.
#[server]
pub async fn send_webhook_test(id: EndpointId) -> Result<String, Problem> {
    let me = ssr::owner()?;
    Ok(ssr::hooks()?.send_test(&me, &id).await.map_err(Problem::from)?.id)
}

/// Sends a message again to this endpoint, with the same `webhook-id`.
#[server]
pub async fn replay_webhook_message(message_id: MessageId, endpoint_id: EndpointId) -> Result<MessageId, Problem> {
    let me = ssr::owner()?;
    ssr::hooks()?.replay(&me, &message_id, Some(&endpoint_id)).await.map_err(Problem::from)?;
    Ok(message_id)
}

/// A new signing secret, in the answer only; the old one keeps signing beside it for a while. Asks for
/// the user's current password first (`current_password`): whoever holds the new secret can sign as us
/// to the receiver.
#[server]
pub async fn rotate_webhook_secret(id: EndpointId, current_password: Option<String>) -> Result<RotatedSecret, Problem> {
    let me = ssr::owner()?;
    let user_id = crate::tokens_api::ssr::user_id()?;
    let hooks = ssr::hooks()?;
    // Someone else's or an unknown endpoint is a 404 before any password is checked.
    hooks.get_endpoint(&me, &id).await.map_err(Problem::from)?;
    crate::tokens_api::ssr::confirm_password(user_id, current_password.unwrap_or_default()).await?;
    let r = hooks.rotate_secret(&me, &id).await.map_err(Problem::from)?;
    crate::shown_once::ssr::stash(&crate::shown_once::ShownOnce {
        kind: format!("rotate:{id}"),
        title: "New signing secret".into(),
        secret: r.secret.clone(),
        link: None,
    });
    Ok(r)
}

/// "Recover failed messages since" (`since`, UTC, as the datetime-local input sends it): every message
/// the endpoint missed since then is sent to it again, once, in the background.
#[server]
pub async fn recover_webhook_messages(id: EndpointId, since: String) -> Result<contract::webhooks::Recovery, Problem> {
    let me = ssr::owner()?;
    let since_ms = ssr::utc_minute_ms(&since).ok_or_else(|| Problem::invalid("since", "Choose a date and time (UTC)."))?;
    ssr::hooks()?.recover(&me, &id, since_ms).await.map_err(Problem::from)
}

/// Enables (`enabled` = "true") or disables an endpoint.
#[server]
pub async fn set_webhook_enabled(id: EndpointId, enabled: String) -> Result<(), Problem> {
    let me = ssr::owner()?;
    ssr::hooks()?.set_enabled(&me, &id, enabled == "true").await.map_err(Problem::from)?;
    Ok(())
}

/// Deletes an endpoint and goes back to the list.
#[server]
pub async fn delete_webhook_endpoint(id: EndpointId) -> Result<(), Problem> {
    let me = ssr::owner()?;
    ssr::hooks()?.delete_endpoint(&me, &id).await.map_err(Problem::from)?;
    leptos_axum::redirect("/settings/webhooks");
    Ok(())
}

/// Hides a notice.
#[server]
pub async fn mark_webhook_notice_read(id: i64) -> Result<(), Problem> {
    let me = ssr::owner()?;
    ssr::hooks()?.mark_notice_read(&me, id).await.map_err(Problem::from)
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::ssr::{utc_minute, utc_minute_ms};

    #[test]
    fn datetime_local_values_are_read_as_utc_and_written_back() {
        let ms = utc_minute_ms("2026-12-06T10:30").unwrap();
        assert_eq!(ms, 1_796_553_000_000);
        assert_eq!(utc_minute(ms), "2026-12-06T10:30");
        assert_eq!(utc_minute_ms("2026-12-06T10:30:15"), Some(ms + 15_000));
        for bad in ["", "yesterday", "2026-13-01T00:00", "2026-12-06", "2026-12-06T25:00", "2026-12-06T10:30:15:01", "-1-01-01T00:00x"] {
            assert_eq!(utc_minute_ms(bad), None, "{bad}");
        }
    }
}
