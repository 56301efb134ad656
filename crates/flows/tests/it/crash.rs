//! Crash tests with real processes: SIGKILL a worker mid-run, start another, and check that the run
//! resumes where it stopped. Steps completed before the kill are never executed again; the step in
//! flight at the kill is executed again (at least once), its first attempt recorded as interrupted.

use crate::common;
use contract::Owner;

use flows::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CRASH: Owner = Owner::from_static("crash");

struct Worker(Child);

impl Worker {
    fn spawn(url: &str, log: &std::path::Path, extra: &[&str]) -> Worker {
        let child = Command::new(env!("CARGO_BIN_EXE_flows-crash-worker"))
            .args(["--db", url, "--log", log.to_str().unwrap()])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn flows-crash-worker");
        Worker(child)
    }

    fn first_line(&mut self) -> String {
        let mut line = String::new();
        BufReader::new(self.0.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        line.trim().to_string()
    }

    fn sigkill(&mut self) {
        // Child::kill is SIGKILL on Unix: no destructor, no shutdown, no lease release.
        self.0.kill().expect("SIGKILL");
        let _ = self.0.wait();
    }

    fn wait_output(mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                assert!(s.success(), "worker exited with {s}");
                let mut out = String::new();
                std::io::Read::read_to_string(self.0.stdout.as_mut().unwrap(), &mut out).unwrap();
                return out;
            }
            assert!(Instant::now() < deadline, "worker did not finish within {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn log_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(String::from).collect()
}

fn counts(lines: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for l in lines {
        *m.entry(l.clone()).or_insert(0) += 1;
    }
    m
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_a_slow_host_call_the_run_resumes_after_restart_and_completes() {
    for db in db::testing::engines().await {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls.log");
        let mut first = Worker::spawn(&db.url, &log, &["--instance", "first", "--start", "slow", "--slow-ms", "60000"]);
        let started = first.first_line();
        let id = started.strip_prefix("started ").unwrap_or_else(|| panic!("{started}")).to_string();
        let log_ref = &log;
        tokio::task::block_in_place(|| {
            wait_until("the slow step to start", Duration::from_secs(30), || log_lines(log_ref).contains(&"slow 1 start".to_string()))
        });
        first.sigkill();
        assert_eq!(log_lines(&log), ["one 1 start", "one 1 done", "two 1 start", "two 1 done", "slow 1 start"], "killed mid-call");

        let second = Worker::spawn(&db.url, &log, &["--instance", "second", "--until", &id]);
        let out = tokio::task::block_in_place(|| second.wait_output(Duration::from_secs(60)));
        assert!(out.contains(&format!("run {id} completed")), "{out}");

        let lines = log_lines(&log);
        let c = counts(&lines);
        for done_once in ["one 1 start", "one 1 done", "two 1 start", "two 1 done", "four 1 start", "four 1 done"] {
            assert_eq!(c.get(done_once), Some(&1), "{done_once} exactly once: {lines:?}");
        }
        assert_eq!(lines.iter().filter(|l| l.starts_with("one ") || l.starts_with("two ")).count(), 4, "no step completed before the kill ran again");
        assert_eq!(c.get("slow 1 done"), None, "the first attempt died with its process");
        assert_eq!((c.get("slow 2 start"), c.get("slow 2 done")), (Some(&1), Some(&1)), "the step in flight ran again: {lines:?}");

        let store = common::store(&db).await;
        let t = store.timeline(&CRASH, &id).await.unwrap();
        let slow = t.entries.iter().find(|e| e.step_name == "slow").unwrap();
        let got: Vec<(AttemptOutcome, Option<&str>)> = slow.attempts.iter().map(|a| (a.outcome, a.worker.as_deref())).collect();
        assert_eq!(got, [(AttemptOutcome::Interrupted, Some("first")), (AttemptOutcome::Succeeded, Some("second"))]);
        assert_eq!(slow.attempts[0].error_code.as_deref(), Some("interrupted"));
        let workers: Vec<Option<&str>> = t.entries.iter().map(|e| e.attempts[0].worker.as_deref()).collect();
        assert_eq!(workers, [Some("first"), Some("first"), Some("first"), Some("second")]);
        eprintln!("{}: resumed and completed after SIGKILL", db.engine.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_a_delay_the_timer_survives_and_is_not_restarted() {
    for db in db::testing::engines().await {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls.log");
        let store = common::store(&db).await;
        let mut first = Worker::spawn(&db.url, &log, &["--instance", "first", "--start", "delay"]);
        let started = first.first_line();
        let id = started.strip_prefix("started ").unwrap().to_string();
        common::wait_for("the delay to be recorded", Duration::from_secs(30), || async {
            let r = store.get_run(&CRASH, &id).await.unwrap();
            r.current_step == 1 && r.wake_at_ms.is_some_and(|w| w > r.created_at_ms + 1000)
        })
        .await;
        let wake_at = store.get_run(&CRASH, &id).await.unwrap().wake_at_ms.unwrap();
        first.sigkill();

        let second = Worker::spawn(&db.url, &log, &["--instance", "second", "--until", &id]);
        let out = tokio::task::block_in_place(|| second.wait_output(Duration::from_secs(60)));
        assert!(out.contains(&format!("run {id} completed")), "{out}");
        assert_eq!(log_lines(&log), ["one 1 start", "one 1 done", "two 1 start", "two 1 done"]);
        let t = store.timeline(&CRASH, &id).await.unwrap();
        let pause = &t.entries[1];
        assert_eq!(pause.step_name, "pause");
        assert_eq!(pause.attempts.len(), 1, "the delay was not started again: {pause:?}");
        let a = &pause.attempts[0];
        assert_eq!((a.outcome, a.worker.as_deref()), (AttemptOutcome::Succeeded, Some("first")), "the attempt row is the first worker's");
        assert!(a.finished_at_ms.unwrap() >= wake_at, "not woken early");
        // Restarting the 1.5 s delay when the second worker claims the run (after the 1 s lease) would
        // end it about 1 s past the original timer.
        let run = store.get_run(&CRASH, &id).await.unwrap();
        assert!(run.finished_at_ms.unwrap() < wake_at + 800, "finished {} ms after the original timer", run.finished_at_ms.unwrap() - wake_at);
    }
}
