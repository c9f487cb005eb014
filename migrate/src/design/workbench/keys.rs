//! Key templates from what a model shows of them: the facets' key aliases
//! and the keys of the sample items.
//!
//! Published models write aliases for people, not for a parser
//! (`ITEMS#ItemID`, `#METADATA#playerID`, `USER#<id>`, `AccountId`, or
//! just `PK`), and their sample keys often hold ids that no attribute
//! repeats (`c#12345`). So a key is read part by part — a key's parts are
//! the text between its delimiters — and each part becomes literal text, an
//! attribute whose value it is, or a *key-only* field: a value that lives
//! only inside the key, named after the alias token or the label before it.

use std::collections::{BTreeMap, BTreeSet};

use singletable::template::{grammar, Segment, Template};
use singletable::{AttributeValue, KeyKind};

use crate::raw::RawItem;

/// Characters that separate the parts of a key wherever they appear.
const STRONG: [char; 3] = ['#', '|', '~'];
/// Characters that separate parts only after a label (`User:alice`):
/// they also appear inside values (times, paths), which must stay whole.
const WEAK: [char; 2] = [':', '/'];

/// An attribute that may fill a placeholder, and how it is written.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    pub attr: String,
    pub kind: KeyKind,
    /// For a key-only field: the label it followed (`=` for a whole key,
    /// "" for none). It fills only parts after the same label, since the
    /// same digits after another label (`o#12345`, `c#12345`) are another
    /// id. `None` for attributes the items hold.
    pub label: Option<String>,
}

impl Candidate {
    pub fn attribute(attr: &str, kind: KeyKind) -> Candidate {
        Candidate { attr: attr.to_string(), kind, label: None }
    }
}

/// A key cut at its delimiters: `parts.len() == delims.len() + 1`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Parts<'a> {
    pub parts: Vec<&'a str>,
    pub delims: Vec<char>,
}

impl<'a> Parts<'a> {
    pub fn of(key: &'a str) -> Parts<'a> {
        let seps: Vec<char> = if key.contains(STRONG) {
            STRONG.to_vec()
        } else {
            WEAK.iter().copied().filter(|w| key.split_once(*w).is_some_and(|(head, _)| is_label(head))).take(1).collect()
        };
        let (mut parts, mut delims, mut start) = (Vec::new(), Vec::new(), 0);
        for (i, c) in key.char_indices() {
            if seps.contains(&c) {
                parts.push(&key[start..i]);
                delims.push(c);
                start = i + c.len_utf8();
            }
        }
        parts.push(&key[start..]);
        Parts { parts, delims }
    }

    /// Parts `from..=to` with the delimiters between them.
    fn join(&self, from: usize, to: usize) -> String {
        let mut out = self.parts[from].to_string();
        for i in from + 1..=to {
            out.push(self.delims[i - 1]);
            out.push_str(self.parts[i]);
        }
        out
    }

    /// The key's leading label and the delimiter after it (`c#`, `User:`,
    /// `#METADATA#`), the whole key when it is one label (`meta`), or ""
    /// when it starts with a value.
    pub fn head(&self) -> String {
        let mut out = String::new();
        for (i, part) in self.parts.iter().enumerate() {
            out.push_str(part);
            if !part.is_empty() {
                if !is_label(part) {
                    return String::new();
                }
                if let Some(d) = self.delims.get(i) {
                    out.push(*d);
                }
                return out;
            }
            if let Some(d) = self.delims.get(i) {
                out.push(*d);
            }
        }
        out
    }

    /// The key with its values replaced by `*` (labels alternate with
    /// values: `u#12345#follower` -> `u#*#follower`, `FEATURE#CAMERAS`
    /// -> `FEATURE#*`), and the labels kept.
    pub fn signature(&self) -> (String, Vec<String>) {
        let (mut out, mut labels, mut expect_label) = (String::new(), Vec::new(), true);
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push(self.delims[i - 1]);
            }
            if part.is_empty() {
                continue;
            }
            if is_label(part) && expect_label {
                out.push_str(part);
                labels.push(part.to_string());
                expect_label = false;
            } else {
                out.push('*');
                expect_label = true;
            }
        }
        (out, labels)
    }
}

/// Text that names a kind of item rather than one item: letters and no digit.
pub(super) fn is_label(part: &str) -> bool {
    !part.chars().any(|c| c.is_ascii_digit()) && part.chars().any(char::is_alphabetic)
}

fn has_digit(part: &str) -> bool {
    part.chars().any(|c| c.is_ascii_digit())
}

/// Whether the template grammar can hold `name` between braces.
pub(super) fn placeholder_ok(name: &str) -> bool {
    !name.trim().is_empty() && !name.contains([':', '{', '}'])
}

/// `text` as an identifier: letters, digits and `_`, not starting with a
/// digit. Key-only fields get such names, and every field's Rust name is
/// one, so a derive could declare it.
pub(super) fn ident(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').to_string();
    match out.chars().next() {
        None => "field".into(),
        Some(c) if c.is_ascii_digit() => format!("f_{out}"),
        Some(_) => out,
    }
}

