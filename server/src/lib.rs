//! The Implementation-Eng server: one axum router with the Leptos pages, their server functions, the
//! form routes, and the middleware that keeps sessions safe.

pub mod api;
pub mod cli;
pub mod config;
pub mod error;
pub mod error_page;
pub mod extract;
pub mod form;
pub mod inventory;
pub mod limits;
pub mod live;
pub mod middleware;
pub mod notifications;
pub mod notify_cli;
pub mod page_cache;
pub mod retention;
pub mod routes;
pub mod security_page;
pub mod session_cache;
pub mod session_store;
pub mod state;
pub mod web_session;

use app::api::ssr::PageServices;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::response::{Redirect, Response};
use axum::Router;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

pub use state::AppState;

/// No request body anywhere may exceed this; form routes have a tighter limit from the settings.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Declares the routes that are neither pages nor REST API operations once: the router is built from
/// this list, and so is [`PLAIN_ROUTES`], which `inventory` (and through it `server routes`, the
/// header check and the problem walk) reads.
macro_rules! plain_routes {
    ($($method:ident $path:literal => $handler:expr),* $(,)?) => {
        /// (method, path) of every plain route, as declared in [`plain_router`].
        pub const PLAIN_ROUTES: &[(&str, &str)] = &[$((plain_routes!(@upper $method), $path)),*];

        fn plain_router() -> Router<AppState> {
            Router::new()$(.route($path, axum::routing::$method($handler)))*
        }
    };
    (@upper get) => { "GET" };
    (@upper post) => { "POST" };
}

plain_routes! {
    get "/" => || async { Redirect::to(app::DEFAULT_AFTER_LOGIN) },
    post "/login" => routes::login,
    post "/signup" => routes::signup,
    post "/settings/password" => routes::change_password,
    post "/logout" => routes::logout,
    post "/sessions/revoke" => routes::revoke_session,
    post "/sessions/revoke-others" => routes::revoke_other_sessions,
    get "/healthz" => routes::healthz,
    get "/readyz" => routes::readyz,
    get "/metrics" => notifications::metrics,
    post "/api/crypto" => routes::crypto_lab,
    get "/api/crypto/methods" => routes::crypto_methods,
    get "/notifications/runs/{id}/events" => live::run_events,
    get "/docs/notifications" => live::notifications_doc,
    get "/security" => security_page::page,
}

/// Context every page render and server function gets: one `Arc`, cloned per render.
fn page_context(state: &AppState) -> impl Fn() + Clone + Send + Sync + 'static {
    let shared = state.clone();
    let ops = {
        let (settings, retention) = (state.settings.clone(), state.retention.clone());
        app::notify_api::ssr::OpsView {
            is_operator: std::sync::Arc::new(move |name| settings.is_operator(name)),
            storage: std::sync::Arc::new(move || retention.report()),
        }
    };
    let services = std::sync::Arc::new(PageServices {
        sessions_of: std::sync::Arc::new(move |user_id, checked_at| {
            let state = shared.clone();
            Box::pin(async move { state.sessions.sessions_of(user_id, checked_at).await })
        }),
        policy: state.sessions.policy,
        lab: state.lab.clone(),
        signup_offered: state.settings.signup_enabled(),
        secure_cookies: state.settings.cookie_secure(),
        notify: state.notify.clone(),
        hooks: state.hooks.clone(),
        flows: state.flows.clone(),
        tokens: state.tokens.clone(),
        authenticator: state.auth.clone(),
        ops,
    });
    move || provide_context(services.clone())
}

/// Renders a page for `req` outside the router (used to re-render the login page with an error).
pub async fn render_page(state: &AppState, req: Request) -> Response {
    let options = state.leptos_options.clone();
    let handler = leptos_axum::render_app_async_with_context(page_context(state), move || app::shell(options.clone()));
    handler(req).await
}

/// Milliseconds since the Unix epoch: the clock of the server's own tables (idempotency answers, the
/// demo step's customers, the pruning lease).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub fn session_cookie_name(secure: bool) -> &'static str {
    // `__Host-` makes the browser insist on Secure, Path=/ and no Domain.
    if secure {
        "__Host-session"
    } else {
        "session"
    }
}

/// The Leptos route list, generated once per process. Generating it runs the app with resource loading
/// suppressed through a process-global flag, so a page rendering on another thread at that moment would
/// wait forever (leptos issue #4773); doing it once, before anything serves, rules that out.
pub(crate) fn route_list() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(app::App)).clone()
}

pub fn router(state: AppState) -> Router {
    let settings = state.settings.clone();
    let secure = settings.cookie_secure();
    let session_layer = SessionManagerLayer::new(state.session_store.clone())
        .with_name(session_cookie_name(secure))
        .with_secure(secure)
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(settings.session.idle_timeout_secs as i64)));

    let options = state.leptos_options.clone();
    let routes = route_list();
    let shell = move || app::shell(options.clone());

    plain_router()
        .merge(api::router())
        .leptos_routes_with_context(&state, routes, page_context(&state), shell)
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(page_context(&state), app::shell))
        .layer(axum::middleware::from_fn_with_state(state.clone(), page_cache::session_pages))
        .layer(axum::middleware::from_fn(middleware::require_sign_in))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::load_signed_in))
        .layer(session_layer)
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::complete_session_cookie_attributes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::refuse_cross_site))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::client_address))
        .layer(DefaultBodyLimit::max(settings.max_form_bytes))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(error_page::panic_response))
        .layer(axum::middleware::from_fn(middleware::problems))
        .layer(axum::middleware::from_fn(middleware::security_headers))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::instance_header))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<Body>| {
            // Method and path only: query strings may carry `next=` and the like, never secrets, but
            // headers (cookies) are left out on purpose.
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
        }))
        .with_state(state)
}
