//! Typed row ids: an account's id is not a key's, and a function that takes both cannot be
//! called with them swapped. Each wraps the `i64` the database stores; `parse` reads one from
//! a path or a query (a positive integer), `new` and `get` cross the storage boundary.

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            /// The id as stored.
            pub const fn new(raw: i64) -> Self {
                Self(raw)
            }

            /// What the database stores.
            pub const fn get(self) -> i64 {
                self.0
            }

            /// A positive integer, as a path or a query names one; `None` for anything else.
            pub fn parse(text: &str) -> Option<Self> {
                crate::number::positive_id(text).map(Self)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

id_type! {
    /// An account: the holder of a balance, its members and its keys.
    AccountId;
    /// A tool key (its policy and counters; its secrets are `SecretId`s).
    KeyId;
    /// One secret of a tool key (two during a rotation's grace period).
    SecretId;
    /// A member of an account.
    MemberId;
    /// An admin key.
    AdminKeyId;
    /// A member's session.
    SessionId;
    /// A webhook endpoint of an account.
    WebhookId;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_parses_from_a_positive_integer_only_and_prints_as_stored() {
        assert_eq!(KeyId::parse("12"), Some(KeyId::new(12)));
        assert_eq!(KeyId::parse("0"), None);
        assert_eq!(KeyId::parse("-3"), None);
        assert_eq!(KeyId::parse("1e3"), None);
        assert_eq!(AccountId::new(7).to_string(), "7");
        assert_eq!(serde_json::to_string(&MemberId::new(5)).unwrap(), "5");
    }
}
