//! Conditions on one entity's stored fields, for conditional puts,
//! updates, deletes, transaction checks and query filters.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{BitAnd, BitOr, Not};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::error::{AttrError, Error};
use crate::expr::{Expr, Path};
use crate::field::{Contains, Field, HasSize, IntoValue, TextField};

/// DynamoDB allows at most 100 operands in one `IN`.
pub const MAX_IN_VALUES: usize = 100;

/// A condition on the stored item of entity `E`: built from the entity's
/// field handles (`E::fields()`), combined with `&`, `|`, `!` (or
/// [`and`](Condition::and), [`or`](Condition::or),
/// [`not`](Condition::negate)).
///
/// ```
/// use singletable::{Condition, Item};
///
/// #[derive(Item)]
/// #[item(pk = "ORG#{org}", sk = "USER#{id}")]
/// struct User { org: String, id: String, name: String, age: u32, tags: std::collections::HashSet<String> }
///
/// let f = User::fields();
/// let adult_anns: Condition<User> = f.name.begins_with("Ann") & f.age.ge(18u32);
/// let c = adult_anns | !f.tags.contains("banned") | f.tags.size().gt(3);
/// # let _ = c;
/// ```
///
/// Values are encoded as the derive stores them; one that cannot be
/// stored (NaN, an empty set) makes the whole request fail with
/// [`Error::InvalidValue`] before anything is sent.
pub struct Condition<E> {
    pub(crate) node: Node,
    _entity: PhantomData<fn() -> E>,
}

impl<E> Clone for Condition<E> {
    fn clone(&self) -> Self {
        Condition { node: self.node.clone(), _entity: PhantomData }
    }
}

impl<E> fmt::Debug for Condition<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.node, f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn text(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Path(Path),
    Size(Path),
    Value(AttributeValue),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Cmp(Operand, CmpOp, Operand),
    Between(Operand, Operand, Operand),
    In(Operand, Vec<Operand>),
    Exists(Path),
    NotExists(Path),
    BeginsWith(Path, Operand),
    Contains(Path, Operand),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    /// A value that could not be encoded, or a misuse: refused before
    /// sending. (path, problem)
    Invalid(String, String),
}

impl<E> Condition<E> {
    pub(crate) fn from_node(node: Node) -> Self {
        Condition { node, _entity: PhantomData }
    }

    /// Both conditions hold.
    pub fn and(self, other: Condition<E>) -> Self {
        Condition::from_node(match (self.node, other.node) {
            (Node::And(mut a), Node::And(b)) => {
                a.extend(b);
                Node::And(a)
            }
            (Node::And(mut a), b) => {
                a.push(b);
                Node::And(a)
            }
            (a, b) => Node::And(vec![a, b]),
        })
    }

    /// Either condition holds.
    pub fn or(self, other: Condition<E>) -> Self {
        Condition::from_node(match (self.node, other.node) {
            (Node::Or(mut a), Node::Or(b)) => {
                a.extend(b);
                Node::Or(a)
            }
            (Node::Or(mut a), b) => {
                a.push(b);
                Node::Or(a)
            }
            (a, b) => Node::Or(vec![a, b]),
        })
    }

    /// The condition does not hold (also `!condition`).
    pub fn negate(self) -> Self {
        Condition::from_node(match self.node {
            Node::Not(inner) => *inner,
            node => Node::Not(Box::new(node)),
        })
    }

    /// Every condition holds; `None` for none.
    pub fn all(conditions: impl IntoIterator<Item = Condition<E>>) -> Option<Self> {
        conditions.into_iter().reduce(Condition::and)
    }

    /// At least one condition holds; `None` for none.
    pub fn any(conditions: impl IntoIterator<Item = Condition<E>>) -> Option<Self> {
        conditions.into_iter().reduce(Condition::or)
    }

    /// The first value that could not be encoded, as the error the request
    /// fails with.
    pub(crate) fn check(&self, entity: &str) -> Result<(), Error> {
        self.node.check(entity)
    }

    /// The expression text, names and values registered in `expr`.
    pub(crate) fn render(&self, expr: &mut Expr, entity: &str) -> Result<String, Error> {
        self.check(entity)?;
        Ok(self.node.render(expr))
    }
}

