//! Simulation parameters: how many notifications, how fast, which channels, and what failures to inject.
//! Parsing never panics; every refusal names the field (`count`, `rate`, `mix.fax`, ...).

use serde::{Deserialize, Serialize};
use std::str::FromStr;

use crate::error::{FieldError, NotifyError};
use crate::model::{truncate, Backend, Channel, PerChannel};

pub const MAX_COUNT: u64 = 10_000_000;
pub const MAX_RATE_PER_HOUR: u64 = 1_000_000_000;
pub const MAX_LATENCY_MS: u32 = 60_000;
pub const MAX_WEIGHT: u32 = 1_000_000;

/// How fast a run produces notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rate {
    PerHour(u64),
    /// As fast as the queue accepts them (bounded by the high-water mark).
    Max,
}

impl Rate {
    pub const ONE_MILLION_PER_HOUR: Rate = Rate::PerHour(1_000_000);
}

impl FromStr for Rate {
    type Err = String;
    /// `max`, `1m-per-hour`, `10m-per-hour`, `500k-per-hour`, `2500-per-hour`.
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        if t == "max" {
            return Ok(Rate::Max);
        }
        let bad = || format!("{:?} is not max or <n>-per-hour (e.g. 1m-per-hour)", truncate(s, 40));
        let n = t.strip_suffix("-per-hour").or_else(|| t.strip_suffix("/h")).ok_or_else(bad)?;
        let (digits, mult) = match n.chars().last() {
            Some('k') => (&n[..n.len() - 1], 1_000u64),
            Some('m') => (&n[..n.len() - 1], 1_000_000u64),
            _ => (n, 1),
        };
        let v: u64 = digits.parse().map_err(|_| bad())?;
        v.checked_mul(mult).map(Rate::PerHour).ok_or_else(bad)
    }
}

/// Relative weights per channel (`{"webhook": 1, "email": 2, …}`); a zero weight leaves the channel
/// out.
pub type ChannelMix = PerChannel<u32>;

impl ChannelMix {
    pub fn only(channel: Channel) -> Self {
        let mut m = ChannelMix::default();
        *m.get_mut(channel) = 1;
        m
    }

    pub fn weight(&self, c: Channel) -> u32 {
        *self.get(c)
    }

    fn total(&self) -> u64 {
        Channel::ALL.iter().map(|c| self.weight(*c) as u64).sum()
    }

    /// The channel for the `seq`-th notification of a run: deterministic, so a resumed run keeps its mix.
    pub fn pick(&self, seq: u64) -> Channel {
        let total = self.total().max(1);
        // A multiplicative hash spreads consecutive sequence numbers over the weights.
        let mut r = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) % total;
        for c in Channel::ALL {
            let w = self.weight(c) as u64;
            if r < w {
                return c;
            }
            r -= w;
        }
        Channel::Noop
    }
}

impl FromStr for ChannelMix {
    type Err = Vec<FieldError>;
    /// `webhook=1,email=2` (a bare name means weight 1).
    fn from_str(s: &str) -> Result<Self, Vec<FieldError>> {
        let mut mix = ChannelMix::default();
        let mut errors = vec![];
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
            match (name.parse::<Channel>(), weight.trim().parse::<u32>()) {
                (Ok(c), Ok(w)) if w <= MAX_WEIGHT => *mix.get_mut(c) = w,
                (Ok(c), _) => errors.push(FieldError::new(format!("mix.{c}"), format!("weight must be a whole number from 0 to {MAX_WEIGHT}"))),
                (Err(e), _) => errors.push(FieldError::new(format!("mix.{}", truncate(name, 40)), e)),
            }
        }
        if errors.is_empty() {
            Ok(mix)
        } else {
            Err(errors)
        }
    }
}

/// What a simulation run does.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimParams {
    pub count: u64,
    pub rate: Rate,
    pub mix: ChannelMix,
    /// Share of simulated-provider calls that fail (email, SMS, push).
    pub failure_rate: f64,
    /// Latency the simulated providers add to each call.
    pub latency_ms: u32,
    pub backend: Backend,
    /// Each notification's time to live, in seconds (none by default): those still waiting after it
    /// end `expired`, unsent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
}

impl Default for SimParams {
    fn default() -> Self {
        Self {
            count: 10_000,
            rate: Rate::ONE_MILLION_PER_HOUR,
            mix: ChannelMix { webhook: 1, email: 1, sms: 1, push: 1, noop: 0 },
            failure_rate: 0.0,
            latency_ms: 0,
            backend: Backend::Embedded,
            ttl_secs: None,
        }
    }
}

