//! Every route the server answers, with its method: the pages (Leptos), the server functions, the REST
//! API (from the OpenAPI document) and the plain axum routes. `server routes` prints it, and the test
//! command's header check walks it directly and through nginx, so a new route is checked without
//! anyone adding it to a test. A unit test below fails when a `.route(...)` in the sources is missing.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RouteInfo {
    pub method: String,
    /// axum syntax: `/api/v1/runs/{id}`.
    pub path: String,
    /// `page`, `server_fn`, `api` or `other`.
    pub kind: &'static str,
}

/// The axum routes that are neither pages nor in the OpenAPI document.
const OTHER: &[(&str, &str)] = &[
    ("GET", "/"),
    ("POST", "/login"),
    ("POST", "/signup"),
    ("POST", "/settings/password"),
    ("POST", "/logout"),
    ("POST", "/sessions/revoke"),
    ("POST", "/sessions/revoke-others"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/api/crypto"),
    ("GET", "/api/crypto/methods"),
    ("GET", "/notifications/runs/{id}/events"),
    ("GET", "/docs/notifications"),
    ("GET", "/security"),
    ("GET", "/api/docs"),
    ("GET", "/api/v1/openapi.json"),
    // Unknown API paths answer a problem, not the HTML 404 page.
    ("GET", "/api/v1/{*rest}"),
];

pub fn inventory() -> Vec<RouteInfo> {
    let mut out: Vec<RouteInfo> = OTHER.iter().map(|(m, p)| RouteInfo { method: (*m).into(), path: (*p).into(), kind: "other" }).collect();
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
    use std::collections::BTreeSet;

    /// Every `.route("…")` in the server's sources (outside tests) is in the inventory, so the header
    /// check cannot miss a route someone added.
    #[tokio::test]
    async fn every_route_in_the_sources_is_in_the_inventory() {
        let known: BTreeSet<(String, String)> = inventory().into_iter().map(|r| (r.method, r.path)).collect();
        let mut missing = vec![];
        let mut seen = 0;
        for file in rust_files(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))) {
            let text = std::fs::read_to_string(&file).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            for part in code.split(".route(\"").skip(1) {
                let (path, rest) = part.split_once('"').unwrap();
                // The method routers of this route: `get(h)`, `post(h).layer(…)`, `get(a).delete(b)`.
                // One route a line here; a route written over several lines ends at the statement.
                let line = rest.split('\n').next().unwrap_or(rest);
                let has_method = |t: &str| ["get(", "post(", "put(", "patch(", "delete(", "any("].iter().any(|m| t.contains(m));
                let rest = if has_method(line) { line } else { rest.split(';').next().unwrap_or(rest) };
                // `any(h)` (every method) is listed, and walked, as GET.
                let rest = rest.replace("any(", "get(");
                let methods: Vec<&str> = ["get", "post", "put", "patch", "delete"]
                    .into_iter()
                    .filter(|m| {
                        rest.match_indices(&format!("{m}("))
                            .any(|(i, _)| i == 0 || !rest.as_bytes()[i - 1].is_ascii_alphanumeric() && rest.as_bytes()[i - 1] != b'_')
                    })
                    .collect();
                assert!(!methods.is_empty(), "no method found for {path} in {}", file.display());
                for m in methods {
                    seen += 1;
                    if !known.contains(&(m.to_uppercase(), path.to_string())) {
                        missing.push(format!("{} {path} ({})", m.to_uppercase(), file.display()));
                    }
                }
            }
        }
        assert!(seen > 40, "found only {seen} routes: has the router moved?");
        assert!(missing.is_empty(), "routes missing from inventory(): {missing:?}");
    }

    #[tokio::test]
    async fn the_inventory_has_pages_server_functions_and_api_operations() {
        let all = inventory();
        let has = |m: &str, p: &str, k: &str| all.iter().any(|r| r.method == m && r.path == p && r.kind == k);
        assert!(has("GET", "/login", "page"));
        assert!(has("GET", "/settings/webhooks/{id}", "page"), "{all:?}");
        assert!(has("DELETE", "/api/v1/webhooks/endpoints/{id}", "api"));
        assert!(all.iter().any(|r| r.kind == "server_fn" && r.path.starts_with("/api/")));
    }

    fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = vec![];
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                out.extend(rust_files(&p));
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
        out
    }
}
