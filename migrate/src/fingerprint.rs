//! A digest of a table's state, saved with a plan so that apply can refuse
//! a plan made against a table that has changed since.
//!
//! The hash is [`singletable::hash`] (64-bit FNV-1a over canonical bytes),
//! the one cursors use too: `std`'s `DefaultHasher` may change between Rust
//! releases, and a plan saved by one build must be checked by another.

use std::fmt::Write as _;

use singletable::TableDesign;

use crate::live::LiveTable;

pub use singletable::hash::{fnv1a, hash_map, hash_value, Fnv64};

/// The canonical text the fingerprint digests: one `name=value` line per
/// fact, indexes sorted by name, the recorded design file last.
pub fn canonical_state(live: &LiveTable, recorded: Option<&TableDesign>) -> String {
    let opt = |v: Option<&str>| v.unwrap_or("-").to_string();
    let mut out = String::from("singletable-fingerprint v2\n");
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
    let _ = writeln!(
        out,
        "pitr={}",
        match live.point_in_time_recovery {
            Some(true) => "on",
            Some(false) => "off",
            None => "-",
        }
    );
    match recorded {
        Some(d) => {
            out.push_str("design=\n");
            out.push_str(&d.to_json());
        }
        None => out.push_str("design=-\n"),
    }
    out
}

/// A digest of what a plan depends on: the table's key schema, indexes
/// (names and key attributes), TTL and point-in-time recovery settings, and
/// the design recorded in the table. Sixteen hex digits (64-bit FNV-1a over
/// [`canonical_state`]).
///
/// A plan made for another design, another key schema or another recorded
/// migration is refused. Application writes since planning are not: the
/// table is live, and apply re-renders every item from what it holds when
/// it gets there (item count and size, which writes change, are left out;
/// so is the stream, which an online apply turns on itself). The plan's
/// counts and samples are what may be out of date.
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
            "singletable-fingerprint v2\ntable=app\nexists=true\npk=pk\nsk=sk\nindex=gsi1|gsi1pk|\nttl=-\npitr=off\ndesign=-\n"
        );
        assert_eq!(fingerprint(&live, None), format!("{:016x}", fnv1a(canonical_state(&live, None).as_bytes())));

        let mut variants: Vec<String> = Vec::new();
        let mut changed = |f: &dyn Fn(&mut LiveTable)| {
            let mut l = live.clone();
            f(&mut l);
            variants.push(fingerprint(&l, Some(&d)));
        };
        changed(&|l| l.ttl_attribute = Some("exp".into()));
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
        // Application writes and the stream an online apply turns on do not
        // make a plan stale.
        let mut written = live.clone();
        written.item_count = Some(5_000);
        written.size_bytes = Some(1 << 20);
        written.stream = Some(StreamView::NewAndOldImages);
        assert_eq!(fingerprint(&written, Some(&d)), base);
    }
}
