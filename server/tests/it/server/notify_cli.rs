//! The notification subcommands as an operator runs them: `simulate` (bad flags refused by name; a
//! small run to completion with a summary) and `sink` (verifies signatures and counts per id).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn server(args: &[&str], dir: &tempfile::TempDir) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_server"));
    c.args(args)
        .env("APP_DATABASE_URL", format!("sqlite://{}", dir.path().join("app.db").display()))
        .env("RUST_LOG", "warn")
        // Production mode (the default) seals webhook secrets and will not start a worker without a key.
        .env("APP_HOOKS__SECRET_KEYS", server::config::DEV_SECRET_KEY)
        .env("APP_NOTIFY__WEBHOOK__SECRET", crate::common::TEST_WEBHOOK_SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

#[test]
fn simulate_refuses_bad_parameters_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (vec!["--count", "0"], "--count: must be at least 1"),
        (vec!["--count", "-5"], "--count"),
        (vec!["--rate", "0-per-hour"], "--rate: must be more than 0"),
        (vec!["--rate", "fast"], "--rate"),
        (vec!["--mix", "fax=1"], "--mix: fax: unknown channel"),
        (vec!["--mix", "email=0"], "--mix: choose at least one channel"),
        (vec!["--failure-rate", "1.5"], "--failure-rate: must be between 0 and 1"),
        (vec!["--latency-ms", "600000"], "--latency-ms: at most 60000"),
        (vec!["--backend", "kafka"], "--backend: unknown backend"),
        (vec!["--count", "99999999999"], "--count: at most 10000000"),
    ] {
        let mut all = vec!["simulate"];
        all.extend(args.iter().copied());
        let out = server(&all, &dir).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn simulate_runs_to_completion_and_prints_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = server(&["simulate", "--count", "500", "--rate", "max", "--mix", "noop=1,email=1", "--failure-rate", "0.2"], &dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("run 1 completed: 500 produced"), "{stdout}");
    assert!(stdout.contains("attempt latency p50/p95/p99"), "{stdout}");
    assert!(stdout.contains("retried"), "{stdout}");
    assert!(dir.path().join("notify-simulate.db").exists(), "the CLI keeps its own queue file");
}

#[test]
fn the_sink_counts_signed_deliveries_and_refuses_bad_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let mut sink = server(&["sink", "--addr", &addr, "--secret", crate::common::TEST_WEBHOOK_SECRET], &dir).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "sink did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = server(&["simulate", "--count", "50", "--rate", "max", "--mix", "webhook=1", "--webhook-url", &format!("http://{addr}/webhook")], &dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (stats, unsigned) = rt.block_on(async {
        let client = reqwest::Client::new();
        let unsigned = client.post(format!("http://{addr}/webhook")).body("{}").send().await.unwrap().status();
        let stats: serde_json::Value = client.get(format!("http://{addr}/stats")).send().await.unwrap().json().await.unwrap();
        (stats, unsigned)
    });
    assert_eq!(unsigned.as_u16(), 401);
    assert_eq!(stats["unique_ids"], 50, "{stats}");
    assert_eq!(stats["duplicates"], 0, "{stats}");
    assert_eq!(stats["bad_signature"], 1, "{stats}");
    let _ = sink.kill();
    let _ = sink.wait();
}

/// The scale-out story as two commands: `simulate --backend redis --no-local-workers` only produces,
/// and a separate `server worker --redis URL` process delivers everything (here on one machine, over
/// a real redis-server on a free loopback port).
#[test]
fn a_worker_process_delivers_what_another_process_produces_on_redis() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::common::free_port();
    let mut redis = crate::common::Redis::start_on(port);
    let url = format!("redis://127.0.0.1:{port}");
    let mut worker = server(&["worker", "--redis", &url], &dir).spawn().unwrap();
    let mut simulate = server(
        &["simulate", "--count", "2000", "--rate", "max", "--mix", "noop=1,email=1", "--backend", "redis", "--redis", &url, "--no-local-workers"],
        &dir,
    )
    .spawn()
    .unwrap();
    // Without a working worker the producer would wait forever: fail instead of hanging.
    let deadline = Instant::now() + Duration::from_secs(60);
    while simulate.try_wait().unwrap().is_none() {
        if let Some(status) = worker.try_wait().unwrap() {
            let _ = simulate.kill();
            redis.stop();
            let mut err = String::new();
            std::io::Read::read_to_string(&mut worker.stderr.take().unwrap(), &mut err).unwrap();
            panic!("the worker exited ({status}): {err}");
        }
        if Instant::now() > deadline {
            let _ = simulate.kill();
            let _ = worker.kill();
            redis.stop();
            panic!("nothing delivered the run within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = simulate.wait_with_output().unwrap();
    let _ = worker.kill();
    let _ = worker.wait();
    redis.stop();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("completed: 2000 produced"), "{stdout}");
    assert!(stdout.contains("2000 delivered"), "{stdout}");
}
