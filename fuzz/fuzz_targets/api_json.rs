//! The JSON bodies the REST API (and the pages' server functions) accept, through the domain crates'
//! own parsers and validation, the code the server calls:
//!   0 `POST /api/v1/notifications`: `notify::parse_batch` + `validate_batch`
//!   1 `POST /api/v1/runs`: `notify::SimParams::from_value`
//!   2 `POST /api/v1/webhooks/endpoints`: `hooks::NewEndpoint` + the endpoint field checks
//!   3 `PATCH /api/v1/webhooks/endpoints/{id}`: `hooks::EndpointUpdate` + the same checks
//!   4 `POST /api/v1/workflows/{id}/runs`: `flows::StartRun` + `check_input` (built-in workflow)
//!   5 API token creation (name, scopes, expiry) and bearer tokens: `auth::tokens`
//! The first byte picks the body (modulo 6), the rest is the body. Workflow definitions (`POST
//! /api/v1/workflows`) have their own target, workflow_definition.
#![no_main]

use auth::tokens::{self, Scope};
use hooks::{EndpointUpdate, FieldError, NewEndpoint, UrlGuard};
use libfuzzer_sys::fuzz_target;
use notify::model::{MAX_BATCH, MAX_IDEMPOTENCY_KEY_LEN, MAX_PAYLOAD_BYTES, MAX_RECIPIENT_LEN};
use notify::sim::{MAX_COUNT, MAX_LATENCY_MS, MAX_RATE_PER_HOUR, MAX_WEIGHT};
use notify::{Channel, NewNotification, Rate, SimParams};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    match which % 6 {
        0 => notifications(body),
        1 => sim_params(body),
        2 => {
            if let Ok(new) = serde_json::from_slice::<NewEndpoint>(body) {
                endpoint_fields(Some(&new.url), Some(&new.description), Some(&new.event_types));
            }
        }
        3 => {
            if let Ok(u) = serde_json::from_slice::<EndpointUpdate>(body) {
                endpoint_fields(u.url.as_deref(), u.description.as_deref(), u.event_types.as_deref());
            }
        }
        4 => start_run(body),
        _ => token_form(body),
    }
});

fn notifications(body: &[u8]) {
    let Ok(batch) = notify::parse_batch(body) else { return };
    if notify::validate_batch(&batch).is_err() {
        return;
    }
    assert!((1..=MAX_BATCH).contains(&batch.len()));
    for n in &batch {
        assert!(!n.recipient.trim().is_empty() && n.recipient.len() <= MAX_RECIPIENT_LEN && !n.recipient.contains('\0'));
        if let Some(k) = &n.idempotency_key {
            assert!(!k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN);
        }
        let payload = serde_json::to_string(&n.payload).expect("a parsed payload serialises");
        assert!(payload.len() <= MAX_PAYLOAD_BYTES);
        // What is queued is what was sent: the notification survives its own serialisation.
        let text = serde_json::to_vec(n).unwrap();
        let again: NewNotification = serde_json::from_slice(&text).expect("a notification reads back");
        assert_eq!(&again, n);
    }
}

fn sim_params(body: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(body) else { return };
    let Ok(p) = SimParams::from_value(&value) else { return };
    p.validate().expect("from_value returned parameters that do not validate");
    assert!((1..=MAX_COUNT).contains(&p.count));
    if let Rate::PerHour(r) = p.rate {
        assert!((1..=MAX_RATE_PER_HOUR).contains(&r));
    }
    assert!((0.0..=1.0).contains(&p.failure_rate));
    assert!(p.latency_ms <= MAX_LATENCY_MS);
    let weights: Vec<u32> = Channel::ALL.iter().map(|c| p.mix.weight(*c)).collect();
    assert!(weights.iter().all(|w| *w <= MAX_WEIGHT) && weights.iter().any(|w| *w > 0));
}

