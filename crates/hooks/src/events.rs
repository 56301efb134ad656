//! The event types endpoints can subscribe to (an endpoint with an empty list gets all of them), each
//! with the JSON Schema (draft 2020-12, as OpenAPI 3.1 uses) of the body an endpoint receives and an
//! example of it. The body is the Standard Webhooks envelope `{"type", "timestamp", "data"}` that
//! `delivery` writes once per message; only `data` differs between types, so an entry holds its `data`
//! schema and example and [`EventType::schema`] / [`EventType::example`] wrap them in the envelope.

use contract::workflows::RunStatus;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy)]
pub struct EventType {
    pub name: &'static str,
    pub description: &'static str,
    /// JSON Schema of `data`, as the code that emits the event builds it.
    data_schema: fn() -> Value,
    /// A realistic `data`.
    data_example: fn() -> Value,
}

pub const NOTIFICATION_DELIVERED: &str = "notification.delivered";
pub const NOTIFICATION_DEAD_LETTERED: &str = "notification.dead_lettered";
pub const WORKFLOW_COMPLETED: &str = "workflow.completed";
pub const WORKFLOW_FAILED: &str = "workflow.failed";
pub const ENDPOINT_DISABLED: &str = "endpoint.disabled";
pub const MESSAGE_ATTEMPT_EXHAUSTED: &str = "message.attempt.exhausted";
pub const TEST_PING: &str = "test.ping";
pub const CUSTOMER_CREATED: &str = "customer.created";
pub const CUSTOMER_ONBOARDING_CANCELLED: &str = "customer.onboarding_cancelled";

/// Events about deliveries themselves: one of these that runs out of attempts raises nothing more, so a
/// failing endpoint cannot start a chain.
pub const OPERATIONAL: &[&str] = &[ENDPOINT_DISABLED, MESSAGE_ATTEMPT_EXHAUSTED];