/// Gives every placeholder of `t` an identifier as its Rust field name;
/// the attribute (what the source names) stays as stored.
pub(super) fn with_field_names(mut t: Template) -> Template {
    for seg in t.segments.to_mut() {
        if let Segment::Field(f) = seg {
            let name = f.attr.to_string();
            let is_ident = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            f.field = if is_ident { name.into() } else { ident(&name).into() };
        }
    }
    t
}

/// How a value would be written into a key, or `None` when it cannot be
/// a key part of that kind.
pub(super) fn key_text(value: &AttributeValue, kind: KeyKind, pad: Option<u8>) -> Option<String> {
    match (kind, value) {
        (KeyKind::Str, AttributeValue::S(s)) if !s.is_empty() && pad.is_none() => Some(s.clone()),
        (KeyKind::Bool, AttributeValue::Bool(b)) if pad.is_none() => Some(b.to_string()),
        (KeyKind::Int, AttributeValue::N(n)) => {
            let digits = n.strip_prefix('-').unwrap_or(n);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || (digits.len() > 1 && digits.starts_with('0')) {
                return None;
            }
            match pad {
                None => Some(n.clone()),
                Some(w) if !n.starts_with('-') && digits.len() <= w as usize => {
                    Some(format!("{}{digits}", "0".repeat(w as usize - digits.len())))
                }
                Some(_) => None,
            }
        }
        _ => None,
    }
}

pub(super) fn key_str<'a>(item: &'a RawItem, attr: &str) -> Option<&'a str> {
    match item.get(attr) {
        Some(AttributeValue::S(s)) => Some(s),
        _ => None,
    }
}

/// Why the sample keys of a group of items have no single template.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Miss {
    /// The keys differ in form (number of parts, delimiters, no template fits).
    Shape,
    /// A label varies where a label is expected (`User:a` / `Room:b`,
    /// `u#1#follower` / `u#1#following`): the items are of several kinds.
    Kinds,
}

/// What names a key-only field: the fields matched so far in the table,
/// keyed by the label before them (or `=attr` for a whole key), and the
/// names no field may take.
pub(super) struct Naming<'a> {
    pub learned: &'a BTreeMap<String, String>,
    /// The table's key attributes and the entity-type attribute.
    pub reserved: &'a BTreeSet<String>,
    /// The indexes' key attributes: no new field takes their names, but a
    /// learned one may (an id another entity holds in an index key).
    pub index_attrs: &'a BTreeSet<String>,
}

/// Whether a key attribute's name says nothing about what it holds (`PK`,
/// `GSI1-SK`, `gsi2pk`): such keys are overloaded, and a constant word in
/// them is literal text. A key named for its content (`NextReminderDate`,
/// `escalated_to`) holds that attribute's values, even constant ones.
pub(super) fn generic_key_name(attr: &str) -> bool {
    let n: String = attr.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_lowercase();
    let mut s = n.as_str();
    for prefix in ["gsi", "lsi"] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest;
            break;
        }
    }
    let s = s.trim_matches(|c: char| c.is_ascii_digit());
    matches!(s, "pk" | "sk" | "hk" | "rk" | "hash" | "range" | "hashkey" | "rangekey" | "partitionkey" | "sortkey")
}

/// One entity's sample items while its keys are read: the items, with the
/// values of key-only fields added as they are found, and what may fill a
/// placeholder.
#[derive(Debug, Clone)]
pub(super) struct Rows {
    pub items: Vec<RawItem>,
    pub candidates: Vec<Candidate>,
    /// Fields found only inside keys, in order.
    pub key_only: Vec<String>,
    /// (label before a part or `=attr`, attribute that filled it).
    pub learned: Vec<(String, String)>,
}

impl Rows {
    pub fn kind_of(&self, name: &str) -> Option<KeyKind> {
        self.candidates.iter().find(|c| c.attr == name).map(|c| c.kind)
    }

    fn add_key_only(&mut self, name: &str, rows: &[usize], values: &[String], label: &str) {
        for (r, v) in rows.iter().zip(values) {
            self.items[*r].insert(name.to_string(), AttributeValue::S(v.clone()));
        }
        if self.kind_of(name).is_none() {
            self.candidates.push(Candidate { attr: name.to_string(), kind: KeyKind::Str, label: Some(label.to_string()) });
        }
        if !self.key_only.iter().any(|k| k == name) {
            self.key_only.push(name.to_string());
        }
    }

    /// Whether `name` may hold `values` in `rows`: no row holds something else.
    fn agrees(&self, name: &str, rows: &[usize], values: &[String]) -> bool {
        rows.iter().zip(values).all(|(r, v)| match self.items[*r].get(name) {
            None => true,
            Some(AttributeValue::S(s)) => s == v,
            Some(_) => false,
        })
    }

    /// Parses `source`, placeholders resolved against the candidates; a
    /// name that is none of them is a string (a key attribute as its own
    /// field, or a key-only field not added yet).
    fn template(&self, source: &str) -> Option<Template> {
        Template::parse(source, |n| Some((self.kind_of(n).unwrap_or(KeyKind::Str), false))).ok().map(with_field_names)
    }

    fn renders(&self, t: &Template, attr: &str, rows: &[usize]) -> bool {
        rows.iter().all(|r| {
            let item = &self.items[*r];
            key_str(item, attr).is_some_and(|k| t.render_item(item, "", attr).ok().as_deref() == Some(k))
        })
    }
}