impl<E> BitAnd for Condition<E> {
    type Output = Condition<E>;
    fn bitand(self, rhs: Self) -> Self {
        self.and(rhs)
    }
}

impl<E> BitOr for Condition<E> {
    type Output = Condition<E>;
    fn bitor(self, rhs: Self) -> Self {
        self.or(rhs)
    }
}

impl<E> Not for Condition<E> {
    type Output = Condition<E>;
    fn not(self) -> Self {
        self.negate()
    }
}

impl Node {
    fn check(&self, entity: &str) -> Result<(), Error> {
        match self {
            Node::Invalid(path, problem) => {
                Err(Error::InvalidValue { entity: entity.to_string(), path: path.clone(), problem: problem.clone() })
            }
            Node::And(nodes) | Node::Or(nodes) => nodes.iter().try_for_each(|n| n.check(entity)),
            Node::Not(inner) => inner.check(entity),
            _ => Ok(()),
        }
    }

    pub(crate) fn render(&self, expr: &mut Expr) -> String {
        match self {
            Node::Cmp(a, op, b) => format!("{} {} {}", a.render(expr), op.text(), b.render(expr)),
            Node::Between(a, lo, hi) => format!("{} BETWEEN {} AND {}", a.render(expr), lo.render(expr), hi.render(expr)),
            Node::In(a, list) => {
                let a = a.render(expr);
                let list: Vec<String> = list.iter().map(|o| o.render(expr)).collect();
                format!("{a} IN ({})", list.join(", "))
            }
            Node::Exists(p) => format!("attribute_exists({})", expr.path(p)),
            Node::NotExists(p) => format!("attribute_not_exists({})", expr.path(p)),
            Node::BeginsWith(p, v) => format!("begins_with({}, {})", expr.path(p), v.render(expr)),
            Node::Contains(p, v) => format!("contains({}, {})", expr.path(p), v.render(expr)),
            Node::And(nodes) => join(nodes, " AND ", expr),
            Node::Or(nodes) => join(nodes, " OR ", expr),
            Node::Not(inner) => format!("NOT ({})", inner.render(expr)),
            Node::Invalid(..) => unreachable!("checked before rendering"),
        }
    }
}

fn join(nodes: &[Node], sep: &str, expr: &mut Expr) -> String {
    nodes.iter().map(|n| format!("({})", n.render(expr))).collect::<Vec<_>>().join(sep)
}

impl Operand {
    fn render(&self, expr: &mut Expr) -> String {
        match self {
            Operand::Path(p) => expr.path(p),
            Operand::Size(p) => format!("size({})", expr.path(p)),
            Operand::Value(v) => expr.value(v.clone()),
        }
    }
}

fn invalid(path: &Path, e: AttrError) -> Node {
    let mut at = e.path();
    if at.is_empty() {
        at = path.display();
    }
    Node::Invalid(at, e.problem.to_string())
}

/// Encodes a comparison value; `Err` carries the node to report.
fn operand<E, T, K>(field: &Field<E, T, K>, value: T) -> Result<Option<Operand>, Node> {
    match field.encode(&value) {
        Ok(v) => Ok(v.map(Operand::Value)),
        Err(e) => Err(invalid(&field.path(), e)),
    }
}

fn absent(path: &Path, what: &str) -> Node {
    Node::Invalid(
        path.display(),
        format!("{what} compares with an absent value (`None`); use `eq(None)`, `not_exists()` or `exists()`"),
    )
}

/// Conditions on one field.
impl<E, T, K> Field<E, T, K> {
    fn cmp(self, op: CmpOp, value: T) -> Condition<E> {
        let path = self.path();
        Condition::from_node(match operand(&self, value) {
            Err(node) => node,
            Ok(Some(v)) => Node::Cmp(Operand::Path(path), op, v),
            // `None` is how an absent attribute is stored.
            Ok(None) => match op {
                CmpOp::Eq => Node::NotExists(path),
                CmpOp::Ne => Node::Exists(path),
                _ => absent(&path, op.text()),
            },
        })
    }

    /// The item has this attribute.
    pub fn exists(self) -> Condition<E> {
        Condition::from_node(Node::Exists(self.path()))
    }