/// Every event type, for the settings page, the API's catalogue and OpenAPI `webhooks`, and validation.
pub const CATALOGUE: &[EventType] = &[
    EventType {
        name: NOTIFICATION_DELIVERED,
        description: "A notification reached its recipient.",
        data_schema: notification_schema,
        data_example: || notification_example("emb_48213", "email", "ada@example.com", 1, None),
    },
    EventType {
        name: NOTIFICATION_DEAD_LETTERED,
        description: "A notification failed for the last time.",
        data_schema: notification_schema,
        data_example: || notification_example("red_1093", "sms", "+15555550123", 6, Some("simulated sms provider failure")),
    },
    EventType {
        name: WORKFLOW_COMPLETED,
        description: "A workflow run finished successfully.",
        data_schema: || workflow_schema(&[RunStatus::Completed]),
        data_example: || {
            json!({
                "run_id": EXAMPLE_RUN_ID, "workflow": "customer_onboarding", "status": "completed",
                "failed_step": null, "error_code": null, "error_message": null,
            })
        },
    },
    EventType {
        name: WORKFLOW_FAILED,
        description: "A workflow run failed.",
        data_schema: || workflow_schema(&[RunStatus::Failed, RunStatus::CompensationFailed, RunStatus::Cancelled]),
        data_example: || {
            json!({
                "run_id": EXAMPLE_RUN_ID, "workflow": "customer_onboarding", "status": "failed",
                "failed_step": "wait_crm_confirmation", "error_code": "inbound_timeout",
                "error_message": format!("no crm message with correlation \"{EXAMPLE_RUN_ID}\" within 259200000 ms"),
            })
        },
    },
    EventType {
        name: ENDPOINT_DISABLED,
        description: "One of your endpoints was disabled after failing repeatedly.",
        data_schema: || {
            let mut schema = closed_object(json!({
                "endpoint_id": {"type": "string", "description": "The endpoint that was disabled (`ep_…`); not the one receiving this event."},
                "url": {"type": "string", "description": "Its URL."},
                "consecutive_failures": {"type": "integer", "description": "Messages in a row it could not be delivered."},
                "reason": {"type": "string", "description": "Why, as the endpoint's `disabled_reason` says. Absent from events made before it was added (a replay sends a message as it was made)."},
            }));
            schema["required"] = json!(["endpoint_id", "url", "consecutive_failures"]);
            schema
        },
        data_example: || {
            json!({
                "endpoint_id": EXAMPLE_ENDPOINT_ID, "url": "https://crm.example.com/hooks/ie", "consecutive_failures": 5,
                "reason": "Disabled automatically after 5 messages in a row could not be delivered.",
            })
        },
    },
    EventType {
        name: MESSAGE_ATTEMPT_EXHAUSTED,
        description: "A message ran out of delivery attempts at one of your endpoints (sent to your other endpoints).",
        data_schema: || {
            closed_object(json!({
                "message_id": {"type": "string", "description": "The message that was not delivered (`msg_…`): replay it once the endpoint is fixed."},
                "endpoint_id": {"type": "string", "description": "The endpoint it was not delivered to (`ep_…`)."},
                "event_type": {"type": "string", "description": "The message's event type."},
                "attempts": {"type": "integer", "description": "Attempts made, the last one included."},
                "last_attempt": closed_object(json!({
                    "timestamp": {"type": "string", "format": "date-time", "description": "When it ended (RFC 3339, UTC)."},
                    "status_code": {"type": ["integer", "null"], "description": "The receiver's HTTP status; null when there was no answer."},
                    "error": {"type": ["string", "null"], "description": "What went wrong, with the start of the answer."},
                })),
            }))
        },
        data_example: || {
            json!({
                "message_id": "msg_7Hc2LqP9sVx4TbN8kRz1MwYd", "endpoint_id": EXAMPLE_ENDPOINT_ID, "event_type": WORKFLOW_COMPLETED, "attempts": 8,
                "last_attempt": { "timestamp": "2026-05-05T12:41:07.12Z", "status_code": 503, "error": "HTTP 503: upstream unavailable" },
            })
        },
    },
    EventType {
        name: TEST_PING,
        description: "Sent by \"Send test event\".",
        data_schema: || {
            closed_object(json!({
                "endpoint_id": {"type": "string", "description": "The endpoint it was sent to (`ep_…`)."},
                "message": {"type": "string", "description": "Always \"This is a test event.\""},
            }))
        },
        data_example: || json!({ "endpoint_id": EXAMPLE_ENDPOINT_ID, "message": "This is a test event." }),
    },
    EventType {
        name: CUSTOMER_CREATED,
        description: "The onboarding workflow created a customer account (confirm it with an inbound `crm` webhook).",
        data_schema: || {
            onboarding_payload(json!({
                "account_id": {"type": "string", "description": "The new account (`cus_…`)."},
                "email": {"type": "string", "description": "The run input's email."},
                "name": {"type": "string", "description": "The run input's name."},
                "correlation_id": {"type": "string", "description": "The run id: send it back as the inbound `crm` webhook's `correlation_id`."},
            }))
        },
        data_example: || json!({ "account_id": EXAMPLE_ACCOUNT_ID, "email": "ada@example.com", "name": "Ada Lovelace", "correlation_id": EXAMPLE_RUN_ID }),
    },
    EventType {
        name: CUSTOMER_ONBOARDING_CANCELLED,
        description: "The onboarding workflow undid a customer account.",
        data_schema: || {
            onboarding_payload(json!({
                "account_id": {"type": "string", "description": "The account that was deleted (`cus_…`)."},
                "correlation_id": {"type": "string", "description": "The run id, as in `customer.created`."},
            }))
        },
        data_example: || json!({ "account_id": EXAMPLE_ACCOUNT_ID, "correlation_id": EXAMPLE_RUN_ID }),
    },
];

pub fn is_known(name: &str) -> bool {
    CATALOGUE.iter().any(|e| e.name == name)
}

/// The catalogue entry named `name`.
pub fn find(name: &str) -> Option<&'static EventType> {
    CATALOGUE.iter().find(|e| e.name == name)
}

