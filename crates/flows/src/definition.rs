//! Workflows declared as data: a definition is TOML or JSON text, parsed strictly (unknown fields are
//! errors) and validated into field-addressed errors (`steps[2].retry.max_attempts: …`) before it is
//! stored or run.

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

use crate::error::{FieldError, FlowsError};
use crate::template::{self, Reference};

pub const MAX_SOURCE_BYTES: usize = 64 * 1024;
pub const MAX_STEPS: usize = 50;
pub const MAX_ATTEMPTS: u32 = 100;
const MAX_NAME: usize = 64;
const MAX_DESCRIPTION: usize = 2000;
const MAX_URL: usize = 2048;
const MAX_HEADERS: usize = 32;
/// One attempt holds one of the engine's run slots for as long as it takes: a minute at most, so slow
/// (or deliberately stalling) targets cannot keep everyone's workflows waiting.
pub const MAX_TIMEOUT_MS: u64 = 60 * 1000;
/// Delays and inbound waits can be long (a CRM may confirm the next day) but not unbounded.
const MAX_WAIT_MS: u64 = 30 * 24 * 60 * 60 * 1000;
const MAX_INTERVAL_MS: u64 = 7 * 24 * 60 * 60 * 1000;
const HTTP_METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// Headers a step may not set: they steer routing and client-address trust in front of a server
/// (our own nginx included) or the framing of the request itself.
const FORBIDDEN_HEADERS: [&str; 11] = [
    "host",
    "x-real-ip",
    "forwarded",
    "connection",
    "transfer-encoding",
    "content-length",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

/// Is this a header a workflow step may not set (`FORBIDDEN_HEADERS`, or any `X-Forwarded-…`)?
pub fn forbidden_header(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    FORBIDDEN_HEADERS.contains(&name.as_str()) || name.starts_with("x-forwarded-")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Format {
    Toml,
    Json,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Toml => "toml",
            Format::Json => "json",
        }
    }

    pub fn parse(s: &str) -> Result<Format, FlowsError> {
        match s.to_ascii_lowercase().as_str() {
            "toml" => Ok(Format::Toml),
            "json" => Ok(Format::Json),
            _ => Err(FlowsError::invalid("format", "must be toml or json")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Keys the run input must have (a minimal schema: presence only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input: Vec<String>,
    pub steps: Vec<StepDef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    pub name: String,
    pub action: Action,
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Bound on one attempt of a host call (and of its compensation).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Undoes this step when a later step fails for good; runs with the same retry policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensate: Option<Action>,
}

fn default_timeout_ms() -> u64 {
    30_000
}

/// What a step does. `delay` and `wait_inbound` are carried out by the engine itself (durably);
/// everything else goes to the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    Http {
        #[serde(default = "default_method")]
        method: String,
        url: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
        /// A string is sent as it is; anything else as JSON.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<Value>,
        /// Statuses that count as success: codes (`201`), classes (`"2xx"`) or ranges (`"200-299"`).
        /// Empty means 2xx.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        expect_status: Vec<StatusMatch>,
    },
    Notify {
        channel: String,
        recipient: String,
        #[serde(default)]
        payload: Value,
    },
    EmitEvent {
        event_type: String,
        #[serde(default)]
        payload: Value,
    },
    /// A function the host registered by name (`create_account`).
    Call {
        name: String,
        #[serde(default)]
        args: Value,
    },
    Delay {
        ms: u64,
    },
    /// Parks the run until `deliver_inbound(source, correlation, payload)`; the payload becomes the
    /// step's output. Past `timeout_ms` the step fails for good (and the saga compensates).
    WaitInbound {
        source: String,
        correlation: String,
        timeout_ms: u64,
    },
}

fn default_method() -> String {
    "GET".into()
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Http { .. } => "http",
            Action::Notify { .. } => "notify",
            Action::EmitEvent { .. } => "emit_event",
            Action::Call { .. } => "call",
            Action::Delay { .. } => "delay",
            Action::WaitInbound { .. } => "wait_inbound",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatusMatch {
    Code(u16),
    Pattern(String),
}

impl StatusMatch {
    fn bounds(&self) -> Option<(u16, u16)> {
        match self {
            StatusMatch::Code(c) => Some((*c, *c)),
            StatusMatch::Pattern(p) => {
                let p = p.trim().to_ascii_lowercase();
                if let Some(d) = p.strip_suffix("xx").filter(|d| d.len() == 1) {
                    let d: u16 = d.parse().ok()?;
                    return Some((d * 100, d * 100 + 99));
                }
                let (a, b) = p.split_once('-')?;
                Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
            }
        }
    }

    pub fn matches(&self, status: u16) -> bool {
        self.bounds().is_some_and(|(a, b)| (a..=b).contains(&status))
    }
}

/// Does `status` count as success under `expect` (2xx when empty)?
pub fn status_expected(expect: &[StatusMatch], status: u16) -> bool {
    if expect.is_empty() {
        (200..300).contains(&status)
    } else {
        expect.iter().any(|m| m.matches(status))
    }
}

/// When to try a failed step again. Attempt `n + 1` waits `initial × coefficientⁿ⁻¹`, capped at
/// `max_interval_ms`, with equal jitter (half fixed, half random) so retries of many runs spread out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    pub initial_interval_ms: u64,
    pub backoff_coefficient: f64,
    pub max_interval_ms: u64,
    /// Attempts in all, the first included (1 = never retry: at most once).
    pub max_attempts: u32,
    /// Error codes that fail the step at once. `http_4xx` matches every `http_4..` code.
    pub non_retryable: Vec<String>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { initial_interval_ms: 1000, backoff_coefficient: 2.0, max_interval_ms: 60_000, max_attempts: 3, non_retryable: Vec::new() }
    }
}

impl RetryPolicy {
    /// The delay before the next attempt after `failed_attempts` failures (1 = after the first), no jitter.
    pub fn backoff_ms(&self, failed_attempts: u32) -> u64 {
        let exp = failed_attempts.saturating_sub(1).min(64) as i32;
        let d = self.initial_interval_ms as f64 * self.backoff_coefficient.powi(exp);
        if d.is_finite() {
            (d as u64).min(self.max_interval_ms)
        } else {
            self.max_interval_ms
        }
    }

    /// [`backoff_ms`](Self::backoff_ms) with equal jitter: in `[d/2, d]`.
    pub fn jittered_backoff_ms(&self, failed_attempts: u32, rng: &mut impl Rng) -> u64 {
        let d = self.backoff_ms(failed_attempts);
        let half = d / 2;
        half + rng.gen_range(0..=d - half)
    }

    /// Does this error code fail the step without retrying?
    pub fn is_non_retryable(&self, code: &str) -> bool {
        self.non_retryable
            .iter()
            .any(|p| p == code || p.strip_suffix("xx").is_some_and(|prefix| code.len() == prefix.len() + 2 && code.starts_with(prefix)))
    }
}

impl WorkflowDefinition {
    pub fn step_names(&self) -> Vec<String> {
        self.steps.iter().map(|s| s.name.clone()).collect()
    }

    pub fn from_toml(text: &str) -> Result<Self, FlowsError> {
        Self::parse(text, Format::Toml)
    }

    pub fn from_json(text: &str) -> Result<Self, FlowsError> {
        Self::parse(text, Format::Json)
    }

    /// Parses and validates.
    pub fn parse(text: &str, format: Format) -> Result<Self, FlowsError> {
        if text.len() > MAX_SOURCE_BYTES {
            return Err(FlowsError::invalid("source", format!("must be at most {MAX_SOURCE_BYTES} bytes")));
        }
        let def: WorkflowDefinition = match format {
            Format::Toml => toml::from_str(text).map_err(|e| FlowsError::invalid("source", format!("invalid TOML: {}", e.message())))?,
            Format::Json => serde_json::from_str(text).map_err(|e| FlowsError::invalid("source", format!("invalid JSON: {e}")))?,
        };
        def.validate()?;
        Ok(def)
    }

    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }

    /// Every problem at once, each addressed by its field path.
    pub fn validate(&self) -> Result<(), FlowsError> {
        let mut errs = Vec::new();
        let mut err = |f: String, m: String| errs.push(FieldError::new(f, m));
        if let Err(m) = check_name(&self.name) {
            err("name".into(), m);
        }
        if self.description.len() > MAX_DESCRIPTION {
            err("description".into(), format!("must be at most {MAX_DESCRIPTION} bytes"));
        }
        for (i, k) in self.input.iter().enumerate() {
            if let Err(m) = check_name(k) {
                err(format!("input[{i}]"), m);
            }
        }
        if self.steps.is_empty() {
            err("steps".into(), "must have at least one step".into());
        }
        if self.steps.len() > MAX_STEPS {
            err("steps".into(), format!("must have at most {MAX_STEPS} steps"));
        }
        let mut seen = HashSet::new();
        for (i, step) in self.steps.iter().enumerate() {
            let at = format!("steps[{i}]");
            if let Err(m) = check_name(&step.name) {
                err(format!("{at}.name"), m);
            } else if !seen.insert(step.name.as_str()) {
                err(format!("{at}.name"), format!("duplicate step name {:?}", step.name));
            }
            let r = &step.retry;
            if !(1..=MAX_ATTEMPTS).contains(&r.max_attempts) {
                err(format!("{at}.retry.max_attempts"), format!("must be between 1 and {MAX_ATTEMPTS}"));
            }
            if !(1..=MAX_INTERVAL_MS).contains(&r.initial_interval_ms) {
                err(format!("{at}.retry.initial_interval_ms"), format!("must be between 1 and {MAX_INTERVAL_MS}"));
            }
            if !(r.initial_interval_ms..=MAX_INTERVAL_MS).contains(&r.max_interval_ms) {
                err(format!("{at}.retry.max_interval_ms"), format!("must be between initial_interval_ms and {MAX_INTERVAL_MS}"));
            }
            if !(r.backoff_coefficient >= 1.0 && r.backoff_coefficient <= 10.0) {
                err(format!("{at}.retry.backoff_coefficient"), "must be between 1.0 and 10.0".into());
            }
            if r.non_retryable.len() > 32 || r.non_retryable.iter().any(|c| c.is_empty() || c.len() > MAX_NAME) {
                err(format!("{at}.retry.non_retryable"), format!("at most 32 codes of 1 to {MAX_NAME} characters"));
            }
            if !(1..=MAX_TIMEOUT_MS).contains(&step.timeout_ms) {
                err(format!("{at}.timeout_ms"), format!("must be between 1 and {MAX_TIMEOUT_MS}"));
            }
            // An action sees the steps before it; a compensation also sees its own step's output.
            let visible: HashSet<&str> = self.steps[..i].iter().map(|s| s.name.as_str()).collect();
            self.check_action(&step.action, &format!("{at}.action"), &visible, &mut err);
            if let Some(c) = &step.compensate {
                let mut visible = visible.clone();
                visible.insert(step.name.as_str());
                if matches!(c, Action::WaitInbound { .. } | Action::Delay { .. }) {
                    err(format!("{at}.compensate.type"), "a compensation must do something: http, notify, emit_event or call".into());
                }
                self.check_action(c, &format!("{at}.compensate"), &visible, &mut err);
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(FlowsError::Invalid(errs))
        }
    }

    fn check_action(&self, action: &Action, at: &str, visible: &HashSet<&str>, err: &mut dyn FnMut(String, String)) {
        let templated = |err: &mut dyn FnMut(String, String), field: &str, refs: Result<Vec<Reference>, String>| match refs {
            Err(m) => err(format!("{at}.{field}"), m),
            Ok(refs) => {
                for r in refs {
                    if let Reference::StepOutput { step, .. } = r {
                        if !visible.contains(step.as_str()) {
                            let why = if self.step_index(&step).is_some() { "does not run before this one" } else { "does not exist" };
                            err(format!("{at}.{field}"), format!("step {step:?} {why}"));
                        }
                    }
                }
            }
        };
        let text = |s: &str| template::references(s);
        match action {
            Action::Http { method, url, headers, body, expect_status } => {
                if !HTTP_METHODS.contains(&method.as_str()) {
                    err(format!("{at}.method"), format!("must be one of {}", HTTP_METHODS.join(", ")));
                }
                let lower = url.to_ascii_lowercase();
                if url.len() > MAX_URL {
                    err(format!("{at}.url"), format!("must be at most {MAX_URL} bytes"));
                } else if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                    err(format!("{at}.url"), "must start with http:// or https://".into());
                } else if template::url_origin(url).contains("{{") {
                    // A value from a run's input must never choose where the request goes.
                    err(format!("{at}.url"), "the scheme, host and port must not be templated (only the path, query and fragment)".into());
                } else if url::Url::parse(&template::placeholders(url)).is_err() {
                    err(format!("{at}.url"), "is not a valid URL".into());
                }
                templated(err, "url", text(url));
                if headers.len() > MAX_HEADERS {
                    err(format!("{at}.headers"), format!("at most {MAX_HEADERS} headers"));
                }
                for (k, v) in headers {
                    if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
                        err(format!("{at}.headers.{k}"), "is not a valid header name".into());
                    } else if forbidden_header(k) {
                        err(format!("{at}.headers.{k}"), "a workflow step may not set this header".into());
                    } else if http::HeaderValue::from_str(&template::placeholders(v)).is_err() {
                        err(format!("{at}.headers.{k}"), "is not a valid header value (visible ASCII only, no line breaks)".into());
                    }
                    templated(err, &format!("headers.{k}"), text(v));
                }
                if let Some(b) = body {
                    templated(err, "body", template::references_in_value(b));
                }
                for (j, m) in expect_status.iter().enumerate() {
                    if !m.bounds().is_some_and(|(a, b)| (100..=599).contains(&a) && (a..=599).contains(&b)) {
                        err(format!("{at}.expect_status[{j}]"), "must be a status (201), a class (\"2xx\") or a range (\"200-299\")".into());
                    }
                }
            }
            Action::Notify { channel, recipient, payload } => {
                non_empty(channel, &format!("{at}.channel"), err);
                non_empty(recipient, &format!("{at}.recipient"), err);
                templated(err, "channel", text(channel));
                templated(err, "recipient", text(recipient));
                templated(err, "payload", template::references_in_value(payload));
            }
            Action::EmitEvent { event_type, payload } => {
                non_empty(event_type, &format!("{at}.event_type"), err);
                templated(err, "event_type", text(event_type));
                templated(err, "payload", template::references_in_value(payload));
            }
            Action::Call { name, args } => {
                if let Err(m) = check_name(name) {
                    err(format!("{at}.name"), m);
                }
                templated(err, "args", template::references_in_value(args));
            }
            Action::Delay { ms } => {
                if *ms > MAX_WAIT_MS {
                    err(format!("{at}.ms"), format!("must be at most {MAX_WAIT_MS}"));
                }
            }
            Action::WaitInbound { source, correlation, timeout_ms } => {
                if let Err(m) = check_name(source) {
                    err(format!("{at}.source"), m);
                }
                non_empty(correlation, &format!("{at}.correlation"), err);
                templated(err, "correlation", text(correlation));
                if !(1..=MAX_WAIT_MS).contains(timeout_ms) {
                    err(format!("{at}.timeout_ms"), format!("must be between 1 and {MAX_WAIT_MS}"));
                }
            }
        }
    }

    /// The run input's problems: it must be an object with every declared key.
    pub fn check_input(&self, input: &Value) -> Result<(), FlowsError> {
        let Some(obj) = input.as_object() else {
            return Err(FlowsError::invalid("input", "must be a JSON object"));
        };
        let missing: Vec<FieldError> =
            self.input.iter().filter(|k| !obj.contains_key(k.as_str())).map(|k| FieldError::new(format!("input.{k}"), "is required")).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(FlowsError::Invalid(missing))
        }
    }
}

