//! The login and success pages through the real router: statuses, cookies, redirects, session rules.

use crate::common::*;
use axum::http::{header, StatusCode};
use std::time::Duration;

#[test]
fn login_page_renders_with_strict_security_headers() {
    block_on(async {
        let app = spawn().await;
        let res = app.send(get("/login", None)).await;
        assert_eq!(res.status(), StatusCode::OK);
        let h = res.headers().clone();
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_string();
        assert!(csp.contains("script-src 'self' 'nonce-"), "{csp}");
        assert!(csp.contains("'wasm-unsafe-eval'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "same-origin");
        assert!(h.get(header::SET_COOKIE).is_none(), "an anonymous page view creates no session");
        let html = body_text(res).await;
        assert!(html.contains(r#"<form method="post" action="/login""#), "plain form post without JS");
        assert!(html.contains(r#"name="username""#) && html.contains(r#"name="password""#));
        // Every inline script carries the nonce from the header.
        let nonce = csp.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap();
        for script in html.split("<script").skip(1) {
            let tag = script.split('>').next().unwrap();
            if !tag.contains("src=") {
                assert!(tag.contains(&format!("nonce=\"{nonce}\"")), "inline script without nonce: {tag}");
            }
        }
        // The head links the stylesheet and loads the app's module, each once (the names are read
        // once per process, not per render; the end-to-end tests prove they hydrate).
        let head = html.split("</head>").next().unwrap();
        assert_eq!(head.matches(r#"<link rel="stylesheet" id="leptos" href="/pkg/"#).count(), 1, "{head}");
        assert_eq!(head.matches(r#"<link rel="modulepreload" href="/pkg/"#).count(), 1, "{head}");
        assert_eq!(head.matches(&format!(r#"<script type="module" nonce="{nonce}">"#)).count(), 1, "{head}");
        assert!(head.contains("mod.hydrate()"), "Leptos's loader");
    })
}

#[test]
fn success_without_session_redirects_to_login_with_next() {
    block_on(async {
        let app = spawn().await;
        let res = app.send(get("/success", None)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), "/login?next=%2Fsuccess");
    })
}

#[test]
fn login_sets_a_hardened_cookie_and_success_shows_the_user() {
    block_on(async {
        let app = spawn().await;
        app.create_user("alice", "alice-password-1").await;
        let res = app.send(post_form("/login", &[("username", "alice"), ("password", "alice-password-1"), ("next", "/success")], None)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), "/success");
        let set_cookie = set_cookie_header(&res).unwrap();
        assert!(set_cookie.starts_with("__Host-session="), "{set_cookie}");
        for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
            assert!(set_cookie.contains(flag), "missing {flag}: {set_cookie}");
        }
        assert!(!set_cookie.contains("Domain"), "{set_cookie}");
        let cookie = session_cookie(&res).unwrap();

        let page = app.send(get("/success", Some(&cookie))).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[header::CACHE_CONTROL], "no-store");
        let html = body_text(page).await;
        assert!(html.contains("You are signed in"), "{html}");
        assert!(html.contains(">alice<"), "username shown");
        assert!(html.contains("Absolute expiry") && html.contains("Expires if inactive at"));
        assert!(!html.contains(cookie.split('=').nth(1).unwrap()), "the session id never appears in the page");
    })
}

#[test]
fn wrong_password_and_unknown_user_look_identical_and_set_no_session() {
    block_on(async {
        let app = spawn().await;
        app.create_user("bob", "bob-password-1").await;
        let wrong = app.send(post_form("/login", &[("username", "bob"), ("password", "nope")], None)).await;
        let unknown = app.send(post_form("/login", &[("username", "nobody-here"), ("password", "nope")], None)).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
        assert!(set_cookie_header(&wrong).is_none() && set_cookie_header(&unknown).is_none());
        let (a, b) = (body_text(wrong).await, body_text(unknown).await);
        assert!(a.contains("Invalid username or password."));
        assert!(b.contains("Invalid username or password."));
        assert!(a.contains(r#"<form method="post" action="/login""#), "no-JS failure re-renders the form");

        // The JSON (hydrated page) variant says the same thing.
        let json =
            |u: &str| post_raw("/login", encode(&[("username", u), ("password", "nope")]).into_bytes(), None, &[("accept", "application/json")]);
        let (x, y) = (app.send(json("bob")).await, app.send(json("nobody-here")).await);
        assert_eq!(x.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(y.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(body_text(x).await, body_text(y).await);
    })
}

#[test]
fn json_login_answers_with_the_redirect() {
    block_on(async {
        let app = spawn().await;
        app.create_user("carol", "carol-password-1").await;
        let body = encode(&[("username", "carol"), ("password", "carol-password-1"), ("next", "/success")]);
        let res = app.send(post_raw("/login", body.into_bytes(), None, &[("accept", "application/json")])).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(session_cookie(&res).is_some());
        assert_eq!(body_text(res).await, r#"{"redirect":"/success"}"#);
    })
}

#[test]
fn next_only_redirects_to_local_paths() {
    block_on(async {
        let app = spawn().await;
        app.create_user("dan", "dan-password-1").await;
        for (next, expected) in [("https://evil.example/", "/success"), ("//evil.example", "/success"), ("/success?tab=1", "/success?tab=1")] {
            let res = app.send(post_form("/login", &[("username", "dan"), ("password", "dan-password-1"), ("next", next)], None)).await;
            assert_eq!(location(&res), expected, "next={next}");
        }
    })
}

#[test]
fn session_id_is_rotated_on_login() {
    block_on(async {
        let app = spawn().await;
        app.create_user("erin", "erin-password-1").await;
        // A planted (fixated) cookie is not adopted.
        let planted = "__Host-session=AAAAAAAAAAAAAAAAAAAAAA";
        let res = app.send(post_form("/login", &[("username", "erin"), ("password", "erin-password-1")], Some(planted))).await;
        let first = session_cookie(&res).unwrap();
        assert_ne!(first, planted);
        // Logging in again from a signed-in session issues a new id and kills the old one.
        let res = app.send(post_form("/login", &[("username", "erin"), ("password", "erin-password-1")], Some(&first))).await;
        let second = session_cookie(&res).unwrap();
        assert_ne!(first, second);
        assert_eq!(app.send(get("/success", Some(&first))).await.status(), StatusCode::SEE_OTHER);
        assert_eq!(app.send(get("/success", Some(&second))).await.status(), StatusCode::OK);
    })
}

/// ASVS 7.2.3: a session id is 128 bits (16 bytes, base64url in the cookie), never repeats, and every
/// bit position takes both values across logins (a counter or a short random part would not).
#[test]
fn session_ids_carry_128_random_bits_and_never_repeat() {
    use base64::Engine;
    block_on(async {
        let app = spawn().await;
        app.create_user("gil", "gil-password-1").await;
        let mut ids = std::collections::HashSet::new();
        let (mut ones, mut zeros) = (0u128, 0u128);
        for _ in 0..24 {
            let cookie = app.login("gil", "gil-password-1").await;
            let value = cookie.split_once('=').unwrap().1.to_string();
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&value).expect("base64url id");
            assert_eq!(bytes.len(), 16, "{value}");
            let n = u128::from_le_bytes(bytes.try_into().unwrap());
            ones |= n;
            zeros |= !n;
            assert!(ids.insert(value), "a session id repeated");
        }
        assert_eq!((ones, zeros), (u128::MAX, u128::MAX), "some bit never changed: {ones:0128b} / {zeros:0128b}");
    })
}

#[test]
fn logout_destroys_the_session_server_side() {
    block_on(async {
        let app = spawn().await;
        app.create_user("fay", "fay-password-1").await;
        let cookie = app.login("fay", "fay-password-1").await;
        let res = app.send(post_form("/logout", &[], Some(&cookie))).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), "/login");
        // The browser is told to drop the cookie, with attributes a `__Host-` cookie needs to be accepted.
        let removal = set_cookie_header(&res).expect("removal cookie");
        assert!(removal.starts_with("__Host-session=;"), "{removal}");
        for attr in ["Max-Age=0", "Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
            assert!(removal.contains(attr), "missing {attr}: {removal}");
        }
        // Replaying the old cookie does not work.
        let replay = app.send(get("/success", Some(&cookie))).await;
        assert_eq!(replay.status(), StatusCode::SEE_OTHER);
        // Logout is POST only.
        assert_ne!(app.send(get("/logout", Some(&cookie))).await.status(), StatusCode::OK);
    })
}

#[test]
fn cross_site_posts_are_refused() {
    block_on(async {
        let app = spawn().await;
        app.create_user("gus", "gus-password-1").await;
        let fields = encode(&[("username", "gus"), ("password", "gus-password-1")]);
        let cases: [&[(&str, &str)]; 2] = [&[("sec-fetch-site", "cross-site")], &[("origin", "https://evil.example")]];
        for extra in cases {
            let mut req = post_raw("/login", fields.clone().into_bytes(), None, extra);
            if extra[0].0 == "origin" {
                req.headers_mut().insert(header::ORIGIN, "https://evil.example".parse().unwrap());
            }
            let res = app.send(req).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{extra:?}");
            assert!(set_cookie_header(&res).is_none());
        }
        // Neither Origin nor Sec-Fetch-Site: refused.
        let mut bare = post_raw("/login", fields.into_bytes(), None, &[]);
        bare.headers_mut().remove(header::ORIGIN);
        let res = app.send(bare).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(body_text(res).await.contains("Cross-site request refused"));
        // Server functions are covered too.
        let mut sf = post_raw("/api/whoami", vec![], None, &[("sec-fetch-site", "cross-site")]);
        sf.headers_mut().remove(header::ORIGIN);
        let path = server_fn_path("whoami");
        *sf.uri_mut() = path.parse().unwrap();
        assert_eq!(app.send(sf).await.status(), StatusCode::FORBIDDEN);
    })
}

fn server_fn_path(name: &str) -> String {
    use leptos::server_fn::ServerFn;
    let path = app::api::Whoami::PATH;
    assert!(path.contains(name), "{path}");
    path.to_string()
}

#[test]
fn repeated_failures_are_throttled_with_retry_after() {
    block_on(async {
        let app = spawn_with(|s| s.throttle.account_burst = 3).await;
        app.create_user("hal", "hal-password-1").await;
        for _ in 0..3 {
            let res = app.send(post_form("/login", &[("username", "hal"), ("password", "bad")], None)).await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        }
        // Even the right password is refused while throttled, and the answer says when to retry.
        let res = app.send(post_form("/login", &[("username", "hal"), ("password", "hal-password-1")], None)).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = res.headers()[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry));
        assert!(set_cookie_header(&res).is_none());
        assert!(body_text(res).await.contains("Too many sign-in attempts"));
    })
}

#[test]
fn idle_timeout_is_enforced_server_side() {
    block_on(async {
        let app = spawn_with(|s| {
            s.session.idle_timeout_secs = 2;
            s.session.absolute_lifetime_secs = 60;
        })
        .await;
        app.create_user("ivy", "ivy-password-1").await;
        let cookie = app.login("ivy", "ivy-password-1").await;
        assert_eq!(app.send(get("/success", Some(&cookie))).await.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(3100)).await;
        assert_eq!(app.send(get("/success", Some(&cookie))).await.status(), StatusCode::SEE_OTHER);
    })
}

#[test]
fn absolute_lifetime_is_enforced_even_when_active() {
    block_on(async {
        let app = spawn_with(|s| {
            s.session.idle_timeout_secs = 60;
            s.session.absolute_lifetime_secs = 3;
        })
        .await;
        app.create_user("jon", "jon-password-1").await;
        let cookie = app.login("jon", "jon-password-1").await;
        for _ in 0..2 {
            assert_eq!(app.send(get("/success", Some(&cookie))).await.status(), StatusCode::OK);
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(app.send(get("/success", Some(&cookie))).await.status(), StatusCode::SEE_OTHER);
    })
}

#[test]
fn sessions_survive_a_restart() {
    block_on(async {
        let app = spawn().await;
        app.create_user("kim", "kim-password-1").await;
        let cookie = app.login("kim", "kim-password-1").await;
        let TestApp { dir, .. } = app;
        let restarted = spawn_in(dir, |_| {}).await;
        assert_eq!(restarted.send(get("/success", Some(&cookie))).await.status(), StatusCode::OK);
    })
}

#[test]
fn ending_other_sessions_signs_them_out_but_not_this_one() {
    block_on(async {
        let app = spawn().await;
        app.create_user("lea", "lea-password-1").await;
        app.create_user("max", "max-password-1").await;
        let laptop = app.login("lea", "lea-password-1").await;
        let phone = app.login("lea", "lea-password-1").await;
        let tablet = app.login("lea", "lea-password-1").await;
        let other_user = app.login("max", "max-password-1").await;

        // The success page lists the other sessions.
        let html = body_text(app.send(get("/success", Some(&laptop))).await).await;
        assert_eq!(html.matches(r#"action="/sessions/revoke""#).count(), 2, "two other sessions listed");

        // End one by its handle.
        let user = app.state.auth.users.find_by_username("lea").await.unwrap().unwrap();
        let rows = app.state.sessions.registry.list_for_user(user.id, auth::now_unix()).await.unwrap();
        assert_eq!(rows.len(), 3);
        let max = app.state.auth.users.find_by_username("max").await.unwrap().unwrap();
        let max_handle = app.state.sessions.registry.list_for_user(max.id, auth::now_unix()).await.unwrap()[0].handle.clone();
        // Someone else's handle is not found.
        let res = app.send(post_form("/sessions/revoke", &[("handle", &max_handle)], Some(&laptop))).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(app.send(get("/success", Some(&other_user))).await.status(), StatusCode::OK);

        let all_sessions_before = rows.len();
        let res = app.send(post_form("/sessions/revoke-others", &[], Some(&laptop))).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(app.send(get("/success", Some(&phone))).await.status(), StatusCode::SEE_OTHER);
        assert_eq!(app.send(get("/success", Some(&tablet))).await.status(), StatusCode::SEE_OTHER);
        assert_eq!(app.send(get("/success", Some(&laptop))).await.status(), StatusCode::OK);
        assert_eq!(app.send(get("/success", Some(&other_user))).await.status(), StatusCode::OK);
        let after = app.state.sessions.registry.list_for_user(user.id, auth::now_unix()).await.unwrap();
        assert_eq!((all_sessions_before, after.len()), (3, 1));

        // Revoking needs a session.
        let res = app.send(post_form("/sessions/revoke-others", &[], None)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    })
}

#[test]
fn revoking_a_single_session_by_handle() {
    block_on(async {
        let app = spawn().await;
        app.create_user("ned", "ned-password-1").await;
        let a = app.login("ned", "ned-password-1").await;
        let b = app.login("ned", "ned-password-1").await;
        let user = app.state.auth.users.find_by_username("ned").await.unwrap().unwrap();
        let rows = app.state.sessions.registry.list_for_user(user.id, auth::now_unix()).await.unwrap();
        // rows are newest first: b then a. End b from a.
        let html = body_text(app.send(get("/success", Some(&a))).await).await;
        let b_handle =
            rows.iter().map(|r| r.handle.clone()).find(|h| html.contains(&format!(r#"name="handle" value="{h}""#))).expect("other session listed");
        let res =
            app.send(post_raw("/sessions/revoke", encode(&[("handle", &b_handle)]).into_bytes(), Some(&a), &[("accept", "application/json")])).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(app.send(get("/success", Some(&b))).await.status(), StatusCode::SEE_OTHER);
        assert_eq!(app.send(get("/success", Some(&a))).await.status(), StatusCode::OK);
    })
}

/// Repeat requests are answered from the session cache (`server::session_cache`, in memory), and
/// every change to a user's sessions is seen by the very next request: a new sign-in appears in the
/// list, a revoked session and a signed-out one are refused.
#[test]
fn the_session_cache_answers_repeats_and_sees_every_change_at_once() {
    block_on(async {
        // One instance: generations in memory (the default on SQLite; PostgreSQL's default is off).
        let app = spawn_with(|s| s.session.cache = server::config::SessionCacheKind::Memory).await;
        assert_eq!(app.state.sessions.cache.kind(), "memory");
        app.create_user("pia", "pia-password-1").await;
        app.create_user("quin", "quin-password-1").await;
        let a = app.login("pia", "pia-password-1").await;
        let other_user = app.login("quin", "quin-password-1").await;
        let handles = |html: &str| html.matches(r#"name="handle" value=""#).count();
        for _ in 0..2 {
            assert_eq!(app.send(get("/success", Some(&a))).await.status(), StatusCode::OK);
            assert_eq!(app.send(get("/success", Some(&other_user))).await.status(), StatusCode::OK);
        }
        let (hits, _) = app.state.sessions.cache.counts();
        assert!(hits >= 2, "repeats answered from memory: {hits}");
        assert_eq!(handles(&body_text(app.send(get("/success", Some(&a))).await).await), 0);

        // A new sign-in shows in the (cached) list at once.
        let b = app.login("pia", "pia-password-1").await;
        assert_eq!(app.send(get("/success", Some(&b))).await.status(), StatusCode::OK);
        let html = body_text(app.send(get("/success", Some(&a))).await).await;
        assert_eq!(handles(&html), 1, "b listed on a's page");
        let user = app.state.auth.users.find_by_username("pia").await.unwrap().unwrap();
        let rows = app.state.sessions.registry.list_for_user(user.id, auth::now_unix()).await.unwrap();
        let b_handle = rows.iter().map(|r| r.handle.clone()).find(|h| html.contains(&format!(r#"name="handle" value="{h}""#))).unwrap();

        // Revoked from a: b's very next request is refused, and a's list is empty again.
        let hits_before = app.state.sessions.cache.counts().0;
        assert_eq!(app.send(get("/success", Some(&b))).await.status(), StatusCode::OK);
        assert_eq!(app.state.sessions.cache.counts().0, hits_before + 1, "b was held in memory");
        let res = app.send(post_form("/sessions/revoke", &[("handle", &b_handle)], Some(&a))).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(app.send(get("/success", Some(&b))).await.status(), StatusCode::SEE_OTHER);
        assert_eq!(handles(&body_text(app.send(get("/success", Some(&a))).await).await), 0);

        // Signed out: refused at once. The other user is untouched throughout.
        let res = app.send(post_form("/logout", &[], Some(&a))).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(app.send(get("/success", Some(&a))).await.status(), StatusCode::SEE_OTHER);
        assert_eq!(app.send(get("/success", Some(&other_user))).await.status(), StatusCode::OK);
    })
}

/// The pages drawn only from the session are rendered once per session and generation and replayed
/// under a fresh nonce (`server::page_cache`): the replay is the page as rendered, its script nonce
/// and its policy's agree, and a change to the user's sessions shows on the very next request.
#[test]
fn session_pages_are_replayed_under_a_fresh_nonce_and_follow_every_change() {
    block_on(async {
        let app = spawn_with(|s| s.session.cache = server::config::SessionCacheKind::Memory).await;
        let pages = app.state.sessions.cache.pages.clone();
        app.create_user("rue", "rue-password-1").await;
        let a = app.login("rue", "rue-password-1").await;
        let fetch = |path: &'static str, cookie: String| {
            let app = &app;
            async move {
                let res = app.send(get(path, Some(&cookie))).await;
                assert_eq!(res.status(), StatusCode::OK, "{path}");
                let csp = res.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_string();
                let nonce = csp.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap().to_string();
                let html = body_text(res).await;
                assert!(html.contains(&format!(r#"nonce="{nonce}""#)), "the scripts run under the policy's nonce");
                (nonce, html)
            }
        };
        let (n1, first) = fetch("/success", a.clone()).await;
        let (replayed, rendered) = pages.counts();
        let (n2, second) = fetch("/success", a.clone()).await;
        assert_eq!(pages.counts(), (replayed + 1, rendered), "the repeat was replayed");
        assert_ne!(n1, n2, "every answer has its own nonce");
        assert!(!second.contains(&n1), "no trace of the rendered page's nonce");
        assert_eq!(first.replace(&n1, "NONCE"), second.replace(&n2, "NONCE"), "otherwise the page as rendered");
        // A query changes what a page shows: rendered, never replayed nor kept.
        let before = pages.counts();
        for _ in 0..2 {
            let html = body_text(app.send(get("/settings/password?changed=1", Some(&a))).await).await;
            assert!(html.contains("Password changed"), "the query's message is shown");
        }
        assert_eq!(pages.counts(), before);

        // A second session: its own page (a's is never shared), and a's lists it at once.
        let b = app.login("rue", "rue-password-1").await;
        let handles = |html: &str| html.matches(r#"name="handle" value=""#).count();
        let (_, on_b) = fetch("/success", b.clone()).await;
        let (_, on_a) = fetch("/success", a.clone()).await;
        assert_eq!((handles(&on_b), handles(&on_a)), (1, 1));
        let user = app.state.auth.users.find_by_username("rue").await.unwrap().unwrap();
        let rows = app.state.sessions.registry.list_for_user(user.id, auth::now_unix()).await.unwrap();
        let b_handle = rows.iter().map(|r| r.handle.clone()).find(|h| on_a.contains(&format!(r#"value="{h}""#))).unwrap();
        assert!(!on_b.contains(&format!(r#"value="{b_handle}""#)), "b's page lists a, not itself: pages are per session");
        let before = pages.counts();
        fetch("/success", a.clone()).await;
        assert_eq!(pages.counts(), (before.0 + 1, before.1), "replayed while nothing changed");

        // b revoked from a: a's next page lists nobody, b's next request is refused.
        let res = app.send(post_form("/sessions/revoke", &[("handle", &b_handle)], Some(&a))).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(handles(&fetch("/success", a.clone()).await.1), 0);
        assert_eq!(app.send(get("/success", Some(&b))).await.status(), StatusCode::SEE_OTHER);

        // The password page is replayed as well; signed out, neither page is.
        fetch("/settings/password", a.clone()).await;
        let before = pages.counts();
        assert!(!fetch("/settings/password", a.clone()).await.1.contains("Password changed"), "the query's page was not kept");
        assert_eq!(pages.counts(), (before.0 + 1, before.1));
        assert_eq!(app.send(post_form("/logout", &[], Some(&a))).await.status(), StatusCode::SEE_OTHER);
        for path in ["/success", "/settings/password"] {
            assert_eq!(app.send(get(path, Some(&a))).await.status(), StatusCode::SEE_OTHER, "{path}");
        }
        let (replayed, rendered) = pages.counts();
        let metrics = body_text(app.send(get("/metrics", None)).await).await;
        assert!(metrics.contains(&format!("page_cache_requests_total{{answered=\"replayed\"}} {replayed}\n")), "{metrics}");
        assert!(metrics.contains(&format!("page_cache_requests_total{{answered=\"rendered\"}} {rendered}\n")), "{metrics}");
    })
}

/// A replayed page stops listing a session once that session has expired, although nothing bumped
/// the user's generation: the page is kept only until the first session it lists expires.
#[test]
fn a_replayed_page_drops_a_listed_session_when_it_expires() {
    block_on(async {
        let app = spawn_with(|s| {
            s.session.cache = server::config::SessionCacheKind::Memory;
            s.session.idle_timeout_secs = 3600;
            s.session.absolute_lifetime_secs = 3;
        })
        .await;
        app.create_user("sol", "sol-password-1").await;
        let older = app.login("sol", "sol-password-1").await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let newer = app.login("sol", "sol-password-1").await;
        let handles = |html: String| html.matches(r#"name="handle" value=""#).count();
        assert_eq!(handles(body_text(app.send(get("/success", Some(&newer))).await).await), 1, "the older session listed");
        // The older one reaches its absolute limit; the newer one is still within its own.
        tokio::time::sleep(Duration::from_millis(2200)).await;
        assert_eq!(handles(body_text(app.send(get("/success", Some(&newer))).await).await), 0, "no longer listed");
        assert_eq!(app.send(get("/success", Some(&older))).await.status(), StatusCode::SEE_OTHER);
    })
}

/// ASVS 6.3.2: no default account in production; the documented demo user only in dev mode.
#[test]
fn the_demo_user_exists_only_in_dev_mode() {
    block_on(async {
        for (mode, expected) in [(server::config::Mode::Production, false), (server::config::Mode::Dev, true)] {
            let app = spawn_with(|s| s.mode = mode).await;
            server::state::ensure_demo_user(&app.state).await;
            let name = app.state.settings.demo_user.username.clone();
            let found = app.state.auth.users.find_by_username(&name).await.unwrap().is_some();
            assert_eq!(found, expected, "{mode:?}");
            let (users,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users").fetch_one(&app.state.pool).await.unwrap();
            assert_eq!(users, expected as i64, "{mode:?}: no other account appears");
            // Idempotent: a restart does not fail or duplicate it.
            server::state::ensure_demo_user(&app.state).await;
        }
    })
}
