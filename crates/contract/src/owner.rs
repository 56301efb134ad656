//! Whose a stored object is. Every per-user operation of the domain crates takes an [`Owner`], never a
//! bare string, so an owner cannot be passed where an id goes (or the other way round) and a reader sees
//! at each call where the scope comes from.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// The account an object belongs to: its username, as authentication established it (a session, an API
/// token, an inbound source's configured owner). Derefs to the name, so the stores bind and compare it
/// as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Owner(Cow<'static, str>);

impl Owner {
    pub fn new(name: impl Into<String>) -> Owner {
        Owner(Cow::Owned(name.into()))
    }

    /// For fixed owners (tests, the operator's own runs): usable in a `const`.
    pub const fn from_static(name: &'static str) -> Owner {
        Owner(Cow::Borrowed(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for Owner {
    fn from(name: String) -> Owner {
        Owner::new(name)
    }
}

impl From<&str> for Owner {
    fn from(name: &str) -> Owner {
        Owner::new(name)
    }
}

impl std::ops::Deref for Owner {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Owner {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Owner {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Owner {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for Owner {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Owner> for String {
    fn eq(&self, other: &Owner) -> bool {
        **self == *other.0
    }
}

impl PartialEq<&Owner> for String {
    fn eq(&self, other: &&Owner) -> bool {
        **self == *other.0
    }
}

/// Bound as the text column it is stored in (`owner TEXT`), on any database.
#[cfg(feature = "sqlx")]
mod sql {
    use super::Owner;
    use sqlx::encode::IsNull;
    use sqlx::error::BoxDynError;
    use sqlx::{Database, Encode, Type};

    impl<DB: Database> Type<DB> for Owner
    where
        String: Type<DB>,
    {
        fn type_info() -> DB::TypeInfo {
            <String as Type<DB>>::type_info()
        }

        fn compatible(ty: &DB::TypeInfo) -> bool {
            <String as Type<DB>>::compatible(ty)
        }
    }

    impl<'q, DB: Database> Encode<'q, DB> for Owner
    where
        String: Encode<'q, DB>,
    {
        fn encode_by_ref(&self, buf: &mut <DB as Database>::ArgumentBuffer<'q>) -> Result<IsNull, BoxDynError> {
            <String as Encode<'q, DB>>::encode(self.0.to_string(), buf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: Owner = Owner::from_static("alice");

    #[test]
    fn an_owner_is_its_name() {
        assert_eq!(ALICE, Owner::new("alice"));
        assert_eq!(ALICE, "alice");
        assert_eq!("alice".to_string(), ALICE);
        assert_ne!(ALICE, "bob");
        assert_eq!(format!("{ALICE}"), "alice");
        let name: &str = &ALICE;
        assert_eq!(name.len(), 5);
    }
}
