//! Real e-mail (issue 20): notifications outside simulation runs go over SMTP to a real server on
//! loopback (`scripts/smtp_capture.py`, aiosmtpd, keeping a Maildir) and are read back and parsed; 4xx
//! answers and lost connections are retried, 5xx answers are dead letters at once; a run's e-mail
//! stays simulated; users may write only to allowed addresses, so many a day.

use crate::common::*;
use contract::Owner;
use mail_parser::MessageParser;
use notify::*;
use serde_json::json;
use std::time::Duration;
use testkit::Smtp;

const ADA: &str = "ada";

fn smtp_config(dir: &tempfile::TempDir, smtp: &Smtp) -> PipelineConfig {
    let mut c = config(dir);
    c.email = EmailConfig {
        host: smtp.addr.ip().to_string(),
        port: smtp.addr.port(),
        tls: SmtpTls::None,
        from: "Implementation-Eng <notify@mail.example.org>".into(),
        retry: WebhookRetry::every(50, 3),
        ..EmailConfig::default()
    };
    c
}

fn mail(to: &str, payload: serde_json::Value) -> NewNotification {
    NewNotification::new(Channel::Email, to, payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_mail_outside_runs_arrives_over_smtp_with_both_bodies_and_its_ids_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(dir.path());
    let redis = Redis::start();
    let mut cfg = smtp_config(&dir, &smtp);
    cfg.redis_url = Some(redis.url.clone());
    let svc = service(cfg).await;
    let payload = json!({"subject": "Your invoice", "text": "Total: <b>42</b> & more\n\nThank you"});
    let mut ids = vec![];
    for (i, backend) in [Backend::Embedded, Backend::Redis].into_iter().enumerate() {
        ids.extend(svc.enqueue_for(Some(ADA), backend, vec![mail(&format!("ada{i}@example.com"), payload.clone())]).await.unwrap());
    }
    wait_for("two messages at the SMTP server", Duration::from_secs(15), || async { smtp.messages().len() == 2 }).await;
    let raw = smtp.messages();
    for (i, id) in ids.iter().enumerate() {
        let m = raw
            .iter()
            .map(|r| MessageParser::default().parse(r).expect("a parseable message"))
            .find(|m| m.header_raw("X-Notification-Id").map(str::trim) == Some(&id.to_string()))
            .unwrap_or_else(|| panic!("no message carries {id}"));
        assert_eq!(m.subject(), Some("Your invoice"));
        assert_eq!(m.from().and_then(|a| a.first()).and_then(|a| a.address()), Some("notify@mail.example.org"));
        assert_eq!(m.to().and_then(|a| a.first()).and_then(|a| a.address()), Some(format!("ada{i}@example.com").as_str()));
        assert_eq!(m.header_raw("X-Envelope-To").map(str::trim), Some(format!("ada{i}@example.com").as_str()), "the envelope too");
        assert_eq!(m.message_id(), Some(format!("{id}@mail.example.org").as_str()), "the Message-ID is the notification's");
        let text = m.body_text(0).expect("a plain-text part");
        assert!(text.contains("Total: <b>42</b> & more") && text.contains(&id.to_string()), "{text}");
        let html = m.body_html(0).expect("an HTML part");
        assert!(html.contains("Total: &lt;b&gt;42&lt;/b&gt; &amp; more") && !html.contains("<b>42"), "{html}");
        let attempts = settled(&svc, *id).await;
        assert_eq!(attempts.iter().map(|a| a.outcome).collect::<Vec<_>>(), [AttemptOutcome::Delivered]);
    }
    let m = svc.metrics_text();
    assert!(m.contains("notify_delivered_total{channel=\"email\"} 2"), "{m}");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_answer_or_no_server_is_retried_and_a_5xx_answer_is_a_dead_letter_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(dir.path());
    let svc = service(smtp_config(&dir, &smtp)).await;
    let ids = svc
        .enqueue_for(Some(ADA), Backend::Embedded, vec![mail("defer-1@example.com", json!({})), mail("reject-1@example.com", json!({}))])
        .await
        .unwrap();
    let deferred = settled(&svc, ids[0]).await;
    assert_eq!(
        deferred.iter().map(|a| a.outcome).collect::<Vec<_>>(),
        [AttemptOutcome::Retrying, AttemptOutcome::Retrying, AttemptOutcome::DeadLettered],
        "451 is tried on the schedule (three attempts here): {deferred:?}"
    );
    assert!(deferred.iter().all(|a| a.error.as_deref().is_some_and(|e| e.starts_with("SMTP 451"))), "{deferred:?}");
    let rejected = settled(&svc, ids[1]).await;
    assert_eq!(rejected.len(), 1, "550 is permanent: no retry ({rejected:?})");
    assert_eq!(rejected[0].outcome, AttemptOutcome::DeadLettered);
    let error = rejected[0].error.clone().unwrap_or_default();
    assert!(error.starts_with("SMTP 550") && error.contains("no such user"), "the server's own words are kept: {error}");
    let dead = svc.dead_letters_of(Some(ADA), 10).await.unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(smtp.messages().is_empty(), "nothing was accepted");
    svc.shutdown().await;

    // No server listening: a connection failure, retried.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = smtp_config(&dir, &smtp);
    cfg.email.port = free_port();
    cfg.email.retry = WebhookRetry::every(60_000, 3);
    let svc = service(cfg).await;
    let id = svc.enqueue_for(Some(ADA), Backend::Embedded, vec![mail("ada@example.com", json!({}))]).await.unwrap()[0];
    wait_for("a first attempt", Duration::from_secs(15), || async { !svc.attempts(id).await.unwrap_or_default().is_empty() }).await;
    let first = svc.attempts(id).await.unwrap();
    assert_eq!(first[0].outcome, AttemptOutcome::Retrying, "{first:?}");
    assert!(first[0].error.as_deref().is_some_and(|e| e.starts_with("SMTP connection failed")), "{first:?}");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulation_runs_e_mail_stays_simulated() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(dir.path());
    let svc = service(smtp_config(&dir, &smtp)).await;
    let p = SimParams { count: 20, rate: Rate::Max, mix: ChannelMix::only(Channel::Email), ..SimParams::default() };
    let run = svc.start_run(&Owner::from(ADA), p).await.unwrap();
    wait_for("the run to complete", Duration::from_secs(15), || async {
        svc.run_snapshot(run).await.unwrap().is_some_and(|s| s.status == RunStatus::Completed)
    })
    .await;
    assert_eq!(svc.run_snapshot(run).await.unwrap().unwrap().delivered, 20);
    // One real message afterwards, so "nothing arrived" is not just "not yet".
    svc.enqueue_for(Some(ADA), Backend::Embedded, vec![mail("ada@example.com", json!({"subject": "after the run"}))]).await.unwrap();
    wait_for("the one real message", Duration::from_secs(15), || async { !smtp.messages().is_empty() }).await;
    let all = smtp.messages();
    assert_eq!(all.len(), 1, "the run's 20 e-mails never reached the SMTP server");
    assert_eq!(MessageParser::default().parse(&all[0]).unwrap().subject(), Some("after the run"));
    svc.shutdown().await;
}

fn field_messages(e: NotifyError) -> Vec<String> {
    match e {
        NotifyError::Invalid(fields) => fields.into_iter().map(|f| format!("{}: {}", f.field, f.message)).collect(),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_write_only_to_allowed_addresses_and_so_many_a_day() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(dir.path());
    let mut cfg = smtp_config(&dir, &smtp);
    cfg.email.allow_recipients = Some(vec!["@example.com".into(), "ops@example.org".into()]);
    cfg.quotas.emails_per_day = 3;
    let svc = service(cfg).await;
    let e =
        svc.enqueue_for(Some(ADA), Backend::Embedded, vec![mail("not an address", json!({})), mail("x@example.net", json!({}))]).await.unwrap_err();
    assert_eq!(
        field_messages(e),
        [
            "notifications[0].recipient: is not an e-mail address",
            "notifications[1].recipient: this server sends e-mail only to addresses its operator allows (notify.email.allow_recipients)"
        ]
    );
    // SMS is not e-mail: its recipient is not held to the list, nor counted as e-mail.
    svc.enqueue_for(Some(ADA), Backend::Embedded, vec![NewNotification::new(Channel::Sms, "+15550100", json!({}))]).await.unwrap();
    svc.enqueue_for(Some(ADA), Backend::Embedded, vec![mail("a@example.com", json!({})), mail("ops@example.org", json!({}))]).await.unwrap();
    let e =
        svc.enqueue_for(Some(ADA), Backend::Embedded, vec![mail("b@example.com", json!({})), mail("c@example.com", json!({}))]).await.unwrap_err();
    match e {
        NotifyError::QuotaExceeded { message, .. } => assert!(message.contains("at most 3 e-mails a day and have 1 left"), "{message}"),
        other => panic!("{other:?}"),
    }
    // The refused batch counted nothing: the last one still fits; another user has a day of their own.
    svc.enqueue_for(Some(ADA), Backend::Embedded, vec![mail("b@example.com", json!({}))]).await.unwrap();
    svc.enqueue_for(Some("bob"), Backend::Embedded, vec![mail("b@example.com", json!({}))]).await.unwrap();
    // The operator (no owner) is held to neither.
    svc.enqueue_for(None, Backend::Embedded, vec![mail("anyone@example.net", json!({}))]).await.unwrap();
    wait_for("five messages", Duration::from_secs(15), || async { smtp.messages().len() == 5 }).await;
    svc.shutdown().await;

    // No SMTP server set up and simulation off (production): e-mail is refused with a reason.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.email.simulate_when_unset = Some(false);
    let svc = service(cfg).await;
    let e = svc.enqueue_for(Some(ADA), Backend::Embedded, vec![mail("a@example.com", json!({}))]).await.unwrap_err();
    assert_eq!(field_messages(e), ["notifications[0].channel: e-mail is not set up on this server (notify.email.host)"]);
    svc.shutdown().await;
}

/// A self-signed certificate for `localhost` (Debian's openssl, as the test stacks make theirs).
fn localhost_certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("smtp.crt"), dir.join("smtp.key"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"])
        // A server's own certificate, not a CA's (webpki refuses a CA certificate as the server's).
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (scripts/setup.sh installs it)");
    assert!(made.success());
    (cert, key)
}

/// STARTTLS is required and the server's certificate checked: trusted through `ca_file` the message is
/// delivered; an untrusted certificate, or a server that offers no STARTTLS, is a failure that is
/// retried, and nothing is ever sent in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_is_required_and_the_servers_certificate_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = localhost_certificate(dir.path());
    let smtp = Smtp::start_with(dir.path(), &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    let tls_config = |dir: &tempfile::TempDir, ca_file: &str| {
        let mut c = smtp_config(dir, &smtp);
        c.email.host = "localhost".into();
        c.email.tls = SmtpTls::Starttls;
        c.email.ca_file = ca_file.into();
        c.email.retry = WebhookRetry::every(60_000, 3);
        c
    };
    let first_attempt = |svc: NotifyService, id: NotificationId| async move {
        wait_for("a first attempt", Duration::from_secs(15), || async { !svc.attempts(id).await.unwrap_or_default().is_empty() }).await;
        let a = svc.attempts(id).await.unwrap();
        svc.shutdown().await;
        a
    };

    let trusted = tempfile::tempdir().unwrap();
    let svc = service(tls_config(&trusted, cert.to_str().unwrap())).await;
    let id = svc.enqueue_for(Some(ADA), Backend::Embedded, vec![mail("ada@example.com", json!({"subject": "over TLS"}))]).await.unwrap()[0];
    let a = first_attempt(svc, id).await;
    assert_eq!(a[0].outcome, AttemptOutcome::Delivered, "{a:?}");
    assert_eq!(smtp.messages().len(), 1);

    let untrusted = tempfile::tempdir().unwrap();
    let svc = service(tls_config(&untrusted, "")).await;
    let id = svc.enqueue_for(Some(ADA), Backend::Embedded, vec![mail("ada@example.com", json!({}))]).await.unwrap()[0];
    let a = first_attempt(svc, id).await;
    assert_eq!(a[0].outcome, AttemptOutcome::Retrying, "{a:?}");
    assert!(a[0].error.as_deref().is_some_and(|e| e.contains("invalid peer certificate")), "the certificate is checked: {a:?}");

    // A server that offers no STARTTLS (the plain capture): refused, not sent in clear.
    let plain = Smtp::start(&dir.path().join("plain"));
    let no_tls = tempfile::tempdir().unwrap();
    let mut c = smtp_config(&no_tls, &plain);
    c.email.tls = SmtpTls::Starttls;
    c.email.retry = WebhookRetry::every(60_000, 3);
    let svc = service(c).await;
    let id = svc.enqueue_for(Some(ADA), Backend::Embedded, vec![mail("ada@example.com", json!({}))]).await.unwrap()[0];
    let a = first_attempt(svc, id).await;
    assert_eq!(a[0].outcome, AttemptOutcome::Retrying, "{a:?}");
    assert!(a[0].error.as_deref().is_some_and(|e| e.contains("STARTTLS")), "{a:?}");
    assert!(plain.messages().is_empty(), "nothing was sent in clear");
    assert_eq!(smtp.messages().len(), 1);
}
