use std::fmt;

/// What the writer believes a stream's revision to be (optimistic concurrency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedRevision {
    /// No check.
    Any,
    /// The stream must have no events.
    NoStream,
    /// The stream must have at least one event.
    Exists,
    /// The stream's last revision must be exactly this.
    Exact(u64),
}

impl ExpectedRevision {
    /// Whether a stream whose last revision is `actual` satisfies this expectation.
    pub fn matches(self, actual: Option<u64>) -> bool {
        match (self, actual) {
            (ExpectedRevision::Any, _) => true,
            (ExpectedRevision::NoStream, None) => true,
            (ExpectedRevision::Exists, Some(_)) => true,
            (ExpectedRevision::Exact(want), Some(have)) => want == have,
            _ => false,
        }
    }

    /// The expectation that holds after a stream reached `last` (or is empty).
    pub fn after(last: Option<u64>) -> Self {
        last.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact)
    }
}

impl fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedRevision::Any => write!(f, "any"),
            ExpectedRevision::NoStream => write!(f, "no stream"),
            ExpectedRevision::Exists => write!(f, "stream exists"),
            ExpectedRevision::Exact(n) => write!(f, "revision {n}"),
        }
    }
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Revision of the first appended event.
    pub first_revision: u64,
    /// Revision of the last appended event (the next `Exact` expectation).
    pub last_revision: u64,
    /// `$all` position of the first appended event.
    pub first_position: u64,
    /// `$all` position of the last appended event: the log position this write
    /// reached, which callers pass as `min_position` for read-your-writes.
    pub position: u64,
}

#[cfg(test)]
mod tests {
    use super::ExpectedRevision::*;
    use super::*;

    #[test]
    fn expectations_match_as_documented() {
        assert!(Any.matches(None) && Any.matches(Some(3)));
        assert!(NoStream.matches(None) && !NoStream.matches(Some(0)));
        assert!(!Exists.matches(None) && Exists.matches(Some(0)));
        assert!(Exact(2).matches(Some(2)) && !Exact(2).matches(Some(3)) && !Exact(0).matches(None));
        assert_eq!(ExpectedRevision::after(None), NoStream);
        assert_eq!(ExpectedRevision::after(Some(4)), Exact(4));
    }
}