/// The checks `create_endpoint` / `update_endpoint` make, short of DNS: description, event types, and
/// the URL guard's syntax checks (the SSRF guard's first half).
fn endpoint_fields(url: Option<&str>, description: Option<&str>, event_types: Option<&[String]>) {
    if let Some(d) = description {
        let mut errors: Vec<FieldError> = vec![];
        hooks::endpoints::check_description(d, &mut errors);
        if errors.is_empty() {
            assert!(d.chars().count() <= hooks::endpoints::MAX_DESCRIPTION_CHARS);
            assert!(!d.chars().any(|c| c.is_control() && c != '\n'));
        }
    }
    if let Some(types) = event_types {
        let mut errors = vec![];
        let kept = hooks::endpoints::check_event_types(types, &mut errors);
        assert!(kept.iter().all(|t| hooks::events::is_known(t)), "{kept:?}");
        for (i, t) in kept.iter().enumerate() {
            assert!(!kept[..i].contains(t), "{t} kept twice");
        }
        if errors.is_empty() {
            assert!(types.iter().all(|t| kept.iter().any(|k| k == t.trim())));
        }
    }
    if let Some(raw) = url {
        let guard = UrlGuard::default();
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > hooks::endpoints::MAX_URL_LEN {
            return;
        }
        let Ok(parsed) = guard.check_syntax(raw) else { return };
        assert!(matches!(parsed.scheme(), "http" | "https"));
        assert!(parsed.username().is_empty() && parsed.password().is_none());
        assert_ne!(parsed.port(), Some(0));
        match parsed.host() {
            Some(url::Host::Ipv4(ip)) => assert!(guard.permits(ip.into()), "{raw:?} → {parsed} is not public"),
            Some(url::Host::Ipv6(ip)) => assert!(guard.permits(ip.into()), "{raw:?} → {parsed} is not public"),
            Some(url::Host::Domain(d)) => {
                // A name that is really an address must have been normalised to one by now.
                assert!(d.parse::<std::net::IpAddr>().is_err(), "{raw:?}: host {d:?} is an address left as a name");
            }
            None => panic!("{raw:?} accepted without a host"),
        }
        // What is stored is the parsed form, and it is checked again on every delivery: the check
        // must agree with itself on its own output.
        let stored = parsed.to_string();
        let again = guard.check_syntax(&stored).unwrap_or_else(|e| panic!("{raw:?} → {stored:?} is refused the second time: {e}"));
        assert_eq!(again, parsed, "normalising {raw:?} twice differs");
    }
}

fn start_run(body: &[u8]) {
    let Ok(req) = serde_json::from_slice::<flows::StartRun>(body) else { return };
    let input = req.into_input();
    assert!(!input.is_null());
    let def = flows::builtin::onboarding();
    if def.check_input(&input).is_ok() {
        let obj = input.as_object().expect("accepted input is an object");
        assert!(def.input.iter().all(|k| obj.contains_key(k)));
    }
}

/// The token form: `{"name": …, "scopes": [...], "expires_days": …}` as the settings page sends it,
/// plus any string as a bearer token.
#[derive(serde::Deserialize)]
struct TokenForm {
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    bearer: String,
}

fn token_form(body: &[u8]) {
    let Ok(form) = serde_json::from_slice::<TokenForm>(body) else { return };
    if let Ok(name) = tokens::validate_name(&form.name) {
        assert_eq!(name, name.trim());
        assert!(!name.is_empty() && name.chars().count() <= tokens::MAX_NAME_CHARS);
        assert!(!name.chars().any(char::is_control));
    }
    let each: Result<Vec<Scope>, _> = form.scopes.iter().map(|s| s.parse::<Scope>()).collect();
    let joined = form.scopes.join(",");
    match (Scope::parse_list(&joined), each) {
        (Ok(list), Ok(each)) => {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "sorted, without duplicates");
            assert!(each.iter().all(|s| list.contains(s)));
            // The stored form reads back as the same list, and as JSON too.
            assert_eq!(Scope::parse_list(&Scope::join(&list)).unwrap(), list);
            let json = serde_json::to_string(&list).unwrap();
            assert_eq!(serde_json::from_str::<Vec<Scope>>(&json).unwrap(), list);
        }
        (Ok(list), Err(_)) => {
            // One entry was refused alone; the list form only allows that if it split it into parts.
            assert!(form.scopes.iter().any(|s| s.contains(',') || s.chars().any(char::is_whitespace) || s.is_empty()), "{list:?}");
        }
        (Err(_), _) => {}
    }
    if tokens::well_formed(&form.bearer) {
        assert!(form.bearer.starts_with(tokens::TOKEN_PREFIX) && form.bearer.is_ascii());
    }
}
