//! The `user create` subcommand against a real database file, as an admin would run it.

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
