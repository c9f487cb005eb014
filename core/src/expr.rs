//! The one place DynamoDB expression text is written.
//!
//! Key conditions, filters, condition expressions and update expressions
//! all go through an [`Expr`]: every attribute name becomes a `#n<i>`
//! placeholder (DynamoDB reserves 573 words, `name`, `status`, `data` and
//! `ttl` among them) and every value a `:v<i>` placeholder. No name or
//! value is ever spliced into the expression text, so nothing a user
//! stores can change what an expression means.

use std::borrow::Cow;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// An attribute an expression refers to: a top-level attribute of the
/// item (the stored name of a field).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Path {
    pub(crate) root: Cow<'static, str>,
}

impl Path {
    /// A top-level attribute.
    pub(crate) fn attr(name: impl Into<Cow<'static, str>>) -> Self {
        Path { root: name.into() }
    }

    /// The path as people read it, for messages.
    pub(crate) fn display(&self) -> String {
        self.root.to_string()
    }
}

/// `ExpressionAttributeNames`: placeholder → attribute name.
pub(crate) type Names = HashMap<String, String>;
/// `ExpressionAttributeValues`: placeholder → value.
pub(crate) type Values = HashMap<String, AttributeValue>;

/// The names and values of one request's expressions.
///
/// A name used twice gets one placeholder; values always get a new one.
/// Only what is rendered is registered, so the maps never carry an unused
/// entry (which DynamoDB refuses).
#[derive(Debug, Clone, Default)]
pub(crate) struct Expr {
    /// placeholder → attribute name
    names: HashMap<String, String>,
    /// attribute name → placeholder
    by_name: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    pub(crate) fn new() -> Self {
        Expr::default()
    }

    /// The placeholder of an attribute name (`#n0`).
    pub(crate) fn name(&mut self, attr: &str) -> String {
        if let Some(p) = self.by_name.get(attr) {
            return p.clone();
        }
        let p = format!("#n{}", self.by_name.len());
        self.by_name.insert(attr.to_string(), p.clone());
        self.names.insert(p.clone(), attr.to_string());
        p
    }

    /// The placeholder of a value (`:v0`).
    pub(crate) fn value(&mut self, value: AttributeValue) -> String {
        let p = format!(":v{}", self.values.len());
        self.values.insert(p.clone(), value);
        p
    }

    /// An attribute path with every name as a placeholder.
    pub(crate) fn path(&mut self, path: &Path) -> String {
        self.name(&path.root)
    }

    /// `ExpressionAttributeNames` and `ExpressionAttributeValues`, each
    /// `None` when empty (DynamoDB refuses an empty map).
    pub(crate) fn into_maps(self) -> (Option<Names>, Option<Values>) {
        let names = (!self.names.is_empty()).then_some(self.names);
        let values = (!self.values.is_empty()).then_some(self.values);
        (names, values)
    }
}

/// Joins condition clauses with `AND`, each parenthesised; `None` for no
/// clause.
pub(crate) fn and_all(clauses: &[String]) -> Option<String> {
    match clauses {
        [] => None,
        [one] => Some(one.clone()),
        many => Some(many.iter().map(|c| format!("({c})")).collect::<Vec<_>>().join(" AND ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_shared_and_values_are_not() {
        let mut e = Expr::new();
        assert_eq!(e.name("status"), "#n0");
        assert_eq!(e.name("name"), "#n1");
        assert_eq!(e.name("status"), "#n0");
        assert_eq!(e.value(AttributeValue::S("a".into())), ":v0");
        assert_eq!(e.value(AttributeValue::S("a".into())), ":v1");
        let (names, values) = e.into_maps();
        let names = names.unwrap();
        assert_eq!(names.len(), 2);
        assert_eq!(names["#n0"], "status");
        assert_eq!(names["#n1"], "name");
        assert_eq!(values.unwrap().len(), 2);
    }

    #[test]
    fn empty_maps_are_none() {
        assert_eq!(Expr::new().into_maps(), (None, None));
    }

    #[test]
    fn names_with_expression_syntax_stay_out_of_the_text() {
        let mut e = Expr::new();
        let evil = "a) OR attribute_exists(#x";
        let text = e.path(&Path::attr(evil));
        assert_eq!(text, "#n0");
        assert_eq!(e.into_maps().0.unwrap()["#n0"], evil);
    }

    #[test]
    fn and_all_parenthesises() {
        assert_eq!(and_all(&[]), None);
        assert_eq!(and_all(&["a = b".into()]).as_deref(), Some("a = b"));
        assert_eq!(and_all(&["a".into(), "b OR c".into()]).as_deref(), Some("(a) AND (b OR c)"));
    }
}
