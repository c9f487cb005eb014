//! A digest of a table's state, saved with a plan so that apply can refuse
//! a plan made against a table that has changed since.
//!
//! The hash is 64-bit FNV-1a, written out here: `std`'s `DefaultHasher`
//! may change between Rust releases, and a plan saved by one build must be
//! checked by another.

use std::collections::HashMap;
use std::fmt::Write as _;

use aws_sdk_dynamodb::types::AttributeValue;
use singletable::TableDesign;

use crate::live::LiveTable;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a, stable across platforms and Rust versions.
#[derive(Debug, Clone, Copy)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(FNV_OFFSET)
    }
}

impl Fnv64 {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    /// Feeds a length-prefixed string, so that `("ab", "c")` and
    /// `("a", "bc")` hash differently.
    pub fn write_str(&mut self, s: &str) {
        self.write(&(s.len() as u64).to_le_bytes());
        self.write(s.as_bytes());
    }

    /// The digest.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// The FNV-1a digest of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = Fnv64::new();
    h.write(bytes);
    h.finish()
}

/// Feeds one attribute value, canonically (map keys and set elements in
/// sorted order, a type tag before each value).
pub fn hash_value(h: &mut Fnv64, value: &AttributeValue) {
    fn sorted<'a, T: AsRef<[u8]> + 'a>(items: impl Iterator<Item = &'a T>) -> Vec<&'a [u8]> {
        let mut v: Vec<&[u8]> = items.map(|x| x.as_ref()).collect();
        v.sort_unstable();
        v
    }
    let bytes_list = |h: &mut Fnv64, tag: &[u8], list: Vec<&[u8]>| {
        h.write(tag);
        h.write(&(list.len() as u64).to_le_bytes());
        for b in list {
            h.write(&(b.len() as u64).to_le_bytes());
            h.write(b);
        }
    };
    match value {
        AttributeValue::S(s) => {
            h.write(b"S");
            h.write_str(s);
        }
        AttributeValue::N(n) => {
            h.write(b"N");
            h.write_str(n);
        }
        AttributeValue::B(b) => {
            h.write(b"B");
            h.write(&(b.as_ref().len() as u64).to_le_bytes());
            h.write(b.as_ref());
        }
        AttributeValue::Bool(b) => h.write(if *b { b"T" } else { b"F" }),
        AttributeValue::Null(_) => h.write(b"0"),
        AttributeValue::Ss(v) => bytes_list(h, b"SS", sorted(v.iter())),
        AttributeValue::Ns(v) => bytes_list(h, b"NS", sorted(v.iter())),
        AttributeValue::Bs(v) => {
            let mut list: Vec<&[u8]> = v.iter().map(|b| b.as_ref()).collect();
            list.sort_unstable();
            bytes_list(h, b"BS", list)
        }
        AttributeValue::L(v) => {
            h.write(b"L");
            h.write(&(v.len() as u64).to_le_bytes());
            for x in v {
                hash_value(h, x);
            }
        }
        AttributeValue::M(m) => {
            h.write(b"M");
            hash_map(h, m, |_| true);
        }
        _ => h.write(b"?"),
    }
}

/// Feeds the attributes of a map (or an item) for which `keep` holds, in
/// sorted name order.
pub fn hash_map(h: &mut Fnv64, map: &HashMap<String, AttributeValue>, keep: impl Fn(&str) -> bool) {
    let mut names: Vec<&String> = map.keys().filter(|k| keep(k)).collect();
    names.sort_unstable();
    h.write(&(names.len() as u64).to_le_bytes());
    for name in names {
        h.write_str(name);
        hash_value(h, &map[name]);
    }
}

/// The canonical text the fingerprint digests: one `name=value` line per
/// fact, indexes sorted by name, the recorded design file last.
pub fn canonical_state(live: &LiveTable, recorded: Option<&TableDesign>) -> String {
    let opt = |v: Option<&str>| v.unwrap_or("-").to_string();
    let mut out = String::from("singletable-fingerprint v1\n");
    let _ = writeln!(out, "table={}", live.name);
    let _ = writeln!(out, "exists={}", live.exists);
    let _ = writeln!(out, "pk={}", opt(live.pk_attr.as_deref()));
    let _ = writeln!(out, "sk={}", opt(live.sk_attr.as_deref()));
    let mut indexes: Vec<_> = live.indexes.iter().collect();
    indexes.sort_by(|a, b| a.name.cmp(&b.name));
    for i in indexes {
        // Not the status: an index that finishes backfilling between plan
        // and apply is the same index.
        let _ = writeln!(out, "index={}|{}|{}", i.name, i.pk_attrs.join(","), i.sk_attrs.join(","));
    }
    let _ = writeln!(out, "ttl={}", opt(live.ttl_attribute.as_deref()));
    let _ = writeln!(out, "stream={}", opt(live.stream.map(|s| s.as_str())));
    let _ = writeln!(
        out,
        "pitr={}",
        match live.point_in_time_recovery {
            Some(true) => "on",
            Some(false) => "off",
            None => "-",
        }
    );
    let _ = writeln!(out, "item_count={}", live.item_count.map_or("-".to_string(), |n| n.to_string()));
    let _ = writeln!(out, "size_bytes={}", live.size_bytes.map_or("-".to_string(), |n| n.to_string()));
    match recorded {
        Some(d) => {
            out.push_str("design=\n");
            out.push_str(&d.to_json());
        }
        None => out.push_str("design=-\n"),
    }
    out
}

/// A digest of the table's state: its key schema, indexes (names and key
/// attributes), TTL, stream and point-in-time recovery settings, item count
/// and size as DynamoDB reports them, and the design recorded in the table.
/// Sixteen hex digits (64-bit FNV-1a over [`canonical_state`]).
///
/// What it can and cannot see, honestly: schema, settings and recorded
/// design changes show at once. Item changes show only through
/// DescribeTable's `ItemCount` and `TableSizeBytes`, which DynamoDB Local
/// keeps exact but the real service refreshes only about every six hours;
/// on AWS a plan may therefore pass the check although items were written
/// since it was made. (A write that keeps the count and size, such as an
/// in-place update, is never seen.) Apply re-renders every item from its
/// stored attributes, so such items are still migrated correctly; the
/// plan's counts and samples are what may be out of date.
pub fn fingerprint(live: &LiveTable, recorded: Option<&TableDesign>) -> String {
    format!("{:016x}", fnv1a(canonical_state(live, recorded).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::LiveIndex;
    use singletable::StreamView;

    #[derive(singletable::Item)]
    #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
    #[item(index(name = "gsi1", pk = "EMAIL#{email}"))]
    #[allow(dead_code)]
    struct User {
        org: String,
        id: String,
        email: String,
    }

    fn design() -> TableDesign {
        TableDesign::new("app").entity::<User>().build().unwrap()
    }

    #[test]
    fn fnv1a_matches_the_published_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn the_fingerprint_is_stable_and_sees_every_part() {
        let d = design();
        let live = LiveTable::as_created(&d);
        let base = fingerprint(&live, Some(&d));
        assert_eq!(base.len(), 16);
        assert_eq!(base, fingerprint(&live.clone(), Some(&d.clone())));
        // A golden value: the canonical form must not drift between releases,
        // or every saved plan would turn stale on upgrade.
        assert_eq!(
            canonical_state(&live, None),
            "singletable-fingerprint v1\ntable=app\nexists=true\npk=pk\nsk=sk\nindex=gsi1|gsi1pk|\nttl=-\nstream=-\npitr=off\nitem_count=0\nsize_bytes=0\ndesign=-\n"
        );
        assert_eq!(fingerprint(&live, None), format!("{:016x}", fnv1a(canonical_state(&live, None).as_bytes())));

        let mut variants: Vec<String> = Vec::new();
        let mut changed = |f: &dyn Fn(&mut LiveTable)| {
            let mut l = live.clone();
            f(&mut l);
            variants.push(fingerprint(&l, Some(&d)));
        };
        changed(&|l| l.item_count = Some(1));
        changed(&|l| l.size_bytes = Some(10));
        changed(&|l| l.ttl_attribute = Some("exp".into()));
        changed(&|l| l.stream = Some(StreamView::KeysOnly));
        changed(&|l| l.point_in_time_recovery = None);
        changed(&|l| l.indexes.clear());
        changed(&|l| l.indexes[0].sk_attrs = vec!["gsi1sk".into()]);
        changed(&|l| l.sk_attr = Some("SK".into()));
        changed(&|l| l.name = "other".into());
        variants.push(fingerprint(&live, None));
        for v in &variants {
            assert_ne!(*v, base);
        }
        let mut unique = variants.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), variants.len());

        // Index order and status do not matter.
        let mut l = live.clone();
        l.indexes.push(LiveIndex { name: "a".into(), pk_attrs: vec!["x".into()], sk_attrs: vec![], status: "CREATING".into() });
        let mut reordered = l.clone();
        reordered.indexes.reverse();
        reordered.indexes[0].status = "ACTIVE".into();
        assert_eq!(fingerprint(&l, Some(&d)), fingerprint(&reordered, Some(&d)));
    }

    #[test]
    fn value_hashes_ignore_map_and_set_order() {
        let hash = |v: &AttributeValue| {
            let mut h = Fnv64::new();
            hash_value(&mut h, v);
            h.finish()
        };
        let m1 = AttributeValue::M(HashMap::from([("a".into(), AttributeValue::N("1".into())), ("b".into(), AttributeValue::Bool(true))]));
        let m2 = AttributeValue::M(HashMap::from([("b".into(), AttributeValue::Bool(true)), ("a".into(), AttributeValue::N("1".into()))]));
        assert_eq!(hash(&m1), hash(&m2));
        assert_eq!(hash(&AttributeValue::Ss(vec!["x".into(), "y".into()])), hash(&AttributeValue::Ss(vec!["y".into(), "x".into()])));
        assert_ne!(hash(&AttributeValue::S("1".into())), hash(&AttributeValue::N("1".into())));
        assert_ne!(
            hash(&AttributeValue::L(vec![AttributeValue::S("ab".into()), AttributeValue::S("c".into())])),
            hash(&AttributeValue::L(vec![AttributeValue::S("a".into()), AttributeValue::S("bc".into())]))
        );
    }
}
