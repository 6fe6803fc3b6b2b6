//! Cutover's domain: identifiers, the task state machine, the version-change policy and the
//! table of error codes both API dialects speak. It owns the rules; it does no I/O and knows
//! nothing of HTTP, SQL or AMQP.

pub mod error;
pub mod ids;
pub mod message;
pub mod plan;
pub mod rollout;
pub mod subscription;
pub mod task;

pub use error::ErrorCode;
pub use ids::{EntityId, EnvironmentId, TaskId};
pub use message::Job;
pub use plan::{Currency, MigrationType, PlanVersionStatus, PricingType, VersionChangeBehaviour};
pub use rollout::RolloutSpec;
pub use subscription::{BillingPeriod, SubscriptionStatus};
pub use task::{TaskStatus, TaskType};

/// Parsing an enum-like value from its wire name failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {what}; expected one of: {expected}")]
pub struct UnknownVariant {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// Declares a fieldless enum with its wire names, `as_str`, `parse`, `Display` and serde.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            pub fn parse(value: &str) -> Result<Self, $crate::UnknownVariant> {
                match value {
                    $($wire => Ok($name::$variant),)+
                    other => Err($crate::UnknownVariant {
                        what: $what,
                        value: other.to_owned(),
                        expected: concat!($($wire, " "),+),
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $name::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use wire_enum;
