//! Cutover's domain: identifiers, the task state machine, the version-change policy and the
//! table of error codes both API dialects speak. It owns the rules; it does no I/O and knows
//! nothing of HTTP, SQL or AMQP.

pub mod error;
pub mod ids;
pub mod message;
pub mod plan;
pub mod policy;
pub mod rollout;
pub mod spec;
pub mod subscription;
pub mod task;
pub mod webhook;

pub use error::ErrorCode;
pub use ids::{EntityId, EnvironmentId, TaskId};
pub use message::Job;
pub use plan::{Currency, MigrationType, PlanVersionStatus, PricingType, VersionChangeBehaviour};
pub use policy::MigrationPolicy;
pub use rollout::RolloutSpec;
pub use spec::{InvalidTaskSpec, TaskSpec};
pub use subscription::{BillingPeriod, SubscriptionStatus};
pub use task::{TaskStatus, TaskType};
pub use webhook::WebhookEventType;

/// Parsing an enum-like value from its wire name failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {what}; expected one of: {expected}")]
pub struct UnknownVariant {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// The OpenAPI schema of a string that is one of `names` (the wire enums' and the error
/// codes'; the api's `/openapi.json` is generated from them).
pub fn string_enum_schema(names: &[&'static str]) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(names.iter().copied()))
        .into()
}

/// Declares a fieldless enum with its wire names, `as_str`, `parse`, `Display`, serde and its
/// OpenAPI schema.
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

        /// Reading a stored value: an unknown name is an error, never a fallback.
        impl TryFrom<String> for $name {
            type Error = $crate::UnknownVariant;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                $name::parse(&value)
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

        /// On the wire: a string, one of the wire names.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::string_enum_schema(&[$($wire),+])
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
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
