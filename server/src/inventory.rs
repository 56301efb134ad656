//! Every route the server answers, with its method: the pages (Leptos), the server functions, the REST
//! API (from the OpenAPI document) and the plain axum routes. `server routes` prints it, and the test
//! command's header check walks it directly and through nginx, so a new route is checked without
//! anyone adding it to a test. Nothing here is listed by hand twice: the plain routes come from the
//! declaration the router is built from (`PLAIN_ROUTES`), the API operations from the OpenAPI
//! document that `api::operations` builds with the router. `server/tests/it/server/problems.rs` walks
//! the built router with every entry.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RouteInfo {
    pub method: String,
    /// axum syntax: `/api/v1/runs/{id}`.
    pub path: String,
    /// `page`, `server_fn`, `api` or `other`.
    pub kind: &'static str,
}

/// The API's own routes beside its operations (declared in `api::router`).
const API_EXTRAS: &[(&str, &str)] = &[
    ("GET", "/api/docs"),
    ("GET", "/api/v1/openapi.json"),
    // Unknown API paths answer a problem, not the HTML 404 page.
    ("GET", "/api/v1/{*rest}"),
];

pub fn inventory() -> Vec<RouteInfo> {
    let mut out: Vec<RouteInfo> =
        crate::PLAIN_ROUTES.iter().chain(API_EXTRAS).map(|(m, p)| RouteInfo { method: (*m).into(), path: (*p).into(), kind: "other" }).collect();
    for r in crate::route_list() {
        for m in r.methods() {
            out.push(RouteInfo { method: method_name(m).into(), path: r.path().to_string(), kind: "page" });
        }
    }
    for (path, method) in leptos::server_fn::axum::server_fn_paths() {
        out.push(RouteInfo { method: method.as_str().into(), path: path.into(), kind: "server_fn" });
    }
    for (path, item) in crate::api::openapi::spec().paths.paths {
        let ops = [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PUT", item.put.is_some()),
            ("PATCH", item.patch.is_some()),
            ("DELETE", item.delete.is_some()),
        ];
        for (m, _) in ops.into_iter().filter(|(_, has)| *has) {
            out.push(RouteInfo { method: m.into(), path: path.clone(), kind: "api" });
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.method == b.method && a.path == b.path);
    out
}

fn method_name(m: leptos_router::Method) -> &'static str {
    use leptos_router::Method::*;
    match m {
        Get => "GET",
        Post => "POST",
        Put => "PUT",
        Delete => "DELETE",
        Patch => "PATCH",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_inventory_has_pages_server_functions_and_api_operations() {
        let all = inventory();
        let has = |m: &str, p: &str, k: &str| all.iter().any(|r| r.method == m && r.path == p && r.kind == k);
        assert!(has("GET", "/login", "page"));
        assert!(has("GET", "/settings/webhooks/{id}", "page"), "{all:?}");
        assert!(has("DELETE", "/api/v1/webhooks/endpoints/{id}", "api"));
        assert!(all.iter().any(|r| r.kind == "server_fn" && r.path.starts_with("/api/")));
    }
}
