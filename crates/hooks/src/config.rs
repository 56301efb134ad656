//! Everything the webhooks can be tuned with, and its defaults. The server fills this from its
//! `hooks.*` settings; nothing here reads the environment.

use serde::Deserialize;
use std::collections::HashMap;

/// A secret from config. Its Debug output never shows it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HooksConfig {
    /// Networks (CIDR or bare address) that endpoint URLs may point at although they are not public,
    /// e.g. `["127.0.0.1/32"]` for tests. Empty: public addresses only. A comma-separated string is
    /// accepted too (an environment variable).
    #[serde(deserialize_with = "one_or_many")]
    pub allow_networks: Vec<String>,
    /// How long the previous secret keeps signing (beside the new one) after a rotation.
    pub rotation_overlap_secs: u64,
    pub auto_disable: AutoDisable,
    pub max_endpoints_per_owner: u32,
    /// Webhook requests one owner may cause per second on this instance, by emitting events, test
    /// events and replays (each endpoint a message goes to counts once), with a burst of ten seconds'
    /// worth (at least one event to every endpoint): our deliveries must not become a way to flood
    /// someone else's server. Beyond it: 429 with `Retry-After`. 0: no limit. `notification.*` events
    /// are not counted here: the notifications behind them already are (`notify.quotas`).
    pub outbound_per_sec: u32,
    /// Which notification queue carries deliveries.
    pub backend: notify::Backend,
    pub inbound: InboundConfig,
    /// Keys (32 bytes, base64) that seal endpoint secrets at rest (see `sealing`): the first seals, all
    /// open. A comma-separated string is accepted too. Empty: secrets are stored as they are.
    #[serde(deserialize_with = "one_or_many_secrets")]
    pub secret_keys: Vec<Secret>,
}

impl Default for HooksConfig {
    fn default() -> Self {
        Self {
            allow_networks: vec![],
            rotation_overlap_secs: 24 * 3600,
            auto_disable: AutoDisable::default(),
            max_endpoints_per_owner: 50,
            outbound_per_sec: 50,
            backend: notify::Backend::Embedded,
            inbound: InboundConfig::default(),
            secret_keys: vec![],
        }
    }
}

/// When an endpoint that keeps failing is disabled: after `after_failed_messages` messages in a row
/// were dead-lettered (each after the pipeline's full retry schedule, about 27 hours) *and* the endpoint
/// has been failing for at least `min_failing_secs` (since its first failed attempt after the last
/// success; 5 days, as Svix does). Any successful delivery resets both. `after_failed_messages = 0`
/// never disables. A receiver answering 410 Gone is disabled at once, whatever this says.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AutoDisable {
    pub after_failed_messages: u32,
    pub min_failing_secs: u64,
}

impl Default for AutoDisable {
    fn default() -> Self {
        Self { after_failed_messages: 5, min_failing_secs: 5 * 86_400 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct InboundConfig {
    /// How far `webhook-timestamp` may be from now, either way.
    pub tolerance_secs: u64,
    /// Largest accepted body.
    pub max_body_bytes: usize,
    /// By the `{source}` of `/api/v1/inbound/{source}`.
    pub sources: HashMap<String, InboundSource>,
}

impl Default for InboundConfig {
    fn default() -> Self {
        Self { tolerance_secs: notify::signature::DEFAULT_TOLERANCE_SECS, max_body_bytes: 256 * 1024, sources: HashMap::new() }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct InboundSource {
    /// `whsec_` secrets shared with the sender; a signature by any of them is accepted (list two while
    /// the sender rotates). A comma-separated string is accepted too (an environment variable).
    #[serde(deserialize_with = "one_or_many_secrets")]
    pub secrets: Vec<Secret>,
    /// The workflow an accepted webhook triggers (passed through to the caller as `InboundEvent::workflow`).
    pub workflow: Option<String>,
    /// The username the source belongs to: only their workflow runs may wait on it and receive its
    /// messages. Unset: the user named in `workflow` (`<username>/<name>`); neither: nobody's.
    pub owner: Option<String>,
    /// What a workflow run this source starts may do (API scope names; a comma-separated string is
    /// accepted too). Empty: `workflows:write` only.
    #[serde(deserialize_with = "one_or_many")]
    pub scopes: Vec<String>,
}

/// A list, or one comma-separated string (how an environment variable arrives).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect(),
        OneOrMany::Many(v) => v,
    })
}

fn one_or_many_secrets<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Secret>, D::Error> {
    Ok(one_or_many(d)?.into_iter().map(Secret).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_arrive_as_lists_or_comma_separated_strings() {
        let c: HooksConfig = serde_json::from_value(serde_json::json!({
            "allow_networks": "127.0.0.1/32, ::1/128",
            "inbound": { "sources": { "crm": { "secrets": "whsec_a,whsec_b" } } }
        }))
        .unwrap();
        assert_eq!(c.allow_networks, vec!["127.0.0.1/32", "::1/128"]);
        let crm = &c.inbound.sources["crm"];
        assert_eq!(crm.secrets.iter().map(|s| s.expose()).collect::<Vec<_>>(), vec!["whsec_a", "whsec_b"]);
        let c: HooksConfig = serde_json::from_value(serde_json::json!({ "allow_networks": ["10.0.0.0/8"] })).unwrap();
        assert_eq!(c.allow_networks, vec!["10.0.0.0/8"]);
    }
}