impl SimParams {
    /// Every problem at once, each naming its field.
    pub fn validate(&self) -> Result<(), NotifyError> {
        let mut e = vec![];
        if self.count == 0 {
            e.push(FieldError::new("count", "must be at least 1"));
        } else if self.count > MAX_COUNT {
            e.push(FieldError::new("count", format!("at most {MAX_COUNT}")));
        }
        if let Rate::PerHour(r) = self.rate {
            if r == 0 {
                e.push(FieldError::new("rate", "must be more than 0 per hour (or max)"));
            } else if r > MAX_RATE_PER_HOUR {
                e.push(FieldError::new("rate", format!("at most {MAX_RATE_PER_HOUR} per hour")));
            }
        }
        if !(0.0..=1.0).contains(&self.failure_rate) {
            e.push(FieldError::new("failure_rate", "must be between 0 and 1"));
        }
        if self.latency_ms > MAX_LATENCY_MS {
            e.push(FieldError::new("latency_ms", format!("at most {MAX_LATENCY_MS}")));
        }
        if self.ttl_secs.is_some_and(|t| t == 0 || t > crate::model::MAX_TTL_SECS) {
            e.push(FieldError::new("ttl_secs", format!("1 to {} seconds", crate::model::MAX_TTL_SECS)));
        }
        if Channel::ALL.iter().any(|c| self.mix.weight(*c) > MAX_WEIGHT) {
            e.push(FieldError::new("mix", format!("weights are at most {MAX_WEIGHT}")));
        } else if self.mix.total() == 0 {
            e.push(FieldError::new("mix", "choose at least one channel with a weight above 0"));
        }
        if e.is_empty() {
            Ok(())
        } else {
            Err(NotifyError::Invalid(e))
        }
    }

    /// Parses JSON such as `{"count": 1000, "rate": "1m-per-hour", "mix": {"email": 1}, "backend": "redis"}`
    /// (`rate` may also be `{"per_hour": n}`; missing fields take their defaults) and validates it.
    pub fn from_json(text: &str) -> Result<SimParams, NotifyError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|_| NotifyError::invalid("body", "is not valid JSON"))?;
        Self::from_value(&value)
    }

    pub fn from_value(value: &serde_json::Value) -> Result<SimParams, NotifyError> {
        use serde_json::Value;
        let obj = value.as_object().ok_or_else(|| NotifyError::invalid("body", "must be a JSON object"))?;
        let mut p = SimParams::default();
        let mut e = vec![];
        for (key, v) in obj {
            match key.as_str() {
                "count" => match v.as_u64() {
                    Some(n) => p.count = n,
                    None if v.as_i64().is_some_and(|n| n < 0) => e.push(FieldError::new("count", "must not be negative")),
                    None => e.push(FieldError::new("count", "must be a whole number")),
                },
                "rate" => match v {
                    Value::String(s) => match s.parse() {
                        Ok(r) => p.rate = r,
                        Err(m) => e.push(FieldError::new("rate", m)),
                    },
                    Value::Object(o) if o.len() == 1 && o.contains_key("per_hour") => match o["per_hour"].as_u64() {
                        Some(n) => p.rate = Rate::PerHour(n),
                        None => e.push(FieldError::new("rate", "per_hour must be a whole number above 0")),
                    },
                    _ => e.push(FieldError::new("rate", "must be \"max\", \"<n>-per-hour\" or {\"per_hour\": n}")),
                },
                "mix" => match v {
                    Value::String(s) => match s.parse() {
                        Ok(m) => p.mix = m,
                        Err(errs) => e.extend(errs),
                    },
                    Value::Object(o) => {
                        let mut mix = ChannelMix::default();
                        for (name, w) in o {
                            match (name.parse::<Channel>(), w.as_u64()) {
                                (Ok(c), Some(w)) if w <= MAX_WEIGHT as u64 => *mix.get_mut(c) = w as u32,
                                (Ok(c), _) => {
                                    e.push(FieldError::new(format!("mix.{c}"), format!("weight must be a whole number from 0 to {MAX_WEIGHT}")))
                                }
                                (Err(m), _) => e.push(FieldError::new(format!("mix.{}", truncate(name, 40)), m)),
                            }
                        }
                        p.mix = mix;
                    }
                    _ => e.push(FieldError::new("mix", "must be an object of channel weights")),
                },
                "failure_rate" => match v.as_f64() {
                    Some(f) => p.failure_rate = f,
                    None => e.push(FieldError::new("failure_rate", "must be a number between 0 and 1")),
                },
                "latency_ms" => match v.as_u64() {
                    Some(n) if n <= MAX_LATENCY_MS as u64 => p.latency_ms = n as u32,
                    _ => e.push(FieldError::new("latency_ms", format!("must be a whole number from 0 to {MAX_LATENCY_MS}"))),
                },
                "backend" => match v.as_str().map(str::parse::<Backend>) {
                    Some(Ok(b)) => p.backend = b,
                    Some(Err(m)) => e.push(FieldError::new("backend", m)),
                    None => e.push(FieldError::new("backend", "must be \"embedded\" or \"redis\"")),
                },
                "ttl_secs" => match v {
                    Value::Null => p.ttl_secs = None,
                    _ => match v.as_u64() {
                        Some(n) => p.ttl_secs = Some(n),
                        None => e.push(FieldError::new("ttl_secs", "must be a whole number of seconds")),
                    },
                },
                other => e.push(FieldError::new(truncate(other, 40), "unknown field")),
            }
        }
        // Range checks too, except on fields that did not even parse.
        if let Err(NotifyError::Invalid(more)) = p.validate() {
            for m in more {
                if !e.iter().any(|x| x.field.split('.').next() == Some(m.field.as_str())) {
                    e.push(m);
                }
            }
        }
        if e.is_empty() {
            return Ok(p);
        }
        // JSON objects are unordered; report in the form's order.
        const ORDER: [&str; 7] = ["count", "rate", "mix", "failure_rate", "latency_ms", "backend", "ttl_secs"];
        e.sort_by_key(|f| ORDER.iter().position(|o| f.field.split('.').next() == Some(*o)).unwrap_or(ORDER.len()));
        Err(NotifyError::Invalid(e))
    }
}