/// A key-only field's name: a whole key is its attribute's own field
/// (`NextReminderDate` -> `{NextReminderDate}`) unless another entity
/// showed which attribute it is; a part after a label is `<label>_id`
/// unless another entity showed the attribute after that label.
#[allow(clippy::too_many_arguments)]
fn key_only_name(
    attr: &str,
    whole: bool,
    label: Option<&str>,
    at: usize,
    rows: &[usize],
    values: &[String],
    st: &Rows,
    pending: &[(String, Vec<String>, String)],
    naming: &Naming,
) -> String {
    let learned = if whole { naming.learned.get(&format!("={attr}")) } else { label.and_then(|l| naming.learned.get(l)) };
    let base = match (learned, label) {
        (Some(a), _) => a.clone(),
        (None, _) if whole && placeholder_ok(attr) => return attr.to_string(),
        (None, _) if whole => ident(attr),
        (None, Some(label)) => format!("{}_id", ident(label).to_lowercase()),
        (None, None) => format!("{}_{}", ident(attr).to_lowercase(), at + 1),
    };
    for n in 1.. {
        let name = if n == 1 { base.clone() } else { format!("{base}_{n}") };
        if naming.reserved.contains(&name) || (naming.index_attrs.contains(&name) && !(n == 1 && learned.is_some())) {
            continue;
        }
        match pending.iter().find(|(p, _, _)| *p == name) {
            Some((_, held, _)) if held == values => return name,
            Some(_) => continue,
            None if st.agrees(&name, rows, values) => return name,
            None => continue,
        }
    }
    unreachable!("some numbered name is free")
}

/// Reads `attr`'s template from the sample keys of `rows`, part by part;
/// on success the key-only fields it found are added to `st`.
pub(super) fn read_parts(attr: &str, rows: &[usize], st: &mut Rows, naming: &Naming) -> Result<Template, Miss> {
    let keys: Vec<String> = rows.iter().map(|r| key_str(&st.items[*r], attr).map(str::to_string)).collect::<Option<_>>().ok_or(Miss::Shape)?;
    if keys.is_empty() {
        return Err(Miss::Shape);
    }
    let splits: Vec<Parts> = keys.iter().map(|k| Parts::of(k)).collect();
    let delims = splits[0].delims.clone();
    if splits.iter().any(|s| s.delims != delims) {
        return Err(Miss::Shape);
    }
    let n = splits[0].parts.len();
    let mut pieces: Vec<grammar::Piece> = Vec::new();
    let literal = |pieces: &mut Vec<grammar::Piece>, text: &str| match pieces.last_mut() {
        Some(grammar::Piece::Literal(t)) => t.push_str(text),
        _ if text.is_empty() => {}
        _ => pieces.push(grammar::Piece::Literal(text.to_string())),
    };
    let mut pending: Vec<(String, Vec<String>, String)> = Vec::new();
    let mut learned = Vec::new();
    // A whole key named for its content is that attribute's own value.
    if n == 1 && !generic_key_name(attr) && placeholder_ok(attr) {
        let template = st.template(&grammar::unparse(&[grammar::Piece::Field { name: attr.to_string(), pad: None, offset: 0 }]));
        return template.filter(|t| st.renders(t, attr, rows)).ok_or(Miss::Shape);
    }
    let (mut label, mut expect_label, mut j) = (None::<String>, true, 0);
    while j < n {
        if j > 0 {
            literal(&mut pieces, &delims[j - 1].to_string());
        }
        let here = if n == 1 { "=" } else { label.as_deref().unwrap_or("") };
        if let Some((name, pad, end)) = match_candidate(&splits, j, rows, st, here) {
            if n == 1 {
                learned.push((format!("={attr}"), name.clone()));
            } else if let Some(l) = &label {
                learned.push((l.clone(), name.clone()));
            }
            pieces.push(grammar::Piece::Field { name, pad, offset: 0 });
            (label, expect_label, j) = (None, true, end + 1);
            continue;
        }
        let parts: Vec<&str> = splits.iter().map(|s| s.parts[j]).collect();
        let constant = parts.iter().all(|p| *p == parts[0]);
        if constant && !has_digit(parts[0]) {
            literal(&mut pieces, parts[0]);
            if is_label(parts[0]) {
                (label, expect_label) = (Some(parts[0].to_string()), false);
            }
            j += 1;
            continue;
        }
        if n > 1 && !constant && expect_label && parts.iter().all(|p| is_label(p)) {
            return Err(Miss::Kinds);
        }
        if parts.iter().any(|p| p.is_empty()) {
            return Err(Miss::Shape);
        }
        let values: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
        let name = key_only_name(attr, n == 1, label.as_deref(), j, rows, &values, st, &pending, naming);
        if name != attr && !pending.iter().any(|(p, _, _)| *p == name) {
            pending.push((name.clone(), values, here.to_string()));
        }
        pieces.push(grammar::Piece::Field { name, pad: None, offset: 0 });
        (label, expect_label, j) = (None, true, j + 1);
    }
    let mut trial = st.clone();
    for (name, values, here) in &pending {
        trial.add_key_only(name, rows, values, here);
    }
    let template = trial.template(&grammar::unparse(&pieces)).ok_or(Miss::Shape)?;
    if !trial.renders(&template, attr, rows) {
        return Err(Miss::Shape);
    }
    trial.learned.extend(learned);
    *st = trial;
    Ok(template)
}

