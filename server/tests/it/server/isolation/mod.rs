//! Multi-user isolation and abuse limits (issue 14): a module per area, and the request helpers they
//! share.
mod credentials;
mod flows_net;
mod flows_scope;
mod limits;
mod notify;

use crate::common::*;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::Value;

/// A REST request with a bearer token and, when given, a JSON body.
fn api(method: &str, path: &str, token: &str, body: Option<Value>) -> Request<Body> {
    let b = Request::builder().method(method).uri(path).header(header::HOST, HOST).header(header::AUTHORIZATION, format!("Bearer {token}"));
    with_json(b, body)
}

fn with_json(b: axum::http::request::Builder, body: Option<Value>) -> Request<Body> {
    match body {
        Some(v) => b.header(header::CONTENT_TYPE, "application/json").body(Body::from(v.to_string())).unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

/// The answer's status and body (JSON, or the text as a JSON string).
async fn call(app: &TestApp, req: Request<Body>) -> (StatusCode, Value) {
    let (status, _, body) = call_with_headers(app, req).await;
    (status, body)
}

async fn call_with_headers(app: &TestApp, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let res = app.send(req).await;
    let (status, headers) = (res.status(), res.headers().clone());
    let text = body_text(res).await;
    (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}