impl<'de> Deserialize<'de> for SimParams {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        SimParams::from_value(&v).map_err(|e| serde::de::Error::custom(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(e: NotifyError) -> Vec<String> {
        e.field_errors().iter().map(|f| f.field.clone()).collect()
    }

    #[test]
    fn the_defaults_are_valid_and_round_trip_through_json() {
        let p = SimParams::default();
        p.validate().unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<SimParams>(&json).unwrap(), p);
    }

    #[test]
    fn rates_parse_from_presets() {
        assert_eq!("1m-per-hour".parse::<Rate>().unwrap(), Rate::PerHour(1_000_000));
        assert_eq!("10M-per-hour".parse::<Rate>().unwrap(), Rate::PerHour(10_000_000));
        assert_eq!("500k-per-hour".parse::<Rate>().unwrap(), Rate::PerHour(500_000));
        assert_eq!("max".parse::<Rate>().unwrap(), Rate::Max);
        assert!("fast".parse::<Rate>().is_err());
        assert!("99999999999999999999m-per-hour".parse::<Rate>().is_err());
    }

    #[test]
    fn bad_parameters_name_their_fields() {
        let e =
            SimParams::from_json(r#"{"count": -5, "rate": "0-per-hour", "mix": {"fax": 1}, "failure_rate": 1.5, "latency_ms": 600000}"#).unwrap_err();
        assert_eq!(fields(e), ["count", "rate", "mix.fax", "failure_rate", "latency_ms"]);
        let e = SimParams::from_json(r#"{"count": 0, "rate": {"per_hour": 0}}"#).unwrap_err();
        assert_eq!(fields(e), ["count", "rate"]);
        let e = SimParams::from_json(r#"{"count": 20000000, "mix": {"email": 0}}"#).unwrap_err();
        assert_eq!(fields(e), ["count", "mix"]);
        let e = SimParams::from_json(r#"{"count": "many"}"#).unwrap_err();
        assert_eq!(e.to_string(), "count: must be a whole number");
        assert_eq!(fields(SimParams::from_json(r#"{"colour": 1}"#).unwrap_err()), ["colour"]);
        assert_eq!(fields(SimParams::from_json("[1,2]").unwrap_err()), ["body"]);
        assert_eq!(fields(SimParams::from_json("{").unwrap_err()), ["body"]);
        assert_eq!(fields(SimParams::from_json(r#"{"backend": "kafka"}"#).unwrap_err()), ["backend"]);
        assert_eq!(fields(SimParams::from_json(r#"{"rate": {"per_hour": 2000000000}}"#).unwrap_err()), ["rate"]);
        let p = SimParams { failure_rate: f64::NAN, ..SimParams::default() };
        assert_eq!(fields(p.validate().unwrap_err()), ["failure_rate"]);
        // Through serde too, with the field in the message rather than a panic.
        let e = serde_json::from_str::<SimParams>(r#"{"count": -1}"#).unwrap_err();
        assert!(e.to_string().contains("count: must not be negative"), "{e}");
    }

    #[test]
    fn mixes_parse_from_the_command_line_form() {
        let m: ChannelMix = "webhook=1, email=3,noop".parse().unwrap();
        assert_eq!(m, ChannelMix { webhook: 1, email: 3, sms: 0, push: 0, noop: 1 });
        let e = "webhook=x,fax=1".parse::<ChannelMix>().unwrap_err();
        assert_eq!(e.iter().map(|f| f.field.as_str()).collect::<Vec<_>>(), ["mix.webhook", "mix.fax"]);
    }

    #[test]
    fn the_mix_is_followed() {
        let m = ChannelMix { webhook: 1, email: 3, sms: 0, push: 0, noop: 0 };
        let emails = (0..10_000).filter(|s| m.pick(*s) == Channel::Email).count();
        assert!((7_000..8_000).contains(&emails), "{emails}");
        assert!((0..10_000).all(|s| matches!(m.pick(s), Channel::Email | Channel::Webhook)));
    }
}
