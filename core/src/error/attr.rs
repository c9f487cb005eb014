//! Problems with one value, and the path to it inside an item.

use std::fmt;

/// Where inside an item a value sits: `lines[2].price`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// A map key or struct field.
    Field(String),
    /// A list position.
    Index(usize),
}

/// An error found while converting one value, with the path to it.
///
/// The path grows from the inside out as the error bubbles up through
/// nested values; [`AttrError::path`] renders it outside in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrError {
    reversed_path: Vec<PathSegment>,
    /// What is wrong with the value.
    pub problem: AttrProblem,
}

/// What is wrong with one value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum AttrProblem {
    /// A required attribute is absent.
    Missing,
    /// The attribute has another DynamoDB type.
    WrongType { expected: &'static str, found: &'static str },
    /// A number that does not fit the Rust type, or is malformed.
    BadNumber { text: String, target: &'static str },
    /// NaN or an infinity: DynamoDB numbers are finite.
    NonFinite,
    /// A number outside DynamoDB's range (1E-130 … 9.99E+125, 38 digits).
    OutOfRange { text: String },
    /// DynamoDB cannot store an empty set.
    EmptySet,
    /// A map key is empty: DynamoDB refuses empty attribute names.
    EmptyMapKey,
    /// A custom problem, e.g. from serde.
    Other(String),
}

impl fmt::Display for AttrProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrProblem::Missing => f.write_str("missing"),
            AttrProblem::WrongType { expected, found } => write!(f, "expected type {expected}, found {found}"),
            AttrProblem::BadNumber { text, target } => write!(f, "number {text:?} does not fit {target}"),
            AttrProblem::NonFinite => f.write_str("NaN and infinities cannot be stored: DynamoDB numbers are finite"),
            AttrProblem::OutOfRange { text } => write!(
                f,
                "number {text} is outside what DynamoDB stores (magnitude 1E-130 to 9.99E+125, at most 38 significant digits)"
            ),
            AttrProblem::EmptySet => f.write_str("empty set: DynamoDB cannot store an empty set (use Option or skip the field)"),
            AttrProblem::EmptyMapKey => f.write_str("a map key is empty: DynamoDB refuses empty attribute names"),
            AttrProblem::Other(message) => f.write_str(message),
        }
    }
}

impl AttrError {
    /// A problem at the current value (the path is filled in by callers).
    pub fn new(problem: AttrProblem) -> Self {
        AttrError { reversed_path: Vec::new(), problem }
    }

    /// Prepends a field name to the path.
    pub fn in_field(mut self, name: impl Into<String>) -> Self {
        self.reversed_path.push(PathSegment::Field(name.into()));
        self
    }

    /// Prepends a list index to the path.
    pub fn at_index(mut self, index: usize) -> Self {
        self.reversed_path.push(PathSegment::Index(index));
        self
    }

    /// The path from the item's top level, e.g. `lines[2].price`.
    pub fn path(&self) -> String {
        let mut out = String::new();
        for segment in self.reversed_path.iter().rev() {
            match segment {
                PathSegment::Field(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                PathSegment::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }
}

impl fmt::Display for AttrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path();
        if path.is_empty() {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "`{path}`: {}", self.problem)
        }
    }
}

impl std::error::Error for AttrError {}