    /// The item lacks this attribute (or there is no item).
    pub fn not_exists(self) -> Condition<E> {
        Condition::from_node(Node::NotExists(self.path()))
    }

    /// Stored value `=` `value`. For an `Option` field, `eq(None)` means
    /// the attribute is absent.
    pub fn eq(self, value: impl IntoValue<T>) -> Condition<E> {
        self.cmp(CmpOp::Eq, value.into_value())
    }

    /// Stored value `<>` `value` (an absent attribute counts as different).
    pub fn ne(self, value: impl IntoValue<T>) -> Condition<E> {
        self.cmp(CmpOp::Ne, value.into_value())
    }

    /// Stored value `<` `value` (DynamoDB order: numbers numerically,
    /// strings and binaries by bytes).
    pub fn lt(self, value: impl IntoValue<T>) -> Condition<E> {
        self.cmp(CmpOp::Lt, value.into_value())
    }

    /// Stored value `<=` `value`.
    pub fn le(self, value: impl IntoValue<T>) -> Condition<E> {
        self.cmp(CmpOp::Le, value.into_value())
    }

    /// Stored value `>` `value`.
    pub fn gt(self, value: impl IntoValue<T>) -> Condition<E> {
        self.cmp(CmpOp::Gt, value.into_value())
    }

    /// Stored value `>=` `value`.
    pub fn ge(self, value: impl IntoValue<T>) -> Condition<E> {
        self.cmp(CmpOp::Ge, value.into_value())
    }

    /// `low <= stored value <= high`.
    pub fn between(self, low: impl IntoValue<T>, high: impl IntoValue<T>) -> Condition<E> {
        let path = self.path();
        Condition::from_node(match (operand(&self, low.into_value()), operand(&self, high.into_value())) {
            (Err(n), _) | (_, Err(n)) => n,
            (Ok(Some(lo)), Ok(Some(hi))) => Node::Between(Operand::Path(path), lo, hi),
            _ => absent(&path, "BETWEEN"),
        })
    }

    /// The stored value is one of `values` (1 to 100 of them).
    pub fn is_in<V: IntoValue<T>>(self, values: impl IntoIterator<Item = V>) -> Condition<E> {
        let path = self.path();
        let mut list = Vec::new();
        for v in values {
            match operand(&self, v.into_value()) {
                Err(n) => return Condition::from_node(n),
                Ok(Some(v)) => list.push(v),
                Ok(None) => return Condition::from_node(absent(&path, "IN")),
            }
        }
        Condition::from_node(if list.is_empty() || list.len() > MAX_IN_VALUES {
            Node::Invalid(
                path.display(),
                format!("IN takes 1 to {MAX_IN_VALUES} values, {} given", list.len()),
            )
        } else {
            Node::In(Operand::Path(path), list)
        })
    }

    fn cmp_field<K2>(self, op: CmpOp, other: Field<E, T, K2>) -> Condition<E> {
        let (a, b) = (self.path(), other.path());
        Condition::from_node(if a == b {
            // DynamoDB refuses it ("the first operand must be distinct").
            Node::Invalid(a.display(), format!("compared with itself (`{}`)", op.text()))
        } else {
            Node::Cmp(Operand::Path(a), op, Operand::Path(b))
        })
    }

    /// The stored value equals another field's (of the same type).
    pub fn eq_field<K2>(self, other: Field<E, T, K2>) -> Condition<E> {
        self.cmp_field(CmpOp::Eq, other)
    }

    /// The stored value differs from another field's.
    pub fn ne_field<K2>(self, other: Field<E, T, K2>) -> Condition<E> {
        self.cmp_field(CmpOp::Ne, other)
    }

    /// The stored value is less than another field's.
    pub fn lt_field<K2>(self, other: Field<E, T, K2>) -> Condition<E> {
        self.cmp_field(CmpOp::Lt, other)
    }

    /// The stored value is greater than another field's.
    pub fn gt_field<K2>(self, other: Field<E, T, K2>) -> Condition<E> {
        self.cmp_field(CmpOp::Gt, other)
    }
}