/// The candidate whose value is parts `j..=end` of every key, longest
/// span first: its name, zero padding and `end`.
fn match_candidate(splits: &[Parts], j: usize, rows: &[usize], st: &Rows, here: &str) -> Option<(String, Option<u8>, usize)> {
    let n = splits[0].parts.len();
    for end in (j..n).rev() {
        let texts: Vec<String> = splits.iter().map(|s| s.join(j, end)).collect();
        // A value may not hold the delimiter that ends it.
        let next = splits[0].delims.get(end).copied();
        if next.is_some_and(|d| texts.iter().any(|t| t.contains(d))) {
            continue;
        }
        for c in st.candidates.iter().filter(|c| c.label.as_deref().map_or(true, |l| l == here)) {
            let pads: Vec<Option<u8>> = match c.kind {
                KeyKind::Int => {
                    let w = texts[0].len();
                    let same = texts.iter().all(|t| t.len() == w);
                    std::iter::once(None).chain((same && w <= grammar::MAX_PAD as usize).then_some(Some(w as u8))).collect()
                }
                _ => vec![None],
            };
            for pad in pads {
                let fits = rows.iter().zip(&texts).all(|(r, t)| {
                    st.items[*r].get(&c.attr).and_then(|v| key_text(v, c.kind, pad)).as_deref() == Some(t.as_str())
                });
                if fits {
                    return Some((c.attr.clone(), pad, end));
                }
            }
        }
    }
    None
}

/// Reads `attr`'s template from the sample keys of `rows`: part by part,
/// else character by character from the candidates' values (keys whose
/// parts differ in number, e.g. values holding a delimiter).
pub(super) fn read_samples(attr: &str, rows: &[usize], st: &mut Rows, naming: &Naming) -> Result<Template, Miss> {
    match read_parts(attr, rows, st, naming) {
        Err(Miss::Shape) => {
            let keys: Vec<&str> = rows.iter().filter_map(|r| key_str(&st.items[*r], attr)).collect();
            let items: Vec<&RawItem> = rows.iter().map(|r| &st.items[*r]).collect();
            if keys.len() != rows.len() {
                return Err(Miss::Shape);
            }
            let resolve = |n: &str| st.kind_of(n).map(|k| (k, false));
            let source = infer_template(&keys, &items, &st.candidates, &resolve).ok_or(Miss::Shape)?;
            st.template(&source).ok_or(Miss::Shape)
        }
        other => other,
    }
}

/// What a facet's key alias says.
pub(super) enum Alias {
    /// A template to use, and the rows whose keys do not have its form
    /// (a minority: typos in hand-written samples), to leave out.
    Template(Template, Vec<usize>),
    /// Nothing the samples do not say better (`PK` for the key `PK`).
    Silent,
    /// Not readable as a template, or not one of the sample keys; the
    /// reason is for a warning.
    Unfit(String),
}

