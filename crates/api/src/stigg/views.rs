//! Stigg's views are rendered by the `views` crate, which webhook events share.

pub use ::views::stigg::*;