impl<E, T: TextField, K> Field<E, T, K> {
    /// The stored string starts with `prefix`.
    pub fn begins_with(self, prefix: impl Into<String>) -> Condition<E> {
        Condition::from_node(Node::BeginsWith(self.path(), Operand::Value(AttributeValue::S(prefix.into()))))
    }
}

impl<E, T: Contains, K> Field<E, T, K> {
    /// The stored string contains a substring, or the stored set or list
    /// contains an element.
    pub fn contains(self, element: impl IntoValue<T::Elem>) -> Condition<E> {
        let path = self.path();
        Condition::from_node(match T::encode_elem(&element.into_value()) {
            Ok(v) => Node::Contains(path, Operand::Value(v)),
            Err(e) => invalid(&path, e),
        })
    }
}

impl<E, T: HasSize, K> Field<E, T, K> {
    /// The size of the stored value: a string's or binary's length in
    /// bytes, a set's, list's or map's number of elements.
    pub fn size(self) -> Size<E> {
        Size { path: self.path(), _entity: PhantomData }
    }
}

/// `size(field)`, to compare; see [`Field::size`].
pub struct Size<E> {
    path: Path,
    _entity: PhantomData<fn() -> E>,
}

impl<E> fmt::Debug for Size<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "size({})", self.path.display())
    }
}

