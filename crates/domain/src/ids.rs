//! Identifiers. Caller-chosen ids (plans, customers, subscriptions) are checked once, at the
//! edge, by `EntityId::parse`; Cutover's own ids are UUID newtypes.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// A caller-chosen identifier: 1 to 255 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EntityId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntityIdError {
    #[error("id must not be empty")]
    Empty,
    #[error("id must be at most 255 characters")]
    TooLong,
    #[error("id must not contain control characters")]
    ControlCharacter,
}

impl EntityId {
    pub fn parse(raw: &str) -> Result<Self, EntityIdError> {
        if raw.is_empty() {
            return Err(EntityIdError::Empty);
        }
        if raw.chars().count() > 255 {
            return Err(EntityIdError::TooLong);
        }
        if raw.chars().any(char::is_control) {
            return Err(EntityIdError::ControlCharacter);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EntityId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        EntityId::parse(&raw).map_err(serde::de::Error::custom)
    }
}

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            pub fn parse(raw: &str) -> Result<Self, uuid::Error> {
                Uuid::parse_str(raw).map(Self)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

uuid_id!(
    /// A task: one publish, migration or import, tracked from acceptance to a terminal state.
    TaskId
);
uuid_id!(
    /// An environment: the tenant boundary every row and every query carries.
    EnvironmentId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_ids_are_checked() {
        assert!(EntityId::parse("plan-basic").is_ok());
        assert_eq!(EntityId::parse(""), Err(EntityIdError::Empty));
        assert_eq!(EntityId::parse(&"x".repeat(256)), Err(EntityIdError::TooLong));
        assert_eq!(EntityId::parse("a\nb"), Err(EntityIdError::ControlCharacter));
    }
}