fn non_empty(s: &str, field: &str, err: &mut dyn FnMut(String, String)) {
    if s.trim().is_empty() {
        err(field.to_string(), "must not be empty".into());
    } else if s.len() > MAX_URL {
        err(field.to_string(), format!("must be at most {MAX_URL} bytes"));
    }
}

fn check_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_NAME {
        return Err(format!("must be 1 to {MAX_NAME} characters"));
    }
    if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err("may contain only letters, digits, _ and -".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GOOD: &str = r#"
name = "demo"
input = ["email"]

[[steps]]
name = "create"
action = { type = "call", name = "create_account", args = { email = "{{input.email}}" } }
compensate = { type = "call", name = "delete_account", args = { id = "{{steps.create.output.id}}" } }
retry = { max_attempts = 5, initial_interval_ms = 10, non_retryable = ["conflict"] }

[[steps]]
name = "ping"
timeout_ms = 5000
[steps.action]
type = "http"
method = "POST"
url = "https://crm.example.com/accounts/{{steps.create.output.id}}"
headers = { "x-run" = "{{run.id}}" }
body = { email = "{{input.email}}" }
expect_status = [201, "2xx", "300-302"]

[[steps]]
name = "pause"
action = { type = "delay", ms = 50 }

[[steps]]
name = "confirm"
action = { type = "wait_inbound", source = "crm", correlation = "{{run.id}}", timeout_ms = 1000 }
"#;

    fn fields(e: FlowsError) -> Vec<String> {
        e.field_errors().iter().map(|f| format!("{}: {}", f.field, f.message)).collect()
    }

    #[test]
    fn parses_a_good_toml_definition() {
        let d = WorkflowDefinition::from_toml(GOOD).unwrap();
        assert_eq!(d.steps.len(), 4);
        assert_eq!(d.steps[0].retry.max_attempts, 5);
        assert_eq!(d.steps[0].retry.backoff_coefficient, 2.0, "unset retry fields keep their defaults");
        assert_eq!(d.steps[1].timeout_ms, 5000);
        assert_eq!(d.steps[2].timeout_ms, 30_000);
        assert!(matches!(&d.steps[1].action, Action::Http { method, expect_status, .. } if method == "POST" && expect_status.len() == 3));
        assert!(matches!(d.steps[3].action, Action::WaitInbound { timeout_ms: 1000, .. }));
    }

    #[test]
    fn json_and_toml_say_the_same_thing() {
        let d = WorkflowDefinition::from_toml(GOOD).unwrap();
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(WorkflowDefinition::from_json(&json).unwrap(), d);
        assert_eq!(WorkflowDefinition::parse(&json, Format::Json).unwrap(), d);
    }

    #[test]
    fn unknown_fields_are_errors() {
        let e = WorkflowDefinition::from_toml(&GOOD.replace("timeout_ms = 5000", "timeout = 5000")).unwrap_err();
        assert_eq!(e.field_errors()[0].field, "source");
        assert!(e.to_string().contains("unknown field `timeout`"), "{e}");
        let e = WorkflowDefinition::from_json(r#"{"name":"x","steps":[{"name":"a","action":{"type":"delay","ms":1,"extra":1}}]}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `extra`"), "{e}");
        let e = WorkflowDefinition::from_json(r#"{"name":"x","steps":[{"name":"a","action":{"type":"teleport"}}]}"#).unwrap_err();
        assert!(e.to_string().contains("teleport"), "{e}");
        let e = WorkflowDefinition::from_json(r#"{"name":"x","steps":[],"owner":"me"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `owner`"), "{e}");
    }

    #[test]
    fn validation_names_every_bad_field() {
        let text = r#"{
          "name": "bad name!",
          "steps": [
            {"name": "a", "action": {"type": "http", "url": "ftp://x", "method": "BREW"}, "retry": {"max_attempts": 0}},
            {"name": "a", "action": {"type": "call", "name": "f", "args": {"x": "{{steps.c.output.id}}"}}, "timeout_ms": 0},
            {"name": "c", "action": {"type": "notify", "channel": "", "recipient": "{{steps.nope.output}}"},
             "retry": {"backoff_coefficient": 0.5, "initial_interval_ms": 100, "max_interval_ms": 10}},
            {"name": "d", "action": {"type": "wait_inbound", "source": "crm", "correlation": "{{run.id", "timeout_ms": 0},
             "compensate": {"type": "delay", "ms": 1}},
            {"name": "e", "action": {"type": "http", "url": "https://x/{{input.a}}", "expect_status": ["7xx", 200]}}
          ]
        }"#;
        let got = fields(WorkflowDefinition::from_json(text).unwrap_err());
        let want = [
            "name: may contain only letters, digits, _ and -",
            "steps[0].retry.max_attempts: must be between 1 and 100",
            "steps[0].action.method: must be one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS",
            "steps[0].action.url: must start with http:// or https://",
            "steps[1].name: duplicate step name \"a\"",
            "steps[1].timeout_ms: must be between 1 and 60000",
            "steps[1].action.args: step \"c\" does not run before this one",
            "steps[2].retry.max_interval_ms: must be between initial_interval_ms and 604800000",
            "steps[2].retry.backoff_coefficient: must be between 1.0 and 10.0",
            "steps[2].action.channel: must not be empty",
            "steps[2].action.recipient: step \"nope\" does not exist",
            "steps[3].action.correlation: unclosed {{",
            "steps[3].action.timeout_ms: must be between 1 and 2592000000",
            "steps[3].compensate.type: a compensation must do something: http, notify, emit_event or call",
            "steps[4].action.expect_status[0]: must be a status (201), a class (\"2xx\") or a range (\"200-299\")",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn a_step_timeout_above_a_minute_is_refused() {
        let at = |ms: u64| json!({"name": "t", "steps": [{"name": "a", "timeout_ms": ms, "action": {"type": "call", "name": "f"}}]}).to_string();
        WorkflowDefinition::from_json(&at(60_000)).unwrap();
        assert_eq!(fields(WorkflowDefinition::from_json(&at(60_001)).unwrap_err()), ["steps[0].timeout_ms: must be between 1 and 60000"]);
        assert_eq!(fields(WorkflowDefinition::from_json(&at(3_600_000)).unwrap_err()), ["steps[0].timeout_ms: must be between 1 and 60000"]);
        let d = WorkflowDefinition::from_json(r#"{"name":"t","steps":[{"name":"a","action":{"type":"call","name":"f"}}]}"#).unwrap();
        assert_eq!(d.steps[0].timeout_ms, 30_000, "the default stays");
    }

    #[test]
    fn proxy_and_framing_headers_are_refused_by_field() {
        let with = |h: Value, compensate_h: Value| {
            json!({"name": "t", "steps": [
            {"name": "a", "action": {"type": "delay", "ms": 1}},
            {"name": "b", "action": {"type": "http", "url": "https://api.example.com/x", "headers": h},
             "compensate": {"type": "http", "url": "https://api.example.com/y", "headers": compensate_h}}]})
            .to_string()
        };
        let hostile = json!({"Host": "app.internal", "X-Real-IP": "127.0.0.1", "x-forwarded-proto": "https", "Forwarded": "for=1.2.3.4",
            "Connection": "close", "Transfer-Encoding": "chunked", "Content-Length": "0", "X-Run": "{{run.id}}"});
        let got = fields(WorkflowDefinition::from_json(&with(hostile, json!({"X-Forwarded-For": "1.2.3.4"}))).unwrap_err());
        let refused = |k: &str| format!("steps[1].action.headers.{k}: a workflow step may not set this header");
        let mut want: Vec<String> = ["Connection", "Content-Length", "Forwarded", "Host", "Transfer-Encoding", "X-Real-IP", "x-forwarded-proto"]
            .iter()
            .map(|k| refused(k))
            .collect();
        want.push("steps[1].compensate.headers.X-Forwarded-For: a workflow step may not set this header".into());
        assert_eq!(got, want);
        WorkflowDefinition::from_json(&with(json!({"Authorization": "Bearer {{input.token}}", "X-Run": "{{run.id}}"}), json!({}))).unwrap();
        let bad_value = fields(WorkflowDefinition::from_json(&with(json!({"X-A": "a\r\nHost: evil"}), json!({}))).unwrap_err());
        assert!(bad_value[0].starts_with("steps[1].action.headers.X-A: is not a valid header value"), "{bad_value:?}");
    }

    #[test]
    fn the_host_of_a_url_is_never_templated() {
        let url = |u: &str| json!({"name": "t", "input": ["h"], "steps": [{"name": "a", "action": {"type": "http", "url": u}}]}).to_string();
        for u in [
            "https://{{input.h}}/x",
            "https://api.{{input.h}}/x",
            "https://api.example.com:{{input.h}}/x",
            "https://api.example.com{{input.h}}",
            "http://user:{{input.h}}@api.example.com/",
            "https://{{input.h}}",
        ] {
            let got = fields(WorkflowDefinition::from_json(&url(u)).unwrap_err());
            assert_eq!(got, ["steps[0].action.url: the scheme, host and port must not be templated (only the path, query and fragment)"], "{u}");
        }
        for u in ["https://api.example.com/users/{{input.h}}?q={{input.h}}#{{input.h}}", "https://api.example.com:8443/{{input.h}}"] {
            WorkflowDefinition::from_json(&url(u)).unwrap_or_else(|e| panic!("{u}: {e}"));
        }
        assert_eq!(
            fields(WorkflowDefinition::from_json(&url("https://exa mple.com/{{input.h}}")).unwrap_err()),
            ["steps[0].action.url: is not a valid URL"]
        );
    }

    #[test]
    fn limits_on_size_and_count() {
        let big = format!("name = \"x\"\ndescription = \"{}\"\n", "a".repeat(MAX_SOURCE_BYTES));
        assert_eq!(fields(WorkflowDefinition::from_toml(&big).unwrap_err()), ["source: must be at most 65536 bytes"]);
        let steps: Vec<Value> = (0..51).map(|i| json!({"name": format!("s{i}"), "action": {"type": "delay", "ms": 1}})).collect();
        let text = json!({"name": "many", "steps": steps}).to_string();
        assert_eq!(fields(WorkflowDefinition::from_json(&text).unwrap_err()), ["steps: must have at most 50 steps"]);
        assert_eq!(fields(WorkflowDefinition::from_json(r#"{"name":"none","steps":[]}"#).unwrap_err()), ["steps: must have at least one step"]);
    }

    #[test]
    fn a_compensation_may_use_its_own_step_output_but_an_action_may_not() {
        let own = r#"{"name":"x","steps":[{"name":"a","action":{"type":"call","name":"f","args":"{{steps.a.output.id}}"}}]}"#;
        assert_eq!(fields(WorkflowDefinition::from_json(own).unwrap_err()), ["steps[0].action.args: step \"a\" does not run before this one"]);
        let comp = r#"{"name":"x","steps":[{"name":"a","action":{"type":"call","name":"f"},"compensate":{"type":"call","name":"g","args":"{{steps.a.output.id}}"}}]}"#;
        WorkflowDefinition::from_json(comp).unwrap();
    }

    #[test]
    fn input_must_have_the_declared_keys() {
        let d = WorkflowDefinition::from_toml(GOOD).unwrap();
        d.check_input(&json!({"email": "a@b"})).unwrap();
        assert_eq!(fields(d.check_input(&json!({"name": "x"})).unwrap_err()), ["input.email: is required"]);
        assert_eq!(fields(d.check_input(&json!([1])).unwrap_err()), ["input: must be a JSON object"]);
    }

    #[test]
    fn retry_schedule_grows_exponentially_up_to_the_cap() {
        let p = RetryPolicy { initial_interval_ms: 100, backoff_coefficient: 2.0, max_interval_ms: 1000, ..RetryPolicy::default() };
        let got: Vec<u64> = (1..=6).map(|n| p.backoff_ms(n)).collect();
        assert_eq!(got, [100, 200, 400, 800, 1000, 1000]);
        let flat = RetryPolicy { backoff_coefficient: 1.0, ..p.clone() };
        assert_eq!(flat.backoff_ms(50), 100);
        assert_eq!(p.backoff_ms(u32::MAX), 1000, "no overflow on huge attempt numbers");
        let mut rng = rand::thread_rng();
        for n in 1..=6 {
            for _ in 0..200 {
                let j = p.jittered_backoff_ms(n, &mut rng);
                let d = p.backoff_ms(n);
                assert!(j >= d / 2 && j <= d, "attempt {n}: {j} outside [{}, {d}]", d / 2);
            }
        }
    }

    #[test]
    fn non_retryable_codes_match_exactly_or_by_class() {
        let p = RetryPolicy { non_retryable: vec!["conflict".into(), "http_4xx".into()], ..RetryPolicy::default() };
        assert!(p.is_non_retryable("conflict"));
        assert!(p.is_non_retryable("http_404"));
        assert!(!p.is_non_retryable("http_503"));
        assert!(!p.is_non_retryable("http_4000"));
        assert!(!p.is_non_retryable("conflicts"));
    }

    #[test]
    fn status_expectations() {
        assert!(status_expected(&[], 204));
        assert!(!status_expected(&[], 302));
        let e = [StatusMatch::Code(404), StatusMatch::Pattern("300-302".into())];
        assert!(status_expected(&e, 404) && status_expected(&e, 301));
        assert!(!status_expected(&e, 200));
    }
}
