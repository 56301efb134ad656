//! The `user create` subcommand against a real database file, as an admin would run it, and `serve`
//! refusing to start in production without the key that seals webhook secrets.

use std::io::Write;
use std::process::{Command, Stdio};

#[tokio::test]
async fn user_create_reads_the_password_from_stdin_and_never_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["user", "create", "opal", "--password-stdin"])
        .env("APP_DATABASE_URL", &db)
        .env("LEPTOS_OUTPUT_NAME", "implementation-eng")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"opal-secret-pass\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{all}");
    assert!(all.contains("created user opal"), "{all}");
    assert!(!all.contains("opal-secret-pass"), "password leaked: {all}");

    let pool = auth::db::connect(&db).await.unwrap();
    let users = auth::UserStore::new(pool);
    let user = users.find_by_username("opal").await.unwrap().unwrap();
    assert!(user.password_hash.starts_with("$argon2id$"));
    assert!(!user.password_hash.contains("opal-secret-pass"));

    // A second account with the same name is refused with a clear message.
    let mut again = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["user", "create", "OPAL", "--password-stdin"])
        .env("APP_DATABASE_URL", &db)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    again.stdin.take().unwrap().write_all(b"whatever-pass\n").unwrap();
    let out = again.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already taken"));
}

/// Runs `server <cmd>` with `env` and returns its exit status and stderr; a process still running after
/// 30 s (it started serving) is killed and fails the test.
fn run_briefly(cmd: &str, env: &[(&str, String)]) -> (std::process::ExitStatus, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_server"));
    c.arg(cmd)
        .env_remove("APP_HOOKS__SECRET_KEYS")
        .env_remove("APP_NOTIFY__WEBHOOK__SECRET")
        .env("LEPTOS_OUTPUT_NAME", "implementation-eng")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("`server {cmd}` kept running");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

#[test]
fn production_will_not_serve_without_a_sealing_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = ("APP_DATABASE_URL", format!("sqlite://{}", dir.path().join("app.db").display()));
    let production = ("APP_MODE", "production".to_string());
    for cmd in ["serve", "worker"] {
        let (status, stderr) = run_briefly(cmd, &[production.clone(), db.clone(), ("APP_NOTIFY__REDIS_URL", "redis://127.0.0.1:1".into())]);
        assert!(!status.success(), "{cmd} started: {stderr}");
        assert!(stderr.contains("APP_HOOKS__SECRET_KEYS") && stderr.contains("openssl rand -base64 32"), "{cmd}: {stderr}");
    }
    let own_secret = ("APP_NOTIFY__WEBHOOK__SECRET", "whsec_dGhpcyBvbmUgaXMgb3VyIG93biBzZWNyZXQgMTIzNA==".to_string());
    let (status, stderr) = run_briefly(
        "serve",
        &[production, db, own_secret, ("APP_HOOKS__SECRET_KEYS", "not-a-key".into()), ("LEPTOS_SITE_ADDR", "127.0.0.1:0".into())],
    );
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("hooks.secret_keys[0]"), "a bad key is named: {stderr}");
}

#[test]
fn production_will_not_serve_with_the_public_example_webhook_secret() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("APP_MODE", "production".to_string()),
        ("APP_DATABASE_URL", format!("sqlite://{}", dir.path().join("app.db").display())),
        ("APP_HOOKS__SECRET_KEYS", server::config::DEV_SECRET_KEY.to_string()),
        ("LEPTOS_SITE_ADDR", "127.0.0.1:0".into()),
    ];
    // Unset, the signing secret is the Standard Webhooks spec's example; set to it explicitly, the same.
    for secret in [None, Some(notify::config::DEV_WEBHOOK_SECRET)] {
        let mut env = env.to_vec();
        env.extend(secret.map(|s| ("APP_NOTIFY__WEBHOOK__SECRET", s.to_string())));
        for cmd in ["serve", "worker"] {
            let (status, stderr) = run_briefly(cmd, &env);
            assert!(!status.success(), "{cmd} started: {stderr}");
            assert!(stderr.contains("APP_NOTIFY__WEBHOOK__SECRET") && stderr.contains("public example"), "{cmd}: {stderr}");
        }
    }
}

#[test]
fn retention_prints_storage_per_store_and_prunes_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_server"))
            .args(args)
            .env("APP_DATABASE_URL", &db)
            .env("LEPTOS_OUTPUT_NAME", "implementation-eng")
            .env("APP_MODE", "dev")
            .output()
            .unwrap();
        let text = (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string());
        assert!(out.status.success(), "{text:?}");
        text
    };
    let (table, _) = run(&["retention"]);
    assert!(table.starts_with("store "), "{table}");
    for store in ["notifications_delivered", "webhook_messages", "sessions", "file queue"] {
        assert!(table.contains(store), "{store} in {table}");
    }
    let (json, log) = run(&["retention", "--prune", "--json"]);
    let report: contract::ops::StorageReport = serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {json} {log}"));
    assert_eq!(report.stores.iter().find(|s| s.name == "api_tokens").unwrap().keep_secs, 30 * 86_400);
    assert!(report.stores.iter().all(|s| s.bytes.is_some()), "every embedded store knows its bytes: {report:?}");
}
