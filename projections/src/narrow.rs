//! [`Narrow`]: a view restricted to one user or one provider, in the same shape as
//! the whole view (`tutorlog replay --user U` / `--provider P`).

use crate::projection::Projection;

/// A kind of filter a view may accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    /// `--user U`: keep one learner's or one user's rows.
    User,
    /// `--provider P`: keep one provider's rows.
    Provider,
}

impl FilterKind {
    /// The command-line flag.
    pub fn flag(self) -> &'static str {
        match self {
            FilterKind::User => "--user",
            FilterKind::Provider => "--provider",
        }
    }
}

/// What to keep of a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewFilter {
    /// Rows of this user (learner) only.
    User(String),
    /// Rows of this provider only.
    Provider(String),
}

impl ViewFilter {
    /// Which kind of filter this is.
    pub fn kind(&self) -> FilterKind {
        match self {
            ViewFilter::User(_) => FilterKind::User,
            ViewFilter::Provider(_) => FilterKind::Provider,
        }
    }
}

/// A projection whose view can be narrowed to one user or one provider.
pub trait Narrow: Projection + Sized {
    /// The filters this view accepts; others are refused by callers.
    const FILTERS: &'static [FilterKind];

    /// A copy holding only what `filter` selects, in the same shape, so its
    /// [`Projection::view`] is the narrowed view. A filter not in
    /// [`Narrow::FILTERS`] gives an unchanged copy.
    fn narrowed(&self, filter: &ViewFilter) -> Self;

    /// Whether `kind` applies to this view.
    fn accepts(kind: FilterKind) -> bool {
        Self::FILTERS.contains(&kind)
    }
}
