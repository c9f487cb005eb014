//! What a batch left undone.

use std::fmt;

use crate::key::PrimaryKey;

/// What a batch request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchOp {
    /// A put of a whole item.
    Put,
    /// A delete by key.
    Delete,
    /// A read by key.
    Get,
}

impl fmt::Display for BatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BatchOp::Put => "put",
            BatchOp::Delete => "delete",
            BatchOp::Get => "get",
        })
    }
}

/// One request of a batch that was not done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFailure {
    /// Its position in the batch, in the order the requests were added.
    pub index: usize,
    /// The entity it concerns.
    pub entity: String,
    /// What it would have done.
    pub op: BatchOp,
    /// The item's key.
    pub key: PrimaryKey,
}

impl fmt::Display for BatchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {} {} ({}, {})", self.index, self.op, self.entity, self.key.pk, self.key.sk)
    }
}

/// The list in [`Error::BatchIncomplete`]'s message: the first ten, then
/// a count.
pub(crate) fn describe_failures(failed: &[BatchFailure]) -> String {
    let mut text = failed.iter().take(10).map(ToString::to_string).collect::<Vec<_>>().join(", ");
    if failed.len() > 10 {
        text.push_str(&format!(" and {} more", failed.len() - 10));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_list_the_first_ten() {
        let f = |i| BatchFailure {
            index: i,
            entity: "User".into(),
            op: BatchOp::Put,
            key: PrimaryKey { pk: format!("U#{i}"), sk: "U".into() },
        };
        let all: Vec<_> = (0..12).map(f).collect();
        let text = describe_failures(&all);
        assert!(text.starts_with("#0 put User (U#0, U), #1 put User (U#1, U)"), "{text}");
        assert!(text.ends_with("and 2 more"), "{text}");
    }
}
