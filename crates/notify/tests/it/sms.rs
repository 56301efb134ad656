//! SMS through a provider's HTTP API shaped like Twilio's (issue 20): the local sink plays the provider
//! (Basic auth, a form, `201` with a `sid`, `400` with Twilio's error codes for its test numbers), so a
//! real provider is a change of `notify.sms.*`. A refused number is a dead letter at once; a number that
//! is none is a 422 at enqueue; a simulation run's SMS stays in the process.

use crate::common::*;
use contract::Owner;
use notify::config::SmsConfig;
use notify::sink::{Sink, SinkConfig, DEV_SMS_AUTH_TOKEN};
use notify::*;
use serde_json::json;
use std::time::Duration;

const ADA: &str = "ada";

fn sms(to: &str, text: &str) -> NewNotification {
    NewNotification::new(Channel::Sms, to, json!({ "text": text }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_goes_through_the_providers_api_and_its_refusals_are_classified() {
    let sink = Sink::start("127.0.0.1:0".parse().unwrap(), SinkConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.sms = SmsConfig { url: sink.sms_url(), account_sid: "ACtest".into(), auth_token: DEV_SMS_AUTH_TOKEN.into(), from: "+15005550006".into() };
    let svc = service(cfg.clone()).await;

    let ids = svc
        .enqueue_for(Some(ADA), Backend::Embedded, vec![sms("+15551230001", "Your code is 123456"), sms("+15005550001", "to a bad number")])
        .await
        .unwrap();
    assert_eq!(settled(&svc, ids[0]).await.iter().map(|a| a.outcome).collect::<Vec<_>>(), [AttemptOutcome::Delivered]);
    let got = sink.sms();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].to.as_str(), got[0].from.as_str(), got[0].body.as_str()), ("+15551230001", "+15005550006", "Your code is 123456"));
    assert_eq!(got[0].account_sid, "ACtest");
    assert!(got[0].sid.starts_with("SM") && got[0].sid.len() == 34, "{}", got[0].sid);
    let refused = settled(&svc, ids[1]).await;
    assert_eq!(refused.len(), 1, "a refused number is not retried: {refused:?}");
    assert_eq!(refused[0].outcome, AttemptOutcome::DeadLettered);
    assert!(refused[0].error.as_deref().is_some_and(|e| e.starts_with("HTTP 400") && e.contains("21211")), "{refused:?}");

    // A number that is none never reaches the queue.
    let e = svc.enqueue_for(Some(ADA), Backend::Embedded, vec![sms("call me", "x")]).await.unwrap_err();
    let NotifyError::Invalid(fields) = e else { panic!("{e:?}") };
    assert_eq!(fields[0].field, "notifications[0].recipient");
    assert!(fields[0].message.contains("E.164"), "{fields:?}");

    // A run's SMS stays in the process: the provider sees none of its twenty.
    let p = SimParams { count: 20, rate: Rate::Max, mix: ChannelMix::only(Channel::Sms), ..SimParams::default() };
    let run = svc.start_run(&Owner::from(ADA), p).await.unwrap();
    wait_for("the run to complete", Duration::from_secs(15), || async {
        svc.run_snapshot(run).await.unwrap().is_some_and(|s| s.status == RunStatus::Completed)
    })
    .await;
    assert_eq!(sink.stats().sms_accepted, 1);
    svc.shutdown().await;

    // Wrong credentials: the provider's 401, a dead letter at once, the token never in the log.
    let dir = tempfile::tempdir().unwrap();
    let mut bad = config(&dir);
    bad.sms = SmsConfig { auth_token: "not-the-token".into(), ..cfg.sms.clone() };
    assert!(!format!("{:?}", bad.sms).contains("not-the-token"));
    let svc = service(bad).await;
    let id = svc.enqueue_for(Some(ADA), Backend::Embedded, vec![sms("+15551230002", "x")]).await.unwrap()[0];
    let a = settled(&svc, id).await;
    assert_eq!((a.len(), a[0].outcome), (1, AttemptOutcome::DeadLettered), "{a:?}");
    assert!(a[0].error.as_deref().is_some_and(|e| e.starts_with("HTTP 401") && e.contains("20003")), "{a:?}");
    assert_eq!(sink.stats().sms_refused, 2);
    svc.shutdown().await;
}