impl EventType {
    /// The JSON Schema of the whole body an endpoint receives for this type.
    pub fn schema(&self) -> Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": self.name,
            "description": self.description,
            "type": "object",
            "required": ["type", "timestamp", "data"],
            "additionalProperties": false,
            "properties": {
                "type": {"type": "string", "const": self.name, "description": "The event type."},
                "timestamp": {
                    "type": "string",
                    "format": "date-time",
                    "description": "When the message was made (RFC 3339, UTC); the same on every retry and replay.",
                },
                "data": (self.data_schema)(),
            },
        })
    }

    /// A realistic body of this type, as an endpoint receives it.
    pub fn example(&self) -> Value {
        json!({ "type": self.name, "timestamp": EXAMPLE_TIMESTAMP, "data": (self.data_example)() })
    }

    /// [`example`](Self::example) pretty-printed, its fields in the order `delivery` writes them.
    pub fn example_text(&self) -> String {
        let data = serde_json::to_string_pretty(&(self.data_example)()).unwrap_or_default().replace('\n', "\n  ");
        format!("{{\n  \"type\": {},\n  \"timestamp\": {},\n  \"data\": {data}\n}}", Value::from(self.name), Value::from(EXAMPLE_TIMESTAMP))
    }
}

const EXAMPLE_TIMESTAMP: &str = "2026-05-04T09:30:12.345Z";
const EXAMPLE_ENDPOINT_ID: &str = "ep_4fJq9ZtR2mXc8LwK1bVn7PsD";
const EXAMPLE_RUN_ID: &str = "6f1c2a4e-9b1d-4c3e-8f00-0123456789ab";
const EXAMPLE_ACCOUNT_ID: &str = "cus_0b9e4f2a7c1d4e8f9a3b5c6d7e8f9012";

/// An object with exactly these properties, every one always present (a `None` is sent as `null`).
fn closed_object(properties: Value) -> Value {
    let required: Vec<&String> = properties.as_object().map(|p| p.keys().collect()).unwrap_or_default();
    json!({ "type": "object", "required": required, "additionalProperties": false, "properties": properties })
}

/// The `data` of a `customer.*` event: the `emit_event` payload of the built-in onboarding workflow.
/// Workflows of your own may emit these types too, with the payload they define: other properties may
/// then appear, so this schema is not closed.
fn onboarding_payload(properties: Value) -> Value {
    let mut schema = closed_object(properties);
    schema["additionalProperties"] = Value::Bool(true);
    schema["description"] =
        json!("As the built-in `customer_onboarding` workflow sends it. A workflow of your own that emits this type sends the payload it defines.");
    schema
}

fn notification_schema() -> Value {
    let channels: Vec<&str> = notify::Channel::ALL.iter().map(|c| c.as_str()).collect();
    closed_object(json!({
        "notification_id": {"type": "string", "description": "The notification (`emb_…` or `red_…`, by queue backend)."},
        "channel": {"type": "string", "enum": channels},
        "recipient": {"type": "string"},
        "attempts": {"type": "integer", "description": "Attempts made, the last one included."},
        "error": {"type": ["string", "null"], "description": "Why the last attempt failed; null when delivered."},
    }))
}

fn notification_example(id: &str, channel: &str, recipient: &str, attempts: u32, error: Option<&str>) -> Value {
    json!({ "notification_id": id, "channel": channel, "recipient": recipient, "attempts": attempts, "error": error })
}

