//! The OpenAPI 3 document, generated from the handlers' annotations (utoipa) and served at
//! `/api/v1/openapi.json`; `/api/docs` renders it as a page.

use axum::Json;
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

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(spec())
}
