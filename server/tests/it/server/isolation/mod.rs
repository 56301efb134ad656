//! Multi-user isolation and abuse limits (issue 14): a module per area, and the request helpers they
//! share.
mod credentials;
mod flows_net;
mod flows_scope;
mod limits;
mod notify;

use crate::common::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;

/// A REST request with a bearer token.
fn api(method: &str, path: &str, token: &str, body: Option<Value>) -> Request<Body> {
    crate::common::api(method, path, Some(token), body)
}

/// The answer's status and body.
async fn call(app: &TestApp, req: Request<Body>) -> (StatusCode, Value) {
    let (status, _, body) = app.call(req).await;
    (status, body)
}
