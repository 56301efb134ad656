//! The page shown when a request fails inside the server: a status, an apology and a way back, never
//! the internals (those go to the log).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::any::Any;

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Something went wrong · Implementation-Eng</title></head>
<body><main><h1>Something went wrong</h1>
<p>The server could not finish this request. Nothing you entered was lost on our side; please try again.</p>
<p><a href="/success">Back to your account</a></p></main></body></html>"#;

/// Turns a panic in a handler into a 500 page (a problem for API clients, see
/// `middleware::problems`, which also logs the panic message once; it is never shown).
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail =
        panic.downcast_ref::<String>().map(String::as_str).or_else(|| panic.downcast_ref::<&str>().copied()).unwrap_or("non-string panic payload");
    let mut res = server_error_page();
    res.extensions_mut()
        .insert(contract::InternalFailure { error_id: contract::new_error_id(), detail: format!("request handler panicked: {detail}") });
    res
}

pub fn server_error_page() -> Response {
    let mut res = (StatusCode::INTERNAL_SERVER_ERROR, PAGE).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{routing::get, Router};
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use tower_http::catch_panic::CatchPanicLayer;

    #[tokio::test]
    async fn a_panic_becomes_a_500_page_without_internals() {
        let app: Router = Router::new()
            .route(
                "/boom",
                get(|| async {
                    if true {
                        panic!("secret internal detail: db password is hunter2")
                    }
                    "unreachable"
                }),
            )
            .layer(CatchPanicLayer::custom(panic_response));
        let res = app.oneshot(axum::http::Request::get("/boom").body(axum::body::Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        assert!(body.contains("Something went wrong"));
        assert!(!body.contains("hunter2"));
    }
}
