//! The one table of error codes. Each code's name is the contract's vocabulary (Stigg's seed
//! spells them), with the HTTP status it travels with. Handlers pick a code and a message; the
//! api layer turns the pair into `{"message", "code"}`.

macro_rules! error_codes {
    ($($code:ident => $status:literal),+ $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($code),+ }

        impl ErrorCode {
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$code => stringify!($code)),+ }
            }

            /// The HTTP status this code is answered with.
            pub fn http_status(self) -> u16 {
                match self { $(ErrorCode::$code => $status),+ }
            }

            pub fn parse(raw: &str) -> Option<Self> {
                match raw { $(stringify!($code) => Some(ErrorCode::$code),)+ _ => None }
            }

            /// Every code, in the table's order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$code),+];
        }

        /// On the wire: the code's name.
        impl utoipa::PartialSchema for ErrorCode {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                crate::string_enum_schema(&[$(stringify!($code)),+])
            }
        }

        impl utoipa::ToSchema for ErrorCode {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed("ErrorCode")
            }
        }
    };
}

error_codes! {
    // 400
    BadUserInput => 400,
    PackageAlreadyPublished => 400,
    ObjectAlreadyBeingUsedByAnotherRequestError => 400,
    PlanCannotBePublishWhenBasePlanIsDraft => 400,
    PlanCannotBePublishWhenCompatibleAddonIsDraft => 400,
    DraftAlreadyExists => 400,
    DraftPlanCantBeArchived => 400,
    EditAllowedOnDraftPackageOnlyError => 400,
    EntityIsArchivedError => 400,
    UnPublishedPackage => 400,
    DuplicateProductValidationError => 400,
    IntegrityViolation => 400,
    FailedToImportSubscriptions => 400,
    FailedToImportCustomer => 400,
    SubscriptionAlreadyCanceledOrExpired => 400,
    SubscriptionAlreadyOnLatestPlan => 400,
    ScheduledMigrationAlreadyExistsError => 400,
    InvalidSubscriptionStatus => 400,
    InvalidArgumentError => 400,
    DuplicateAddonProvisionedError => 400,
    AddonQuantityExceedsLimitError => 400,
    DraftAddonCantBeArchived => 400,
    // 401
    Unauthenticated => 401,
    // 403
    AccessDeniedError => 403,
    // 404
    PlanNotFound => 404,
    ProductNotFoundError => 404,
    CustomerNotFound => 404,
    SubscriptionNotFound => 404,
    PriceNotFound => 404,
    AddonNotFound => 404,
    AddonsNotFound => 404,
    NotFound => 404,
    // 409: Cutover's own, for its extensions
    TaskAlreadyRolledBack => 409,
    // 429
    RateLimitExceeded => 429,
    // 503: the database cannot be reached now; answered with `Retry-After`
    ServiceUnavailable => 503,
    // worker-side failures that never travel as an HTTP answer
    MaxAttemptsExceeded => 500,
    InternalError => 500,
    // a stored task spec that does not parse: the task fails, nothing is published or moved
    InvalidTaskSpec => 500,
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn codes_round_trip_through_their_names() {
        for code in [ErrorCode::BadUserInput, ErrorCode::PlanNotFound, ErrorCode::RateLimitExceeded] {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::ObjectAlreadyBeingUsedByAnotherRequestError.http_status(), 400);
        assert_eq!(ErrorCode::Unauthenticated.http_status(), 401);
    }
}