/// `<name>` placeholders (a common way to write them by hand) as `{name}`.
fn angle_to_braces(alias: &str) -> String {
    let mut out = String::new();
    let mut rest = alias;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        match after.find('>') {
            Some(close) if close > 0 && after[..close].chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') => {
                out.push_str(&rest[..open]);
                out.push('{');
                out.push_str(&after[..close]);
                out.push('}');
                rest = &after[close + 1..];
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether an alias token names a field rather than literal text: a known
/// attribute, or how people write field names (`playerID`, `AccountId`,
/// `user_id`); an upper-case word (`ITEMS`, `METADATA`) is a label.
fn names_field(token: &str, known: &dyn Fn(&str) -> bool) -> bool {
    if token.is_empty() {
        return false;
    }
    if known(token) {
        return true;
    }
    let lower = token.chars().any(|c| c.is_lowercase());
    let upper = token.chars().any(|c| c.is_uppercase());
    (lower && (upper || token.contains('_'))) || (token.ends_with("ID") && token.len() > 2)
}

/// One step of aligning alias tokens with key parts.
#[derive(Debug, Clone)]
enum Step {
    /// Literal text from the keys (a label the alias shows, or leaves out).
    Literal(String),
    /// A field named by the alias, filled by the key part at this step.
    Field(String),
}

/// Aligns alias tokens `a..` with key parts `k..`: a token is the same
/// label as the part, or a field whose value is the part, or a field
/// whose value follows a label the alias leaves out (`AccountId` for
/// `ACC#123`).
fn align(tokens: &[&str], a: usize, splits: &[Parts], k: usize, known: &dyn Fn(&str) -> bool) -> Option<Vec<Step>> {
    let n = splits[0].parts.len();
    if a == tokens.len() {
        return (k == n).then(Vec::new);
    }
    if k >= n {
        return None;
    }
    let t = tokens[a];
    let parts: Vec<&str> = splits.iter().map(|s| s.parts[k]).collect();
    let constant = parts.iter().all(|p| *p == parts[0]);
    let then = |step: Vec<Step>, a2: usize, k2: usize| {
        align(tokens, a2, splits, k2, known).map(|mut rest| {
            let mut steps = step;
            steps.append(&mut rest);
            steps
        })
    };
    if constant && parts[0] == t {
        if let Some(s) = then(vec![Step::Literal(t.to_string())], a + 1, k + 1) {
            return Some(s);
        }
    }
    if names_field(t, known) {
        if parts.iter().all(|p| !p.is_empty()) {
            if let Some(s) = then(vec![Step::Field(t.to_string())], a + 1, k + 1) {
                return Some(s);
            }
        }
        let label_left_out = constant && is_label(parts[0]) && k + 1 < n && splits.iter().all(|s| !s.parts[k + 1].is_empty());
        if label_left_out {
            return then(vec![Step::Literal(parts[0].to_string()), Step::Field(t.to_string())], a + 1, k + 2);
        }
        return None;
    }
    if constant {
        // A label spelled differently in the alias (`#METEADATA#`): the keys say how it is stored.
        return then(vec![Step::Literal(parts[0].to_string())], a + 1, k + 1);
    }
    if parts.iter().all(|p| !p.is_empty()) {
        return then(vec![Step::Field(t.to_string())], a + 1, k + 1);
    }
    None
}

/// Reads a facet's key alias for `attr`, checked against the sample keys
/// of `rows` (none: the alias alone). Fields the alias names that no item
/// holds get their values from the keys (key-only fields, added to `st`).
/// Warnings say what was guessed.
pub(super) fn read_alias(attr: &str, alias: &str, rows: &[usize], st: &mut Rows, warnings: &mut Vec<String>) -> Alias {
    if alias.trim().is_empty() || alias.trim() == attr {
        return Alias::Silent;
    }
    // An alias the sample keys show verbatim is literal text, whatever it
    // looks like (an exported template may hold `<sub_feature>`).
    let keys: Vec<&str> = rows.iter().filter_map(|r| key_str(&st.items[*r], attr)).collect();
    if !rows.is_empty() && keys.len() == rows.len() && keys.iter().all(|k| *k == alias) && !alias.contains(['{', '}']) {
        if let Some(t) = st.template(&grammar::unparse(&[grammar::Piece::Literal(alias.to_string())])) {
            return Alias::Template(t, Vec::new());
        }
    }
    // `<id>` is a placeholder only in an alias without braces: with
    // braces, the alias is already in template syntax.
    let braced = if alias.contains(['{', '}']) { alias.to_string() } else { angle_to_braces(alias) };
    if braced.contains(['{', '}']) {
        return read_template_alias(attr, alias, &braced, rows, st, warnings);
    }
    let known = |n: &str| st.kind_of(n).is_some();
    let alias_parts = Parts::of(alias);
    if rows.is_empty() {
        // Nothing to check against: labels stay, field names become fields.
        let mut pieces = Vec::new();
        for (i, t) in alias_parts.parts.iter().enumerate() {
            if i > 0 {
                pieces.push(grammar::Piece::Literal(alias_parts.delims[i - 1].to_string()));
            }
            if names_field(t, &known) {
                pieces.push(grammar::Piece::Field { name: field_name(t, &known), pad: None, offset: 0 });
            } else if !t.is_empty() {
                pieces.push(grammar::Piece::Literal(t.to_string()));
            }
        }
        let source = grammar::unparse(&merge_literals(pieces));
        return match st.template(&source) {
            Some(t) if t.is_constant() => {
                warnings.push(format!(
                    "`{attr}` alias `{alias}` has no placeholder and no sample item shows its keys: read as the constant key `{}`",
                    t.source
                ));
                Alias::Template(t, Vec::new())
            }
            Some(t) => {
                warnings.push(format!("`{attr}` alias `{alias}` read as the template `{}` (no sample item to check it against)", t.source));
                for f in t.fields() {
                    if st.kind_of(&f.attr).is_none() {
                        st.candidates.push(Candidate::attribute(&f.attr, KeyKind::Str));
                        st.key_only.push(f.attr.to_string());
                    }
                }
                Alias::Template(t, Vec::new())
            }
            None => Alias::Unfit(format!("`{attr}` alias `{alias}` is not a template")),
        };
    }
    let unfit = || Alias::Unfit(format!("`{attr}` alias `{alias}` is not a template of the sample keys"));
    let Some(all_keys) = rows.iter().map(|r| key_str(&st.items[*r], attr).map(str::to_string)).collect::<Option<Vec<_>>>() else {
        return Alias::Unfit(format!("`{attr}` alias `{alias}`: some sample items have no `{attr}` string"));
    };
    // The alias is read against the keys of the most common form; a
    // minority of keys of another form are typos, to leave out.
    let forms: Vec<Vec<char>> = all_keys.iter().map(|k| Parts::of(k).delims).collect();
    let common = forms.iter().max_by_key(|f| forms.iter().filter(|g| g == f).count()).expect("rows is not empty").clone();
    let (fit, odd): (Vec<usize>, Vec<usize>) = (0..rows.len()).partition(|i| forms[*i] == common);
    if fit.len() * 2 <= rows.len() {
        return unfit();
    }
    let keys: Vec<String> = fit.iter().map(|i| all_keys[*i].clone()).collect();
    let odd: Vec<usize> = odd.iter().map(|i| rows[*i]).collect();
    let rows: Vec<usize> = fit.iter().map(|i| rows[*i]).collect();
    let rows = rows.as_slice();
    let splits: Vec<Parts> = keys.iter().map(|k| Parts::of(k)).collect();
    let Some(steps) = align(&alias_parts.parts, 0, &splits, 0, &known) else {
        return unfit();
    };
    // Each step stands for one key part, in order; delimiters come from the keys.
    let mut pieces = Vec::new();
    let mut fields: Vec<(String, usize, String)> = Vec::new();
    for (at, step) in steps.iter().enumerate() {
        if at > 0 {
            pieces.push(grammar::Piece::Literal(splits[0].delims[at - 1].to_string()));
        }
        match step {
            Step::Literal(text) => pieces.push(grammar::Piece::Literal(text.clone())),
            Step::Field(name) => {
                let name = field_name(name, &known);
                let label = match at.checked_sub(1).map(|b| &steps[b]) {
                    _ if steps.len() == 1 => "=".to_string(),
                    Some(Step::Literal(l)) if is_label(l) => l.clone(),
                    _ => String::new(),
                };
                fields.push((name.clone(), at, label));
                pieces.push(grammar::Piece::Field { name, pad: None, offset: 0 });
            }
        }
    }
    // An integer attribute keeps the zero padding the keys show.
    for (name, at, _) in &fields {
        if st.kind_of(name) != Some(KeyKind::Int) {
            continue;
        }
        let texts: Vec<&str> = splits.iter().map(|s| s.parts[*at]).collect();
        let w = texts[0].len();
        let padded = texts.iter().all(|t| t.len() == w) && texts[0].starts_with('0') && w > 1 && w <= grammar::MAX_PAD as usize;
        if padded {
            for p in pieces.iter_mut() {
                if let grammar::Piece::Field { name: n, pad, .. } = p {
                    if n == name {
                        *pad = Some(w as u8);
                    }
                }
            }
        }
    }
    let source = grammar::unparse(&merge_literals(pieces));
    // Values: from the items where they hold the field, else from the keys.
    let mut disagree: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut trial = st.clone();
    for (name, at, label) in &fields {
        let values: Vec<String> = splits.iter().map(|s| s.parts[*at].to_string()).collect();
        let held = rows.iter().any(|r| trial.items[*r].contains_key(name));
        if !held && trial.kind_of(name).is_none() {
            trial.add_key_only(name, rows, &values, label);
            continue;
        }
        let kind = trial.kind_of(name).unwrap_or(KeyKind::Str);
        for ((r, v), key) in rows.iter().zip(&values).zip(&keys) {
            let Some(have) = trial.items[*r].get(name).cloned() else {
                if kind == KeyKind::Str {
                    // Declared, but this item shows it only inside its key.
                    trial.items[*r].insert(name.clone(), AttributeValue::S(v.clone()));
                    if !trial.key_only.contains(name) {
                        trial.key_only.push(name.clone());
                    }
                } else {
                    disagree.entry(name.clone()).or_default().push(format!("absent from the item whose key is `{key}`"));
                }
                continue;
            };
            let pad = u8::try_from(v.len()).ok();
            let fits = [None, pad].into_iter().any(|p| key_text(&have, kind, p).as_deref() == Some(v.as_str()));
            if !fits {
                let shown = key_text(&have, kind, None).unwrap_or_else(|| format!("{have:?}"));
                disagree.entry(name.clone()).or_default().push(format!("`{shown}` in the item whose key is `{key}`"));
            }
        }
    }
    let Some(template) = trial.template(&source) else {
        return unfit();
    };
    warnings.push(format!("`{attr}` alias `{alias}` read as the template `{}`, checked against the sample keys", template.source));
    for (name, what) in disagree {
        warnings.push(format!("`{attr}` template `{}`: the sample items disagree with their keys about `{name}`: {}", template.source, what.join("; ")));
    }
    *st = trial;
    Alias::Template(template, odd)
}

/// A field name from an alias token: the attribute it names, else the
/// token as an identifier.
fn field_name(token: &str, known: &dyn Fn(&str) -> bool) -> String {
    if known(token) && placeholder_ok(token) {
        token.to_string()
    } else {
        ident(token)
    }
}

fn merge_literals(pieces: Vec<grammar::Piece>) -> Vec<grammar::Piece> {
    let mut out: Vec<grammar::Piece> = Vec::new();
    for p in pieces {
        match (out.last_mut(), p) {
            (Some(grammar::Piece::Literal(a)), grammar::Piece::Literal(b)) => a.push_str(&b),
            (_, grammar::Piece::Literal(b)) if b.is_empty() => {}
            (_, p) => out.push(p),
        }
    }
    out
}

/// An alias with placeholders (`ORG#{org_id}`, or `USER#<id>` rewritten):
/// names no attribute holds become key-only fields, whose values the
/// sample keys give.
fn read_template_alias(attr: &str, alias: &str, braced: &str, rows: &[usize], st: &mut Rows, warnings: &mut Vec<String>) -> Alias {
    let Some(template) = st.template(braced) else {
        return Alias::Unfit(format!("`{attr}` alias `{alias}` is not a template"));
    };
    if braced != alias {
        warnings.push(format!("`{attr}` alias `{alias}` read as the template `{}`", template.source));
    }
    let unknown: Vec<String> = template.fields().filter(|f| st.kind_of(&f.attr).is_none()).map(|f| f.attr.to_string()).collect();
    if rows.is_empty() {
        for name in &unknown {
            st.candidates.push(Candidate::attribute(name, KeyKind::Str));
            st.key_only.push(name.clone());
        }
        return Alias::Template(template, Vec::new());
    }
    let mut trial = st.clone();
    let mut off = 0;
    for r in rows {
        let Some(key) = key_str(&trial.items[*r], attr).map(str::to_string) else {
            off += 1;
            continue;
        };
        let Ok(values) = template.parse_key(&key, "", attr) else {
            off += 1;
            continue;
        };
        let values: Vec<(String, AttributeValue)> = values.into_iter().map(|(f, v)| (f.attr.to_string(), v)).collect();
        for (name, v) in values {
            if unknown.contains(&name) && !trial.items[*r].contains_key(&name) {
                trial.items[*r].insert(name, v);
            }
        }
    }
    if off == rows.len() {
        return Alias::Unfit(format!("`{attr}` alias `{alias}` is not a template of the sample keys"));
    }
    for name in &unknown {
        trial.candidates.push(Candidate::attribute(name, KeyKind::Str));
        trial.key_only.push(name.clone());
    }
    if off > 0 || !trial.renders(&template, attr, rows) {
        warnings.push(format!("some sample items' `{attr}` values do not follow the alias template `{alias}`"));
    }
    *st = trial;
    Alias::Template(template, Vec::new())
}

/// Recovers the template that renders `keys[j]` from `items[j]` for every
/// `j`: a simultaneous left-to-right parse of all keys, trying the
/// candidates' values (longest first) before literal text, backtracking
/// when the keys cannot all be finished, and checking each complete
/// template with the real evaluator. `None` when no template fits (or the
/// search would be too long).
pub(super) fn infer_template(
    keys: &[&str],
    items: &[&RawItem],
    candidates: &[Candidate],
    resolve: &dyn Fn(&str) -> Option<(KeyKind, bool)>,
) -> Option<String> {
    struct Search<'a> {
        keys: &'a [&'a str],
        items: &'a [&'a RawItem],
        candidates: &'a [Candidate],
        resolve: &'a dyn Fn(&str) -> Option<(KeyKind, bool)>,
        budget: usize,
    }
    impl Search<'_> {
        fn verify(&self, pieces: &[grammar::Piece]) -> Option<String> {
            let source = grammar::unparse(pieces);
            let template = Template::parse(&source, |name| (self.resolve)(name)).ok()?;
            let ok = self.keys.iter().zip(self.items).all(|(key, item)| {
                template.render_item(item, "", "").ok().as_deref() == Some(*key)
            });
            ok.then_some(source)
        }

        fn step(&mut self, at: &mut Vec<usize>, pieces: &mut Vec<grammar::Piece>) -> Option<String> {
            if self.budget == 0 {
                return None;
            }
            self.budget -= 1;
            let done = at.iter().zip(self.keys).filter(|(p, k)| **p == k.len()).count();
            if done == self.keys.len() {
                return self.verify(pieces);
            }
            if done > 0 {
                return None;
            }
            // A placeholder, unless the previous piece is one (they may not touch).
            if !matches!(pieces.last(), Some(grammar::Piece::Field { .. })) {
                let mut options: Vec<(usize, &Candidate, Option<u8>, Vec<usize>)> = Vec::new();
                for c in self.candidates {
                    let pads: Vec<Option<u8>> = match c.kind {
                        KeyKind::Int => std::iter::once(None).chain((1..=grammar::MAX_PAD).rev().map(Some)).collect(),
                        _ => vec![None],
                    };
                    for pad in pads {
                        let mut lens = Vec::with_capacity(self.keys.len());
                        for ((key, item), p) in self.keys.iter().zip(self.items).zip(at.iter()) {
                            match item.get(&c.attr).and_then(|v| key_text(v, c.kind, pad)) {
                                Some(text) if key[*p..].starts_with(&text) => lens.push(text.len()),
                                _ => break,
                            }
                        }
                        if lens.len() == self.keys.len() {
                            options.push((lens[0], c, pad, lens));
                        }
                    }
                }
                options.sort_by_key(|o| std::cmp::Reverse(o.0));
                for (_, c, pad, lens) in options {
                    let saved = at.clone();
                    for (p, len) in at.iter_mut().zip(&lens) {
                        *p += len;
                    }
                    pieces.push(grammar::Piece::Field { name: c.attr.clone(), pad, offset: 0 });
                    if let Some(found) = self.step(at, pieces) {
                        return Some(found);
                    }
                    pieces.pop();
                    *at = saved;
                }
            }
            // A literal character, the same at every key's position.
            let ch = self.keys[0][at[0]..].chars().next()?;
            if !self.keys.iter().zip(at.iter()).all(|(k, p)| k[*p..].starts_with(ch)) {
                return None;
            }
            for p in at.iter_mut() {
                *p += ch.len_utf8();
            }
            let merged = match pieces.last_mut() {
                Some(grammar::Piece::Literal(text)) => {
                    text.push(ch);
                    true
                }
                _ => {
                    pieces.push(grammar::Piece::Literal(ch.to_string()));
                    false
                }
            };
            let found = self.step(at, pieces);
            if found.is_none() {
                for p in at.iter_mut() {
                    *p -= ch.len_utf8();
                }
                match pieces.last_mut() {
                    Some(grammar::Piece::Literal(text)) if merged => {
                        text.pop();
                    }
                    _ => {
                        pieces.pop();
                    }
                }
            }
            found
        }
    }
    if keys.is_empty() {
        return None;
    }
    let mut search = Search { keys, items, candidates, resolve, budget: 200_000 };
    search.step(&mut vec![0; keys.len()], &mut Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> RawItem {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn rows(items: Vec<RawItem>, candidates: &[(&str, KeyKind)]) -> Rows {
        let candidates = candidates.iter().map(|(a, k)| Candidate::attribute(a, *k)).collect();
        Rows { items, candidates, key_only: Vec::new(), learned: Vec::new() }
    }

    #[test]
    fn inference_prefers_a_template_that_fits_every_item() {
        let n = |v: &str| AttributeValue::N(v.into());
        let a = item(&[("v", n("1"))]);
        let b = item(&[("v", n("2"))]);
        let cands = [Candidate::attribute("v", KeyKind::Int)];
        let resolve = |name: &str| (name == "v").then_some((KeyKind::Int, false));
        // "V1#1" alone would read as "V{v}#{v}"-like guesses; with a second item only one fits.
        assert_eq!(infer_template(&["V1#1", "V1#2"], &[&a, &b], &cands, &resolve).as_deref(), Some("V1#{v}"));
        assert_eq!(infer_template(&["N#001", "N#002"], &[&a, &b], &cands, &resolve).as_deref(), Some("N#{v:03}"));
        assert_eq!(infer_template(&["X", "Y"], &[&a, &b], &cands, &resolve), None);
        let braces = item(&[("v", n("1"))]);
        assert_eq!(infer_template(&["{1}"], &[&braces], &cands, &resolve).as_deref(), Some("{{{v}}}"));
    }

    #[test]
    fn keys_are_cut_at_delimiters_and_labels() {
        let p = Parts::of("comm#2023-04-30T12:00:24#comm1");
        assert_eq!(p.parts, ["comm", "2023-04-30T12:00:24", "comm1"]);
        // `:` cuts only after a label: a time stays whole.
        assert_eq!(Parts::of("User:UserA").parts, ["User", "UserA"]);
        assert_eq!(Parts::of("2023-04-01T12:00:00.001Z").parts, ["2023-04-01T12:00:00.001Z"]);
        assert_eq!(Parts::of("#METADATA#player001").head(), "#METADATA#");
        assert_eq!(Parts::of("Complaint123").head(), "");
        assert_eq!(Parts::of("u#12345#follower").signature(), ("u#*#follower".to_string(), vec!["u".to_string(), "follower".to_string()]));
        assert_eq!(Parts::of("FEATURE#CAMERAS").signature().0, "FEATURE#*");
        assert!(generic_key_name("GSI1-PK") && generic_key_name("sk") && generic_key_name("gsi2sk"));
        assert!(!generic_key_name("NextReminderDate") && !generic_key_name("escalated_to"));
        assert_eq!(ident("GSI1-SK"), "GSI1_SK");
        assert_eq!(ident("<sub_feature>"), "sub_feature");
        assert_eq!(ident("2fa"), "f_2fa");
    }

    #[test]
    fn angle_brackets_are_placeholders() {
        assert_eq!(angle_to_braces("USER#<id>"), "USER#{id}");
        assert_eq!(angle_to_braces("a<b"), "a<b");
        let mut st = rows(vec![item(&[("PK", s("USER#u1"))])], &[]);
        let mut warnings = Vec::new();
        let Alias::Template(t, odd) = read_alias("PK", "USER#<id>", &[0], &mut st, &mut warnings) else { panic!("a template") };
        assert_eq!((t.source.as_ref(), odd.len()), ("USER#{id}", 0));
        // The id lives only in the key: its value comes from there.
        assert_eq!(st.items[0].get("id"), Some(&s("u1")));
        assert_eq!(st.key_only, ["id"]);
    }

    #[test]
    fn a_part_after_another_label_is_another_field() {
        let learned = BTreeMap::new();
        let reserved = BTreeSet::new();
        let naming = Naming { learned: &learned, reserved: &reserved, index_attrs: &reserved };
        let items = vec![item(&[("PK", s("o#1")), ("G", s("c#1"))]), item(&[("PK", s("o#2")), ("G", s("c#1"))])];
        let mut st = rows(items, &[]);
        assert_eq!(read_parts("PK", &[0, 1], &mut st, &naming).unwrap().source, "o#{o_id}");
        // `c#1` shares digits with `o#1` in the first item only by chance.
        assert_eq!(read_parts("G", &[0, 1], &mut st, &naming).unwrap().source, "c#{c_id}");
        // A label where values vary in its place: items of two kinds.
        let mixed = vec![item(&[("PK", s("User:a"))]), item(&[("PK", s("Room:b"))])];
        assert_eq!(read_parts("PK", &[0, 1], &mut rows(mixed, &[]), &naming).unwrap_err(), Miss::Kinds);
    }
}