impl<E> Size<E> {
    fn cmp(self, op: CmpOp, n: u64) -> Condition<E> {
        Condition::from_node(Node::Cmp(Operand::Size(self.path), op, Operand::Value(AttributeValue::N(n.to_string()))))
    }
    /// `size = n`.
    pub fn eq(self, n: u64) -> Condition<E> {
        self.cmp(CmpOp::Eq, n)
    }
    /// `size <> n`.
    pub fn ne(self, n: u64) -> Condition<E> {
        self.cmp(CmpOp::Ne, n)
    }
    /// `size < n`.
    pub fn lt(self, n: u64) -> Condition<E> {
        self.cmp(CmpOp::Lt, n)
    }
    /// `size <= n`.
    pub fn le(self, n: u64) -> Condition<E> {
        self.cmp(CmpOp::Le, n)
    }
    /// `size > n`.
    pub fn gt(self, n: u64) -> Condition<E> {
        self.cmp(CmpOp::Gt, n)
    }
    /// `size >= n`.
    pub fn ge(self, n: u64) -> Condition<E> {
        self.cmp(CmpOp::Ge, n)
    }
    /// `low <= size <= high`.
    pub fn between(self, low: u64, high: u64) -> Condition<E> {
        Condition::from_node(Node::Between(
            Operand::Size(self.path),
            Operand::Value(AttributeValue::N(low.to_string())),
            Operand::Value(AttributeValue::N(high.to_string())),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::attr::AttrValue;

    struct E;

    fn field<T: AttrValue>(attr: &'static str) -> Field<E, T> {
        Field::__new(attr, attr, T::to_attr_opt)
    }

    fn render(c: &Condition<E>) -> (String, HashMap<String, String>, HashMap<String, AttributeValue>) {
        let mut expr = Expr::new();
        let text = c.render(&mut expr, "E").unwrap();
        let (names, values) = expr.into_maps();
        (text, names.unwrap_or_default(), values.unwrap_or_default())
    }

    #[test]
    fn comparisons_use_placeholders_for_names_and_values() {
        let status = field::<String>("status");
        let (text, names, values) = render(&status.eq("OPEN' OR '1'='1"));
        assert_eq!(text, "#n0 = :v0");
        assert_eq!(names["#n0"], "status");
        assert_eq!(values[":v0"], AttributeValue::S("OPEN' OR '1'='1".into()));

        let age = field::<u32>("age");
        for (c, op) in [
            (age.ne(3u32), "<>"),
            (age.lt(3u32), "<"),
            (age.le(3u32), "<="),
            (age.gt(3u32), ">"),
            (age.ge(3u32), ">="),
        ] {
            let (text, _, values) = render(&c);
            assert_eq!(text, format!("#n0 {op} :v0"));
            assert_eq!(values[":v0"], AttributeValue::N("3".into()));
        }
        let (text, _, values) = render(&age.between(1u32, 9u32));
        assert_eq!(text, "#n0 BETWEEN :v0 AND :v1");
        assert_eq!(values.len(), 2);
        let (text, _, values) = render(&age.is_in([1u32, 2, 3]));
        assert_eq!(text, "#n0 IN (:v0, :v1, :v2)");
        assert_eq!(values.len(), 3);
    }

    #[test]
    fn combinators_parenthesise_and_flatten() {
        let a = field::<u32>("a");
        let name = field::<String>("name");
        let c = (a.gt(1u32) & name.begins_with("x") & a.exists()) | !name.not_exists();
        let (text, names, values) = render(&c);
        assert_eq!(
            text,
            "((#n0 > :v0) AND (begins_with(#n1, :v1)) AND (attribute_exists(#n0))) OR (NOT (attribute_not_exists(#n1)))"
        );
        assert_eq!(names.len(), 2);
        assert_eq!(values.len(), 2);
        // Double negation folds.
        assert_eq!(render(&!!a.exists()).0, "attribute_exists(#n0)");
        assert!(Condition::<E>::all([]).is_none());
        let any = Condition::any([a.eq(1u32), a.eq(2u32), a.eq(3u32)]).unwrap();
        assert_eq!(render(&any).0, "(#n0 = :v0) OR (#n0 = :v1) OR (#n0 = :v2)");
    }

    #[test]
    fn option_fields_compare_none_as_absent() {
        let team = field::<Option<String>>("team");
        assert_eq!(render(&team.eq(None)).0, "attribute_not_exists(#n0)");
        assert_eq!(render(&team.ne(None)).0, "attribute_exists(#n0)");
        let (text, _, values) = render(&team.eq("red"));
        assert_eq!(text, "#n0 = :v0");
        assert_eq!(values[":v0"], AttributeValue::S("red".into()));
        assert_eq!(render(&team.eq(Some("red".to_string()))).2, values);
        assert_eq!(render(&team.eq("red".to_string())).2, values);
        let err = team.lt(None).render(&mut Expr::new(), "User").unwrap_err();
        assert!(matches!(err, Error::InvalidValue { ref path, .. } if path == "team"), "{err}");
    }

    #[test]
    fn contains_size_and_set_elements() {
        let tags = field::<HashSet<String>>("tags");
        let (text, _, values) = render(&tags.contains("x"));
        assert_eq!(text, "contains(#n0, :v0)");
        assert_eq!(values[":v0"], AttributeValue::S("x".into()));
        let nums = field::<HashSet<u32>>("nums");
        assert_eq!(render(&nums.contains(7u32)).2[":v0"], AttributeValue::N("7".into()));
        let list = field::<Vec<String>>("list");
        assert_eq!(render(&list.contains("y")).2[":v0"], AttributeValue::S("y".into()));
        let (text, _, values) = render(&tags.size().between(1, 3));
        assert_eq!(text, "size(#n0) BETWEEN :v0 AND :v1");
        assert_eq!(values[":v1"], AttributeValue::N("3".into()));
        let other = field::<String>("other");
        let name = field::<String>("name");
        assert_eq!(render(&name.eq_field(other)).0, "#n0 = #n1");
        assert_eq!(render(&name.lt_field(other)).0, "#n0 < #n1");
        let err = name.eq_field(name).render(&mut Expr::new(), "E").unwrap_err();
        assert!(err.to_string().contains("compared with itself"), "{err}");
    }

    #[test]
    fn values_that_cannot_be_stored_are_refused() {
        let x = field::<f64>("x");
        let err = (x.gt(1.0) & x.lt(f64::NAN)).render(&mut Expr::new(), "Point").unwrap_err();
        match err {
            Error::InvalidValue { entity, path, problem } => {
                assert_eq!((entity.as_str(), path.as_str()), ("Point", "x"));
                assert!(problem.contains("NaN"), "{problem}");
            }
            other => panic!("{other:?}"),
        }
        let err = x.is_in(Vec::<f64>::new()).render(&mut Expr::new(), "Point").unwrap_err();
        assert!(err.to_string().contains("IN takes 1 to 100 values, 0 given"), "{err}");
        let err = x.is_in((0..101).map(f64::from)).render(&mut Expr::new(), "Point").unwrap_err();
        assert!(err.to_string().contains("101 given"), "{err}");
    }
}
