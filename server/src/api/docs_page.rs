//! `/api/docs`: the OpenAPI document as a readable page (server-rendered, no scripts), so the reference
//! needs nothing from outside this server.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn schema_name(v: &Value) -> String {
    if let Some(r) = v.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_string();
    }
    match v.get("type") {
        Some(Value::String(t)) if t == "array" => format!("[{}]", v.get("items").map(schema_name).unwrap_or_default()),
        Some(Value::String(t)) => t.to_string(),
        // OpenAPI 3.1 (JSON Schema 2020-12): `["string", "null"]`.
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" | "),
        _ => "any".into(),
    }
}

/// An object schema's fields (required ones starred), or its allowed values.
fn fields(s: &Value) -> String {
    if let Some(props) = s["properties"].as_object() {
        let required: Vec<&str> = s["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        let mut out = String::from("<table><tr><th>Field</th><th>Type</th><th>About</th></tr>");
        for (field, p) in props {
            let values =
                p["enum"].as_array().map(|v| format!(" One of <code>{}</code>.", esc(&Value::from(v.clone()).to_string()))).unwrap_or_default();
            out.push_str(&format!(
                "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}{}</td></tr>",
                esc(field),
                if required.contains(&field.as_str()) { " *" } else { "" },
                esc(&schema_name(p)),
                esc(p["description"].as_str().unwrap_or("")),
                values
            ));
        }
        out.push_str("</table>");
        out
    } else if let Some(values) = s["enum"].as_array() {
        let v: Vec<String> = values.iter().map(|v| v.as_str().unwrap_or("").to_string()).collect();
        format!("<p>One of <code>{}</code></p>", esc(&v.join(", ")))
    } else {
        String::new()
    }
}

/// The document's `webhooks`: what we POST to endpoints, per event type, with its `data` and an example.
fn webhooks(spec: &Value) -> String {
    let Some(hooks) = spec["webhooks"].as_object().filter(|h| !h.is_empty()) else { return String::new() };
    let mut out = String::from("<section><h2 id=\"webhook-events\">Webhook events (we send)</h2>");
    if let Some(about) = hooks.values().next().and_then(|h| h["post"]["description"].as_str()) {
        out.push_str(&format!("<p>{}</p>", esc(about)));
    }
    for (name, item) in hooks {
        let op = &item["post"];
        let body = &op["requestBody"]["content"]["application/json"];
        out.push_str(&format!(
            "<article data-testid=\"event-type\" data-name=\"{0}\"><h3 id=\"event-{0}\"><code class=\"m\">POST</code> <code>{0}</code></h3>",
            esc(name)
        ));
        out.push_str(&format!("<p>{}</p>", esc(op["summary"].as_str().unwrap_or(""))));
        let data = &body["schema"]["properties"]["data"];
        if let Some(d) = data["description"].as_str() {
            out.push_str(&format!("<p class=\"s\">{}</p>", esc(d)));
        }
        out.push_str(&format!("<p><code>data</code>:</p>{}", fields(data)));
        // The catalogue's own text keeps the body's fields in the order deliveries write them.
        let example =
            hooks::events::find(name).map(|e| e.example_text()).unwrap_or_else(|| serde_json::to_string_pretty(&body["example"]).unwrap_or_default());
        let schema = serde_json::to_string_pretty(&body["schema"]).unwrap_or_default();
        out.push_str(&format!(
            "<p>Example:</p><pre><code data-testid=\"event-example\">{}</code></pre>\
             <details><summary>JSON Schema of the body</summary><pre><code data-testid=\"event-schema\">{}</code></pre></details></article>",
            esc(&example),
            esc(&schema)
        ));
    }
    out.push_str("</section>");
    out
}

pub fn render(spec: &Value) -> String {
    let mut out = String::new();
    let info = &spec["info"];
    out.push_str(&format!(
        "<h1>{}</h1><p>{}</p><p><a href=\"/api/v1/openapi.json\">OpenAPI document (JSON)</a> · <a href=\"/success\">Back to the app</a></p>",
        esc(info["title"].as_str().unwrap_or("API")),
        esc(info["description"].as_str().unwrap_or(""))
    ));
    let paths = spec["paths"].as_object().cloned().unwrap_or_default();
    for tag in spec["tags"].as_array().cloned().unwrap_or_default() {
        let name = tag["name"].as_str().unwrap_or("");
        out.push_str(&format!("<section><h2 id=\"{0}\">{0}</h2><p>{1}</p>", esc(name), esc(tag["description"].as_str().unwrap_or(""))));
        for (path, item) in &paths {
            for method in ["get", "post", "put", "patch", "delete"] {
                let Some(op) = item.get(method) else { continue };
                if !op["tags"].as_array().is_some_and(|t| t.iter().any(|x| x == name)) {
                    continue;
                }
                out.push_str(&format!("<article><h3><code class=\"m\">{}</code> <code>{}</code></h3>", method.to_uppercase(), esc(path)));
                let text = [op["summary"].as_str(), op["description"].as_str()].into_iter().flatten().collect::<Vec<_>>().join(" ");
                if !text.is_empty() {
                    out.push_str(&format!("<p>{}</p>", esc(&text)));
                }
                if let Some(sec) = op["security"].as_array() {
                    let scopes: Vec<String> = sec
                        .iter()
                        .filter_map(|s| s.get("bearer"))
                        .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect();
                    if !scopes.is_empty() {
                        out.push_str(&format!("<p class=\"s\">Scope: <code>{}</code></p>", esc(&scopes.join(", "))));
                    }
                }
                if let Some(params) = op["parameters"].as_array() {
                    out.push_str("<table><tr><th>Parameter</th><th>In</th><th>Type</th><th>About</th></tr>");
                    for p in params {
                        out.push_str(&format!(
                            "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            esc(p["name"].as_str().unwrap_or("")),
                            if p["required"].as_bool() == Some(true) { " *" } else { "" },
                            esc(p["in"].as_str().unwrap_or("")),
                            esc(&schema_name(&p["schema"])),
                            esc(p["description"].as_str().unwrap_or(""))
                        ));
                    }
                    out.push_str("</table>");
                }
                if let Some(content) = op["requestBody"]["content"].as_object() {
                    for (ct, c) in content {
                        out.push_str(&format!("<p>Body <code>{}</code>: <code>{}</code></p>", esc(ct), esc(&schema_name(&c["schema"]))));
                    }
                }
                if let Some(responses) = op["responses"].as_object() {
                    out.push_str("<ul>");
                    for (code, r) in responses {
                        let body = r["content"].as_object().and_then(|c| c.values().next()).map(|c| schema_name(&c["schema"])).unwrap_or_default();
                        out.push_str(&format!(
                            "<li><code>{}</code> {} <code>{}</code></li>",
                            esc(code),
                            esc(r["description"].as_str().unwrap_or("")),
                            esc(&body)
                        ));
                    }
                    out.push_str("</ul>");
                }
                out.push_str("</article>");
            }
        }
        out.push_str("</section>");
    }
    out.push_str(&webhooks(spec));
    if let Some(schemas) = spec["components"]["schemas"].as_object() {
        out.push_str("<section><h2 id=\"schemas\">Schemas</h2>");
        for (name, s) in schemas {
            out.push_str(&format!("<article><h3 id=\"schema-{0}\"><code>{0}</code></h3>", esc(name)));
            if let Some(d) = s["description"].as_str() {
                out.push_str(&format!("<p>{}</p>", esc(d)));
            }
            out.push_str(&fields(s));
            out.push_str("</article>");
        }
        out.push_str("</section>");
    }
    out
}

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1a1a2e;background:#fafafa}main{max-width:960px;margin:0 auto;padding:1.5rem}\
h1{font-size:1.8rem}h2{border-bottom:2px solid #ddd;margin-top:2.5rem}h3{font-size:1.05rem;margin:1.5rem 0 .3rem}code{font:14px ui-monospace,monospace;background:#eef;padding:0 .25rem;border-radius:3px}\
.m{background:#1a1a2e;color:#fff}pre{white-space:pre-wrap;background:#eef;padding:.5rem;border-radius:3px}pre code{padding:0}table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}article{border-left:3px solid #ccd;padding-left:1rem}.s{color:#555}\
a{color:#2a4bd7}@media (prefers-color-scheme: dark){body{background:#14141f;color:#e8e8f0}code,pre{background:#2a2a40}th,td{border-color:#444}a{color:#9db0ff}}";

pub async fn page() -> Response {
    // The document is fixed for the life of the process, so the page is rendered once.
    static PAGE: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    let (title, body) = PAGE.get_or_init(|| {
        let spec = super::openapi::served();
        (format!("{} — reference", spec["info"]["title"].as_str().unwrap_or("API")), render(spec))
    });
    static_page(title, body)
}

/// A server-rendered page without scripts (`/api/docs`, `/security`): `body` (already escaped) in a
/// small document whose only stylesheet is allowed by its hash, so the CSP needs no 'unsafe-inline'.
pub(crate) fn static_page(title: &str, body: &str) -> Response {
    use base64::Engine;
    use sha2::Digest;
    static CSP: std::sync::OnceLock<HeaderValue> = std::sync::OnceLock::new();
    let csp = CSP.get_or_init(|| {
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(STYLE.as_bytes()));
        let policy =
            format!("default-src 'none'; style-src 'sha256-{hash}'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
        HeaderValue::from_str(&policy)
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'"))
    });
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{}</style></head><body><main>{}</main></body></html>",
        esc(title),
        STYLE,
        body
    );
    let mut res = axum::response::Html(html).into_response();
    res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    res
}
