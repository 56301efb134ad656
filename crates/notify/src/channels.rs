//! Delivery to each channel: a real signed webhook POST over a pooled keep-alive client, simulated
//! email/SMS/push providers (they only wait and fail as told — no message leaves the machine), and a
//! no-op channel that measures the pipeline itself.

use std::time::Duration;

use crate::config::WebhookConfig;
use crate::error::NotifyError;
use crate::model::{Channel, Job};
use crate::signature::{SigningKey, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};

pub(crate) struct Deliverer {
    http: reqwest::Client,
    webhook_url: String,
    key: SigningKey,
}

impl Deliverer {
    pub fn new(cfg: &WebhookConfig) -> Result<Self, NotifyError> {
        let key = SigningKey::from_secret(&cfg.secret)
            .map_err(|_| NotifyError::invalid("notify.webhook.secret", "must be whsec_ followed by base64"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms.max(1)))
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(cfg.pool_max_idle)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none()) // a redirect is a failure (Standard Webhooks)
            .build()
            .map_err(|e| NotifyError::internal("cannot build HTTP client", e))?;
        Ok(Self { http, webhook_url: cfg.url.clone(), key })
    }

    /// One attempt. The error string is short and safe to store in the attempt history.
    pub async fn deliver(&self, job: &Job) -> Result<(), String> {
        match job.channel {
            Channel::Noop => Ok(()),
            Channel::Webhook => self.deliver_webhook(job).await,
            Channel::Email | Channel::Sms | Channel::Push => simulate_provider(job).await,
        }
    }

    async fn deliver_webhook(&self, job: &Job) -> Result<(), String> {
        let id = job.id.to_string();
        let body = webhook_body(job);
        let ts = (crate::model::now_ms() / 1000).to_string();
        let signature = self.key.sign(&id, ts.parse().unwrap_or(0), body.as_bytes());
        let res = self
            .http
            .post(&self.webhook_url)
            .header(HEADER_ID, &id)
            .header(HEADER_TIMESTAMP, ts)
            .header(HEADER_SIGNATURE, signature)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| if e.is_timeout() { "timed out".to_string() } else if e.is_connect() { "connection failed".to_string() } else { "request failed".to_string() })?;
        let status = res.status();
        // Read the (small) body so the connection goes back to the pool.
        let _ = res.bytes().await;
        if status.is_success() { Ok(()) } else { Err(format!("HTTP {}", status.as_u16())) }
    }
}

/// The webhook body: the payload as `data`, with the id, channel and recipient alongside.
pub(crate) fn webhook_body(job: &Job) -> String {
    let recipient = serde_json::to_string(&job.recipient).unwrap_or_else(|_| "\"\"".into());
    format!(
        r#"{{"type":"notification.{}","id":"{}","recipient":{},"data":{}}}"#,
        job.channel, job.id, recipient, job.payload
    )
}

/// A stand-in for a third-party provider: waits `latency_ms`, fails with probability `failure_rate`.
async fn simulate_provider(job: &Job) -> Result<(), String> {
    if job.sim.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(job.sim.latency_ms as u64)).await;
    }
    if job.sim.failure_rate > 0.0 && rand::random::<f32>() < job.sim.failure_rate {
        return Err(format!("simulated {} provider failure", job.channel));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NotificationId, SimKnobs};

    fn job(channel: Channel, sim: SimKnobs) -> Job {
        Job {
            id: NotificationId::embedded(7),
            run: None,
            channel,
            recipient: "a\"b@example.test".into(),
            payload: r#"{"x":1}"#.into(),
            attempts: 0,
            created_ms: 0,
            sim,
            receipt: String::new(),
        }
    }

    #[test]
    fn the_webhook_body_is_valid_json_with_the_id() {
        let body = webhook_body(&job(Channel::Webhook, SimKnobs::default()));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["id"], "emb_7");
        assert_eq!(v["recipient"], "a\"b@example.test");
        assert_eq!(v["data"]["x"], 1);
    }

    #[tokio::test]
    async fn simulated_providers_fail_as_often_as_told() {
        let always = job(Channel::Sms, SimKnobs { failure_rate: 1.0, latency_ms: 0 });
        assert_eq!(simulate_provider(&always).await.unwrap_err(), "simulated sms provider failure");
        let never = job(Channel::Email, SimKnobs { failure_rate: 0.0, latency_ms: 1 });
        assert!(simulate_provider(&never).await.is_ok());
        let mut fails = 0;
        for _ in 0..2000 {
            if simulate_provider(&job(Channel::Push, SimKnobs { failure_rate: 0.3, latency_ms: 0 })).await.is_err() {
                fails += 1;
            }
        }
        assert!((450..750).contains(&fails), "{fails}");
    }
}
