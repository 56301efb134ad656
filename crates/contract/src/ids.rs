//! Ids we made, typed, and parsed where they arrive (a URL path, a form field), so a handler never holds
//! a string that is not one. A text that is not an id of the kind asked for is "not found" (404), as an
//! id that belongs to someone else is: ids are not a way to probe.
//!
//! Each derefs to its text (or reads as its number), so the domain crates' `&str` and `i64` parameters
//! take them as they are.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::Problem;

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $valid:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = Problem;
            fn from_str(s: &str) -> Result<Self, Problem> {
                let valid: fn(&str) -> bool = $valid;
                if valid(s) {
                    Ok($name(s.to_string()))
                } else {
                    Err(Problem::not_found(concat!("No such ", $what, ".")))
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = Problem;
            fn try_from(s: String) -> Result<Self, Problem> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

macro_rules! number_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "i64", into = "i64")]
        pub struct $name(i64);

        impl $name {
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = Problem;
            fn from_str(s: &str) -> Result<Self, Problem> {
                s.parse::<i64>().ok().and_then(|n| $name::try_from(n).ok()).ok_or_else(|| Problem::not_found(concat!("No such ", $what, ".")))
            }
        }

        impl TryFrom<i64> for $name {
            type Error = Problem;
            fn try_from(n: i64) -> Result<Self, Problem> {
                if n > 0 {
                    Ok($name(n))
                } else {
                    Err(Problem::not_found(concat!("No such ", $what, ".")))
                }
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

/// `prefix_` then 24 letters and digits: the shape `hooks` makes its ids in.
fn prefixed(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).and_then(|r| r.strip_prefix('_')).is_some_and(|r| r.len() == 24 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A UUID in its hyphenated form (36 characters).
fn uuid_shaped(s: &str) -> bool {
    s.len() == 36 && s.bytes().enumerate().all(|(i, b)| if matches!(i, 8 | 13 | 18 | 23) { b == b'-' } else { b.is_ascii_hexdigit() })
}

text_id!(
    /// A webhook endpoint: `ep_` and 24 letters and digits.
    EndpointId,
    "endpoint",
    |s| prefixed(s, "ep")
);
text_id!(
    /// A webhook message (an event sent to endpoints): `msg_` and 24 letters and digits.
    MessageId,
    "message",
    |s| prefixed(s, "msg")
);
text_id!(
    /// A Web Push subscription: `psub_` and 24 letters and digits.
    PushSubscriptionId,
    "push subscription",
    |s| prefixed(s, "psub")
);
text_id!(
    /// A workflow run: a UUID.
    WorkflowRunId,
    "workflow run",
    uuid_shaped
);
number_id!(
    /// A stored workflow definition.
    WorkflowId,
    "workflow"
);
number_id!(
    /// A notification run (a simulation).
    NotificationRunId,
    "run"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_only_in_their_own_shape_and_anything_else_is_not_found() {
        let ep: EndpointId = "ep_abcdefghijklmnopqrstuvwx".parse().unwrap();
        assert_eq!(&*ep, "ep_abcdefghijklmnopqrstuvwx");
        for bad in ["", "ep_", "ep_short", "msg_abcdefghijklmnopqrstuvwx", "ep_abcdefghijklmnopqrstuv\0x", "ep_abcdefghijklmnopqrstuvwxy"] {
            let p = bad.parse::<EndpointId>().unwrap_err();
            assert_eq!((p.status, p.detail.as_str()), (404, "No such endpoint."), "{bad:?}");
        }
        assert!("msg_abcdefghijklmnopqrstuvwx".parse::<MessageId>().is_ok());
        assert!("6f1c2a4e-9b1d-4c3e-8f00-0123456789ab".parse::<WorkflowRunId>().is_ok());
        assert!("6f1c2a4e-9b1d-4c3e-8f00-0123456789a".parse::<WorkflowRunId>().is_err());
        assert_eq!("42".parse::<WorkflowId>().unwrap().get(), 42);
        for bad in ["0", "-1", "x", "1e3", "99999999999999999999"] {
            assert!(bad.parse::<NotificationRunId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_refuse_to_deserialize_out_of_shape() {
        assert!(serde_json::from_str::<EndpointId>("\"nope\"").is_err());
        assert_eq!(serde_json::to_string(&"7".parse::<WorkflowId>().unwrap()).unwrap(), "7");
        assert!(serde_json::from_str::<WorkflowId>("0").is_err());
    }
}
