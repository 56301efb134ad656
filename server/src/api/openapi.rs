//! The OpenAPI 3.1 document, generated from the handlers' annotations (utoipa) with the webhook events
//! we send added as its `webhooks`, served at `/api/v1/openapi.json`; `/api/docs` renders it as a page.

use axum::Json;
use serde_json::{json, Value};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Implementation-Eng API",
        version = "1",
        description = "Notification runs, signed webhooks out and in, and orchestrated workflows. Authenticate with `Authorization: Bearer ie_…` (an API token made on /settings/tokens or with `server token create`; each route names the scope it needs) or, from the browser, the session cookie. Errors are RFC 9457 problem details (`application/problem+json`) with a stable `code`. Lists take `limit` (1–100) and `cursor` (the previous page's `next_cursor`). POSTs that create honour `Idempotency-Key`."
    ),
    components(schemas(super::Problem, super::FieldError)),
    modifiers(&Security),
    tags(
        (name = "account", description = "Who is calling"),
        (name = "notifications", description = "Notification runs (the load simulator) and single notifications"),
        (name = "webhooks", description = "Endpoints that receive our signed events, their messages and attempts"),
        (name = "push", description = "Web Push subscriptions (a push notification's recipient) and this server's VAPID key"),
        (name = "workflows", description = "Workflows as data, their runs and timelines"),
        (name = "inbound", description = "Signed webhooks sent to us"),
        (name = "ops", description = "The machine, for operators (`APP_OPERATORS`): storage per store and retention"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("ie_ token").build()),
        );
        components.add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("__Host-session"))));
    }
}

/// Every operation can also answer a problem (401 without credentials, 403 without the scope, 404,
/// 413, 422, 429, …): a `default` response says so once for all of them.
fn default_problem_responses(openapi: &mut utoipa::openapi::OpenApi) {
    let problem = utoipa::openapi::ResponseBuilder::new()
        .description("A problem (RFC 9457): the status and `code` say what went wrong")
        .content(
            "application/problem+json",
            utoipa::openapi::ContentBuilder::new().schema(Some(utoipa::openapi::Ref::from_schema_name("Problem"))).build(),
        )
        .build();
    for item in openapi.paths.paths.values_mut() {
        for op in [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete].into_iter().flatten() {
            op.responses.responses.entry("default".to_string()).or_insert_with(|| problem.clone().into());
        }
    }
}

/// The document: [`ApiDoc`]'s header, the operations as `super::operations` declares them, and a
/// problem as every operation's `default` answer.
pub fn spec() -> utoipa::openapi::OpenApi {
    static SPEC: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    SPEC.get_or_init(|| {
        let mut doc = super::operations().into_openapi();
        default_problem_responses(&mut doc);
        doc
    })
    .clone()
}

/// The document as served: [`spec`] plus OpenAPI 3.1's top-level `webhooks`, which utoipa's
/// `OpenApi` has no field for (utoipa writes `"openapi": "3.1.0"`, so the field is valid there).
pub fn served() -> &'static Value {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(spec()).unwrap_or_else(|e| panic!("the OpenAPI document serialises: {e}"));
        doc["webhooks"] = webhooks();
        doc
    })
}

pub async fn document() -> Json<Value> {
    Json(served().clone())
}

/// What every event delivery is, whatever its type.
const DELIVERY: &str = "We POST this body to each enabled endpoint subscribed to the type (or to every type), signed per Standard Webhooks with the endpoint's `whsec_` secret: `webhook-id`, `webhook-timestamp` and `webhook-signature` (see the parameters). Verify the signature over the exact bytes received before parsing them. A 2xx answer acknowledges the delivery; any other answer, a timeout or a failed connection is a failed attempt, retried with backoff and finally dead-lettered. Delivery is at least once: deduplicate on `webhook-id`.";

/// One `post` per event type of the catalogue (`hooks::events`): its request body is the JSON an
/// endpoint receives, with the type's schema and example.
fn webhooks() -> Value {
    let headers = [
        ("webhook-id", "The message id (`msg_…`): the same on every retry and replay of this event, so the key to deduplicate on."),
        ("webhook-timestamp", "When this attempt was signed, in unix seconds. Refuse one too far from your clock (Standard Webhooks suggests 5 minutes)."),
        (
            "webhook-signature",
            "`v1,` then the base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the base64-decoded part of the endpoint's secret after `whsec_`. While a rotated secret overlaps the new one, two such entries separated by a space: accept the delivery when one matches.",
        ),
    ];
    let parameters: Vec<Value> = headers
        .iter()
        .map(|(name, about)| json!({ "name": name, "in": "header", "required": true, "description": about, "schema": { "type": "string" } }))
        .collect();
    let entries = hooks::events::CATALOGUE.iter().map(|e| {
        let post = json!({
            "operationId": format!("webhook_{}", e.name.replace('.', "_")),
            "tags": ["webhooks"],
            "summary": e.description,
            "description": DELIVERY,
            "parameters": parameters,
            "requestBody": {
                "required": true,
                "description": format!("A `{}` event.", e.name),
                "content": { "application/json": { "schema": e.schema(), "example": e.example() } },
            },
            "responses": {
                "2XX": { "description": "Acknowledged: this delivery is done." },
                "default": { "description": "Not acknowledged: the attempt failed and is retried with backoff, then dead-lettered." },
            },
        });
        (e.name.to_string(), json!({ "post": post }))
    });
    Value::Object(entries.collect())
}
