//! The error contract through the real router: every route and server function the server has (its
//! inventory, so a new one is walked without anyone adding it here), called with bad input by a
//! signed-out and a signed-in caller, answers an error as RFC 9457 problem details with a stable code,
//! never a 500. Pages are left out: a browser navigating gets HTML.

use crate::common::*;
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};

/// Fills each `{param}` of an axum path with something no id looks like.
fn bad_path(path: &str) -> String {
    path.split('/').map(|seg| if seg.starts_with('{') { "x%00y" } else { seg }).collect::<Vec<_>>().join("/")
}

fn bad_request(method: &str, path: &str, kind: &str, cookie: Option<&str>) -> Request<Body> {
    let method: Method = method.parse().unwrap();
    let mut b = Request::builder()
        .method(method.clone())
        .uri(bad_path(path))
        .header(header::HOST, HOST)
        .header(header::ORIGIN, ORIGIN)
        .header(header::ACCEPT, "application/json")
        .header("sec-fetch-site", "same-origin");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    if method == Method::GET || method == Method::HEAD {
        return b.body(Body::empty()).unwrap();
    }
    // A server function's arguments are a form; everything else gets JSON that does not parse.
    let (content_type, body): (&str, &[u8]) =
        if kind == "server_fn" { ("application/x-www-form-urlencoded", b"id=x&%ff=%00&enabled=maybe") } else { ("application/json", b"{not json") };
    b.header(header::CONTENT_TYPE, content_type).body(Body::from(body.to_vec())).unwrap()
}

/// The problem in `res`, checked against its status; `Err` says what is wrong with it.
async fn problem_of(res: axum::http::Response<Body>) -> Result<contract::Problem, String> {
    let status = res.status();
    let content_type = res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let text = body_text(res).await;
    if content_type != "application/problem+json" {
        return Err(format!("{status} as {content_type:?}: {}", text.chars().take(120).collect::<String>()));
    }
    let p: contract::Problem = serde_json::from_str(&text).map_err(|e| format!("{status}: not a problem ({e}): {text}"))?;
    if p.status != status.as_u16() || p.code.is_empty() || p.type_uri != format!("/api/v1/problems/{}", p.code) || p.detail.is_empty() {
        return Err(format!("{status}: inconsistent problem {text}"));
    }
    Ok(p)
}

#[test]
fn every_route_and_server_function_answers_bad_input_with_a_problem() {
    block_on(async {
        let app = spawn().await;
        app.create_user("pat", "pat-password-1").await;
        let cookie = app.login("pat", "pat-password-1").await;
        let routes: Vec<_> = server::inventory::inventory().into_iter().filter(|r| r.kind != "page").collect();
        assert!(routes.iter().filter(|r| r.kind == "api").count() > 20 && routes.iter().any(|r| r.kind == "server_fn"), "{routes:?}");
        let (mut wrong, mut errors_seen) = (vec![], 0);
        for r in &routes {
            for (who, c) in [("anonymous", None), ("signed in", Some(cookie.as_str()))] {
                let res = app.send(bad_request(&r.method, &r.path, r.kind, c)).await;
                let status = res.status();
                if status.is_success() || status.is_redirection() {
                    continue; // a GET without input, or a route that takes none
                }
                errors_seen += 1;
                if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
                    wrong.push(format!("{who} {} {}: {status}", r.method, r.path));
                    continue;
                }
                if let Err(why) = problem_of(res).await {
                    wrong.push(format!("{who} {} {}: {why}", r.method, r.path));
                }
            }
        }
        assert!(wrong.is_empty(), "answers that are not problems:\n{}", wrong.join("\n"));
        assert!(errors_seen > 60, "the walk must reach the error paths ({errors_seen})");
    })
}

#[test]
fn limits_applied_by_layers_answer_problems_too() {
    block_on(async {
        let app = spawn().await;
        let token = {
            app.create_user("lim", "lim-password-1").await;
            app.token("lim", &[auth::Scope::WorkflowsWrite]).await.1
        };
        // Over the server's 1 MiB ceiling: refused by a layer before any handler reads it.
        let mut req = api("POST", "/api/v1/workflows", Some(&token), None);
        *req.body_mut() = Body::from(vec![b'x'; 2 * 1024 * 1024]);
        req.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let res = app.send(req).await;
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(problem_of(res).await.unwrap().code, "payload_too_large");
        // A method the route does not have.
        let res = app.send(api("DELETE", "/api/v1/me", Some(&token), None)).await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        let p = problem_of(res).await.unwrap();
        assert_eq!((p.status, p.code.as_str()), (405, "method_not_allowed"));
        // A form post of the wrong type, asked for JSON: the form routes answer problems as well.
        let mut req = post_raw("/login", br#"{"username":"a"}"#.to_vec(), None, &[("sec-fetch-site", "same-origin")]);
        req.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        req.headers_mut().insert(header::ACCEPT, "application/json".parse().unwrap());
        let p = problem_of(app.send(req).await).await.unwrap();
        assert_eq!((p.status, p.code.as_str()), (415, "unsupported_media_type"));
    })
}

/// The inventory, the OpenAPI document and the router are one declaration: every route the inventory
/// lists (the plain routes, every documented operation) is served by the built router. An entry the
/// router did not have would answer 405, the API's "No such API route." or the HTML 404 page.
#[test]
fn every_declared_route_is_served_by_the_built_router() {
    block_on(async {
        let app = spawn().await;
        let routes: Vec<_> = server::inventory::inventory().into_iter().filter(|r| r.kind == "api" || r.kind == "other").collect();
        assert!(routes.len() > 45, "{routes:?}");
        let mut unserved = vec![];
        for r in &routes {
            let path = r.path.replace("{*rest}", "no/such/route");
            let path: String = path.split('/').map(|s| if s.starts_with('{') { "1" } else { s }).collect::<Vec<_>>().join("/");
            let res = app.send(bad_request(&r.method, &path, r.kind, None)).await;
            let status = res.status();
            let text = body_text(res).await;
            let catch_all = r.path.ends_with("{*rest}");
            if status == StatusCode::METHOD_NOT_ALLOWED || (!catch_all && (text.contains("No such API route.") || text.contains("Page not found"))) {
                unserved.push(format!("{} {}: {status} {}", r.method, r.path, text.chars().take(80).collect::<String>()));
            }
        }
        assert!(unserved.is_empty(), "declared but not served:\n{}", unserved.join("\n"));
        // And the catch-all really is what an undeclared API path gets.
        let res = app.send(bad_request("GET", "/api/v1/nowhere", "api", None)).await;
        assert_eq!(problem_of(res).await.unwrap().detail, "No such API route.");
    })
}