fn workflow_schema(statuses: &[RunStatus]) -> Value {
    let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    // A completed run has no failure to tell (always null); a failed one names it, a cancelled one may not.
    let why = if statuses == [RunStatus::Completed.as_str()] { json!({"type": "null"}) } else { json!({"type": ["string", "null"]}) };
    let with = |description: &str| {
        let mut s = why.clone();
        s["description"] = description.into();
        s
    };
    closed_object(json!({
        "run_id": {"type": "string", "description": "The run (a UUID)."},
        "workflow": {"type": "string", "description": "The workflow's name."},
        "status": {"type": "string", "enum": statuses},
        "failed_step": with("The step that failed for good."),
        "error_code": with("Its error code (`inbound_timeout`, `email_taken`, `timeout`, …)."),
        "error_message": with("Its error message."),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::json_schema::{assert_fits, violations};

    #[test]
    fn every_example_fits_its_schema_and_names_its_type() {
        for e in CATALOGUE {
            let (schema, example) = (e.schema(), e.example());
            assert_fits(&schema, &example);
            assert_eq!(example["type"], e.name);
            let text = e.example_text();
            assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), example, "{text}");
            assert!(text.starts_with(&format!("{{\n  \"type\": \"{}\",\n  \"timestamp\": ", e.name)), "{text}");
            assert_eq!((schema["title"].as_str(), schema["description"].as_str()), (Some(e.name), Some(e.description)));
        }
        let names: std::collections::BTreeSet<&str> = CATALOGUE.iter().map(|e| e.name).collect();
        assert_eq!(names.len(), CATALOGUE.len(), "names are unique");
    }

    /// The check above can fail: each schema refuses a body of another type, one missing a required
    /// property of `data`, one with a property of the wrong type, and (where `data` is closed) one with
    /// a property it does not list. Only `endpoint.disabled`'s `reason` is optional (older messages).
    #[test]
    fn each_schema_refuses_what_its_event_never_sends() {
        for e in CATALOGUE {
            let schema = e.schema();
            let mut other_type = e.example();
            other_type["type"] = "user.created".into();
            assert!(!violations(&schema, &other_type).is_empty(), "{}", e.name);
            let data = e.example()["data"].as_object().unwrap().clone();
            for key in data.keys() {
                let mut missing = e.example();
                missing["data"].as_object_mut().unwrap().remove(key);
                let optional = (e.name, key.as_str()) == (ENDPOINT_DISABLED, "reason");
                assert_eq!(violations(&schema, &missing).is_empty(), optional, "{}: without {key}", e.name);
                let mut retyped = e.example();
                retyped["data"][key] = json!([1]);
                assert!(!violations(&schema, &retyped).is_empty(), "{}: {key} as an array", e.name);
            }
            let mut extra = e.example();
            extra["data"]["surprise"] = json!(1);
            let closed = schema["properties"]["data"]["additionalProperties"] == false;
            assert_eq!(violations(&schema, &extra).is_empty(), !closed, "{}", e.name);
            assert_eq!(closed, !e.name.starts_with("customer."), "only the workflow-defined payloads are open");
        }
    }

    #[test]
    fn examples_use_real_id_shapes() {
        use contract::ids::{EndpointId, WorkflowRunId};
        assert!(EXAMPLE_ENDPOINT_ID.parse::<EndpointId>().is_ok());
        let exhausted = find(MESSAGE_ATTEMPT_EXHAUSTED).unwrap().example();
        assert!(exhausted["data"]["message_id"].as_str().unwrap().parse::<contract::ids::MessageId>().is_ok());
        assert!(is_known(exhausted["data"]["event_type"].as_str().unwrap()));
        assert!(EXAMPLE_RUN_ID.parse::<WorkflowRunId>().is_ok());
        let account = EXAMPLE_ACCOUNT_ID.strip_prefix("cus_").unwrap();
        assert!(account.len() == 32 && account.bytes().all(|b| b.is_ascii_hexdigit()), "as server's create_account makes them");
        // The timestamp is one `delivery` could have written (its format, at 2026-05-04 09:30:12.345 UTC).
        assert_eq!(json!(crate::rfc3339(1_777_887_012_345)), CATALOGUE[0].example()["timestamp"]);
    }

    /// `docs/integrations.md`'s event catalogue has a row per type, with this description.
    #[test]
    fn the_integrations_guide_lists_every_event_type() {
        let doc = include_str!("../../../docs/integrations.md");
        for e in CATALOGUE {
            let row = format!("| `{}` | {} |", e.name, e.description);
            assert!(doc.contains(&row), "docs/integrations.md lacks the row {row}");
        }
    }
}
