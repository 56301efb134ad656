//! The body of `POST /login` as the server reads it: auth's strict urlencoded decoding into
//! `LoginForm`, the sign-in shape checks, the new-password policy (sign-up and password change take
//! the same fields), and the app's choice of where to go next.
#![no_main]

use auth::password::MAX_PASSWORD_BYTES;
use auth::users::MAX_USERNAME_CHARS;
use auth::{AuthError, LoginForm, PasswordPolicy};
use libfuzzer_sys::fuzz_target;

// The app's post-login redirect rules, compiled from its own source file (the app crate itself would
// bring Leptos into the fuzz build).
#[path = "../../app/src/redirect.rs"]
#[allow(dead_code)]
mod redirect;

fuzz_target!(|data: &[u8]| {
    let form: LoginForm = match auth::form::parse_urlencoded(data) {
        Ok(f) => f,
        Err(why) => {
            assert!(!why.is_empty());
            return;
        }
    };
    // Strict decoding: nothing accepted came from bytes that are not UTF-8.
    assert!(std::str::from_utf8(data).is_ok(), "accepted a body that is not UTF-8");
    // Encoding the decoded fields again and decoding that gives the same form.
    let mut fields = vec![("username", form.username.as_str()), ("password", form.password.as_str())];
    if let Some(n) = &form.next {
        fields.push(("next", n.as_str()));
    }
    let again = serde_urlencoded::to_string(&fields).expect("strings always encode");
    let reparsed: LoginForm = auth::form::parse_urlencoded(again.as_bytes()).expect("a re-encoded form decodes");
    assert_eq!(reparsed, form, "re-encoding changed the form ({again:?})");

    check_sign_in(&form.username, &form.password);
    check_new_password(&form.password, &form.username);
    check_next(form.next.as_deref());
});

/// What `Authenticator::login` checks before the database: accepted shapes obey the bounds, refused
/// ones are `InvalidInput`.
fn check_sign_in(username: &str, password: &str) {
    match auth::check_login_input(username, password) {
        Ok(()) => {
            assert!(!username.is_empty() && username.chars().count() <= MAX_USERNAME_CHARS);
            assert!(!username.chars().any(char::is_control) && username.trim() == username);
            assert!(!password.is_empty() && password.len() <= MAX_PASSWORD_BYTES && !password.contains('\0'));
        }
        Err(AuthError::InvalidInput(m)) => assert!(!m.is_empty()),
        Err(other) => panic!("shape check answered {other:?}"),
    }
}

/// The new-password policy: what it accepts is within its bounds, and can always be used to sign in.
fn check_new_password(password: &str, username: &str) {
    let policy = PasswordPolicy::ASVS;
    match policy.check(password, username) {
        Ok(()) => {
            let chars = password.chars().count();
            assert!((policy.min_chars..=policy.max_chars).contains(&chars), "{chars} characters accepted");
            assert!(password.len() <= MAX_PASSWORD_BYTES);
            assert!(!password.chars().any(char::is_control));
            assert!(!auth::policy::is_common_password(password));
            // Usernames are stored trimmed (sign-in refuses surrounding spaces), so the policy compares
            // with the trimmed name: "        )" is not the username ")" with nothing else.
            assert!(!password.eq_ignore_ascii_case(username.trim()) || username.trim().is_empty());
            // A password sign-up accepts must pass the sign-in checks too (given a valid username).
            auth::users::validate_password(password).expect("a policy-accepted password is refused at sign-in");
        }
        Err(AuthError::InvalidInput(m)) => assert!(!m.is_empty()),
        Err(other) => panic!("policy answered {other:?}"),
    }
}

/// `next` may only lead to a path on this site, and must be usable as a `Location` header (axum's
/// `Redirect::to` panics on an invalid header value).
fn check_next(next: Option<&str>) {
    let to = redirect::safe_next(next);
    if next != Some(to.as_str()) {
        assert_eq!(to, redirect::DEFAULT_AFTER_LOGIN);
    }
    assert!(to.starts_with('/') && !to.starts_with("//") && !to.contains('\\'));
    assert!(http::HeaderValue::from_str(&to).is_ok(), "{to:?} is not a valid Location header");
    // How a browser resolves the Location against the page: same scheme, host and port.
    let base = url::Url::parse("https://app.example:8443/login").unwrap();
    let resolved = base.join(&to).unwrap_or_else(|e| panic!("{to:?} does not resolve: {e}"));
    assert_eq!(
        (resolved.scheme(), resolved.host_str(), resolved.port()),
        ("https", Some("app.example"), Some(8443)),
        "{to:?} leaves the site: {resolved}"
    );
}
