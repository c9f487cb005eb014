//! A stable hash: 64-bit FNV-1a over canonical bytes. Page cursors and
//! migration plan fingerprints are made of it, so a cursor or a saved plan
//! issued by one build is checked by another: unlike `std`'s
//! `DefaultHasher` it never changes between Rust releases, and unlike a
//! hash of `Debug` output it never changes with an SDK upgrade.
//!
//! Attribute values are fed canonically: a type tag before each value,
//! lengths before variable-sized parts, map keys and set elements in sorted
//! order (so two equal items hash the same whatever their `HashMap` order).
//!
//! ```
//! use singletable::hash::{hash_value, Fnv64};
//! use singletable::AttributeValue;
//!
//! let mut h = Fnv64::new();
//! hash_value(&mut h, &AttributeValue::Ss(vec!["b".into(), "a".into()]));
//! let mut same = Fnv64::new();
//! hash_value(&mut same, &AttributeValue::Ss(vec!["a".into(), "b".into()]));
//! assert_eq!(h.finish(), same.finish());
//! ```

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

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
        // A type this SDK version does not know; it cannot be stored either.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x85944171f73967e8);
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
