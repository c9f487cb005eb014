//! Property tests of `#[derive(Item)]`, the runtime template evaluator and
//! DynamoDB Local. Every property runs at least 256 cases
//! (`common::MIN_CASES`; `PROPTEST_CASES` may raise it, never lower it).
//!
//! * (a) arbitrary values — unicode, delimiter characters, long strings,
//!   extreme integers, DynamoDB's float range — put then get returns an
//!   equal value; a delimiter in a non-last key field is refused instead
//!   (`Error::KeyDelimiter`) and nothing is written.
//! * (b) the keys derived code renders equal the runtime evaluator's
//!   (`EntityDesign::render_keys`), byte for byte, refusals included, and
//!   parse back (`Template::parse_key`) to the field values.
//! * (c) injectivity: for two field tuples that both render, keys are
//!   equal exactly when the tuples are; and for every rendered key, every
//!   other way of splitting it into fields (a `#` moved from one field into
//!   the next, ...) is refused.
//! * (d) an empty key part gives `Error::EmptyKey` from `to_item`, `put`,
//!   `create`, `get`, `delete` and `query`, and the table is unchanged.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::collection::{btree_map, hash_set, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseError;
use singletable::template::{KeyKind, Segment};
use singletable::{AttrValue, AttributeValue, Error, Item, KeyDesign, KeyParts};

use common::{check, fail, scan};

// ---------------------------------------------------------------------
// Entities
// ---------------------------------------------------------------------

/// A nested document stored as a map inside a list.
#[derive(singletable::Document, Debug, Clone, PartialEq)]
struct Doc {
    label: String,
    qty: i32,
    weight: f64,
    flag: Option<bool>,
    parts: Vec<String>,
}

/// Every kind of key field, in every position:
///
/// * `tenant`: string, delimiter `#` in `pk` and `gsi1sk`;
/// * `big`: `i64` (to `MIN`/`MAX`), last in `pk`, alone in `gsi2sk`;
/// * `seq`: `i64` zero-padded to 19 digits (negatives are refused);
/// * `flag`: `bool`; `unsigned`: `u64` (to `MAX`);
/// * `tail`: string, the last placeholder of `sk` and `gsi1sk`, so it may
///   hold anything, `#` included;
/// * `region`: string stored as `rgn`, delimiter `|` (so `#` is fine);
/// * `small`: `i32`, last in `gsi1pk`;
/// * `opt`: `Option<String>`, the sparse `gsi2`.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Prop", pk = "T#{tenant}#N#{big}", sk = "S#{seq:019}#{flag}#U#{unsigned}#{tail}")]
#[item(index(name = "gsi1", pk = "R|{region}|{small}", sk = "{tenant}#{tail}"))]
#[item(index(name = "gsi2", pk = "O#{opt}", sk = "{big}"))]
struct Prop {
    tenant: String,
    big: i64,
    seq: i64,
    flag: bool,
    unsigned: u64,
    tail: String,
    #[item(rename = "rgn")]
    region: String,
    small: i32,
    opt: Option<String>,
    text: String,
    num: f64,
    note: Option<String>,
    docs: Vec<Doc>,
    tags: HashSet<String>,
    counts: BTreeMap<String, i64>,
    long: String,
}

type PropKey = <Prop as Item>::Key;

fn prop_key(v: &Prop) -> PropKey {
    (v.tenant.clone(), v.big, v.seq, v.flag, v.unsigned, v.tail.clone())
}

/// The key fields of a `Prop` as a raw item (what migrate sees), built
/// without the derive: the input of the runtime evaluator.
fn prop_raw_fields(v: &Prop) -> HashMap<String, AttributeValue> {
    let mut m = HashMap::new();
    let mut put = |name: &str, value: Result<AttributeValue, singletable::AttrError>| {
        m.insert(name.to_string(), value.expect("key fields encode"));
    };
    put("tenant", v.tenant.to_attr());
    put("big", v.big.to_attr());
    put("seq", v.seq.to_attr());
    put("flag", v.flag.to_attr());
    put("unsigned", v.unsigned.to_attr());
    put("tail", v.tail.to_attr());
    put("rgn", v.region.to_attr());
    put("small", v.small.to_attr());
    if let Some(opt) = &v.opt {
        put("opt", opt.to_attr());
    }
    m
}

/// Small, delimiter-dense templates for the injectivity properties: `c`
/// has `-` as delimiter in `sk` and `#` in `gsi1pk`; `d` is last in `sk`
/// (anything goes) but has `#` after it in `gsi1sk`; `m` is zero-padded.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Inj", pk = "{a}#{b}", sk = "{n}|{c}-{m:03}#{d}")]
#[item(index(name = "gsi1", pk = "{c}#{a}", sk = "{flag}#{d}#{e}"))]
struct Inj {
    a: String,
    b: String,
    n: i64,
    c: String,
    m: u16,
    d: String,
    e: String,
    flag: bool,
}

fn inj_raw_fields(v: &Inj) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("a".to_string(), AttributeValue::S(v.a.clone())),
        ("b".to_string(), AttributeValue::S(v.b.clone())),
        ("n".to_string(), AttributeValue::N(v.n.to_string())),
        ("c".to_string(), AttributeValue::S(v.c.clone())),
        ("m".to_string(), AttributeValue::N(v.m.to_string())),
        ("d".to_string(), AttributeValue::S(v.d.clone())),
        ("e".to_string(), AttributeValue::S(v.e.clone())),
        ("flag".to_string(), AttributeValue::Bool(v.flag)),
    ])
}

// ---------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------

/// Characters that break naive key code: delimiters, braces, NUL, a BOM,
/// the highest code point, multi-byte letters.
const SPECIAL: &[char] = &[
    '#', '|', '-', ' ', '\0', '\n', '\u{10FFFF}', '\u{FFFF}', '\u{FEFF}', 'é', '漢', '🦀', '{', '}', '%', '0', '9',
];

fn any_char() -> impl Strategy<Value = char> + Clone {
    prop_oneof![
        5 => proptest::char::range('a', 'z'),
        3 => any::<char>(),
        2 => select(SPECIAL),
    ]
}

fn string_of(chars: impl Strategy<Value = char>, len: RangeInclusive<usize>) -> impl Strategy<Value = String> {
    vec(chars, len).prop_map(|cs| cs.into_iter().collect())
}

/// A non-empty key string without `forbidden` (the delimiters that
/// follow the field in its templates).
fn key_string(forbidden: &'static [char], max: usize) -> impl Strategy<Value = String> {
    string_of(any_char().prop_map(move |c| if forbidden.contains(&c) { '_' } else { c }), 1..=max)
}

/// Any string at all, for non-key text (may be empty).
fn text(max: usize) -> impl Strategy<Value = String> {
    string_of(any_char(), 0..=max)
}

/// Short, or up to 50 KB of a repeated arbitrary unit.
fn long_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => text(32),
        1 => (string_of(any::<char>(), 1..=16), 1usize..=50_000).prop_map(|(unit, budget)| {
            let mut s = String::with_capacity(budget);
            'fill: loop {
                for c in unit.chars() {
                    if s.len() + c.len_utf8() > budget {
                        break 'fill;
                    }
                    s.push(c);
                }
            }
            s
        }),
    ]
}

fn i64s() -> impl Strategy<Value = i64> {
    prop_oneof![select(vec![i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX]), any::<i64>(), -1000i64..1000]
}

fn nonneg_i64s() -> impl Strategy<Value = i64> {
    prop_oneof![select(vec![0, 1, 9, 10, i64::MAX]), 0..=i64::MAX, 0i64..1000]
}

fn u64s() -> impl Strategy<Value = u64> {
    prop_oneof![select(vec![0, 1, u64::MAX - 1, u64::MAX]), any::<u64>(), 0u64..1000]
}

fn i32s() -> impl Strategy<Value = i32> {
    prop_oneof![select(vec![i32::MIN, -1, 0, i32::MAX]), any::<i32>()]
}

/// Finite floats DynamoDB can store: 0, or magnitude 1e-130 ..< 1e126,
/// with both ends and the largest double below 1e126 forced in.
fn dynamo_f64() -> impl Strategy<Value = f64> {
    let below_max = f64::from_bits(1e126f64.to_bits() - 1);
    prop_oneof![
        select(vec![0.0, -0.0, 1e-130, -1e-130, below_max, -below_max, 1.0 / 3.0, -2.5, f64::EPSILON, 1e15 + 0.3]),
        (1.0f64..10.0, -130i32..=125, any::<bool>())
            .prop_map(|(m, e, neg)| {
                let v = m * 10f64.powi(e);
                if neg {
                    -v
                } else {
                    v
                }
            })
            .prop_filter("inside DynamoDB's number range", |v| (1e-130..1e126).contains(&v.abs())),
    ]
}

fn doc() -> impl Strategy<Value = Doc> {
    (text(16), any::<i32>(), dynamo_f64(), option::of(any::<bool>()), vec(text(8), 0..3))
        .prop_map(|(label, qty, weight, flag, parts)| Doc { label, qty, weight, flag, parts })
}

#[derive(Debug, Clone)]
struct Keys {
    tenant: String,
    big: i64,
    seq: i64,
    flag: bool,
    unsigned: u64,
    tail: String,
    region: String,
    small: i32,
    opt: Option<String>,
}

#[derive(Debug, Clone)]
struct Payload {
    text: String,
    num: f64,
    note: Option<String>,
    docs: Vec<Doc>,
    tags: HashSet<String>,
    counts: BTreeMap<String, i64>,
    long: String,
}

fn prop_of((k, p): (Keys, Payload)) -> Prop {
    Prop {
        tenant: k.tenant,
        big: k.big,
        seq: k.seq,
        flag: k.flag,
        unsigned: k.unsigned,
        tail: k.tail,
        region: k.region,
        small: k.small,
        opt: k.opt,
        text: p.text,
        num: p.num,
        note: p.note,
        docs: p.docs,
        tags: p.tags,
        counts: p.counts,
        long: p.long,
    }
}

/// Key fields that render: no delimiter in a non-last placeholder (the
/// rule refuses those; see `a_delimiter_in_a_non_last_key_field_is_refused`).
fn valid_keys() -> impl Strategy<Value = Keys> {
    (
        key_string(&['#'], 40),
        i64s(),
        nonneg_i64s(),
        any::<bool>(),
        u64s(),
        key_string(&[], 150),
        key_string(&['|'], 40),
        i32s(),
        option::of(key_string(&[], 100)),
    )
        .prop_map(|(tenant, big, seq, flag, unsigned, tail, region, small, opt)| Keys {
            tenant,
            big,
            seq,
            flag,
            unsigned,
            tail,
            region,
            small,
            opt,
        })
}

/// Key strings of every kind: empty, delimiter soup, unicode, and longer
/// than DynamoDB's key limits.
fn wild_string() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        3 => string_of(select(vec!['a', '#', '|', '-', '0']), 0..=4),
        3 => string_of(any_char(), 0..=24),
        1 => string_of(any_char(), 300..=700),
    ]
}

/// Key fields that may fail to render in every way there is.
fn wild_keys() -> impl Strategy<Value = Keys> {
    (
        wild_string(),
        i64s(),
        i64s(),
        any::<bool>(),
        u64s(),
        wild_string(),
        wild_string(),
        i32s(),
        option::of(wild_string()),
    )
        .prop_map(|(tenant, big, seq, flag, unsigned, tail, region, small, opt)| Keys {
            tenant,
            big,
            seq,
            flag,
            unsigned,
            tail,
            region,
            small,
            opt,
        })
}

/// Key fields from a tiny alphabet, dense in the templates' delimiters, so
/// that keys can be split in several ways.
fn dense_keys() -> impl Strategy<Value = Keys> {
    let s = || string_of(select(vec!['a', '#', '|', '-', '1']), 1..=4);
    (s(), -12i64..12, 0i64..12, any::<bool>(), 0u64..12, s(), s(), -12i32..12, option::of(s())).prop_map(
        |(tenant, big, seq, flag, unsigned, tail, region, small, opt)| Keys {
            tenant,
            big,
            seq,
            flag,
            unsigned,
            tail,
            region,
            small,
            opt,
        },
    )
}

fn payload() -> impl Strategy<Value = Payload> {
    (
        text(200),
        dynamo_f64(),
        option::of(text(40)),
        vec(doc(), 0..4),
        // Empty strings are fine inside a set (DynamoDB Local agrees).
        hash_set(text(12), 1..6),
        // Map keys are attribute names: DynamoDB refuses empty ones.
        btree_map(string_of(any_char(), 1..=10), i64s(), 0..5),
        long_text(),
    )
        .prop_map(|(text, num, note, docs, tags, counts, long)| Payload { text, num, note, docs, tags, counts, long })
}

/// A small valid payload, for properties about keys.
fn small_payload() -> impl Strategy<Value = Payload> {
    (text(16), dynamo_f64(), hash_set(text(4), 1..3)).prop_map(|(text, num, tags)| Payload {
        text,
        num,
        note: None,
        docs: Vec::new(),
        tags,
        counts: BTreeMap::new(),
        long: String::new(),
    })
}

fn inj_string() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        8 => string_of(select(vec!['a', '#', '|', '-', '0', '1']), 1..=3),
    ]
}

fn inj() -> impl Strategy<Value = Inj> {
    (
        inj_string(),
        inj_string(),
        -12i64..12,
        inj_string(),
        prop_oneof![9 => 0u16..12, 1 => Just(1000u16)],
        inj_string(),
        inj_string(),
        any::<bool>(),
    )
        .prop_map(|(a, b, n, c, m, d, e, flag)| Inj { a, b, n, c, m, d, e, flag })
}

// ---------------------------------------------------------------------
// Shared checks
// ---------------------------------------------------------------------

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime")
}

fn key_design<'a, T: Item>(attr: &str) -> &'a KeyDesign {
    T::DESIGN.key_designs().find(|k| k.attr == attr).expect("key attribute of the design")
}

fn is_key_error(e: &Error) -> bool {
    matches!(
        e,
        Error::EmptyKey { .. } | Error::KeyDelimiter { .. } | Error::KeyFormat { .. } | Error::KeyTooLong { .. }
    )
}

/// The runtime evaluator agrees with a successful `to_item`, and every key
/// parses back to the field values.
fn check_rendered_keys<T: Item>(
    item: &HashMap<String, AttributeValue>,
    evaluated: &[(String, String)],
) -> Result<(), TestCaseError> {
    let design = T::DESIGN;
    let key_attrs: HashSet<&str> = design.key_designs().map(|k| k.attr.as_ref()).collect();
    // The payload as migrate would see it: the stored item without keys.
    let payload: HashMap<String, AttributeValue> =
        item.iter().filter(|(k, _)| !key_attrs.contains(k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    let from_payload = design.render_keys(&payload).map_err(fail)?;
    prop_assert_eq!(&from_payload, evaluated, "render_keys over the stored payload");

    // Exactly the key attributes the evaluator renders, byte for byte.
    let derived: BTreeMap<&str, &str> = item
        .iter()
        .filter(|(k, _)| key_attrs.contains(k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_s().map(String::as_str).unwrap_or("<not S>")))
        .collect();
    let runtime: BTreeMap<&str, &str> = evaluated.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    prop_assert_eq!(derived, runtime, "derived key attributes vs the runtime evaluator");

    for (attr, key) in evaluated {
        let kd = key_design::<T>(attr);
        let parsed = kd.template.parse_key(key, &design.entity, attr).map_err(fail)?;
        prop_assert_eq!(parsed.len(), kd.template.fields().count());
        let mut back = HashMap::new();
        for (field, value) in parsed {
            prop_assert_eq!(Some(&value), payload.get(field.attr.as_ref()), "{} parsed from {}={:?}", field.field, attr, key);
            back.insert(field.attr.to_string(), value);
        }
        let again = kd.template.render_item(&back, &design.entity, attr).map_err(fail)?;
        prop_assert_eq!(&again, key, "re-rendered from the parsed fields");
    }
    Ok(())
}

/// Two results agree: both Ok and equal, or both the same error.
fn same_outcome<A: PartialEq + std::fmt::Debug>(
    what: &str,
    x: &Result<A, Error>,
    y: &Result<A, Error>,
) -> Result<(), TestCaseError> {
    match (x, y) {
        (Ok(a), Ok(b)) => prop_assert_eq!(a, b, "{}", what),
        (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string(), "{}", what),
        _ => prop_assert!(false, "{}: {:?} vs {:?}", what, x, y),
    }
    Ok(())
}

#[derive(Default)]
struct Counts {
    ok: AtomicUsize,
    refused: AtomicUsize,
    other: AtomicUsize,
}

impl Counts {
    fn report(&self, name: &str) -> (usize, usize, usize) {
        let (ok, refused, other) =
            (self.ok.load(Ordering::Relaxed), self.refused.load(Ordering::Relaxed), self.other.load(Ordering::Relaxed));
        eprintln!("{name}: {ok} / {refused} / {other}");
        (ok, refused, other)
    }
}

fn bump(n: &AtomicUsize) {
    n.fetch_add(1, Ordering::Relaxed);
}

// ---------------------------------------------------------------------
// (a) put then get
// ---------------------------------------------------------------------

#[test]
fn a_put_then_get_returns_an_equal_value() {
    let rt = runtime();
    let table = rt.block_on(common::new_table("props_a", vec![Prop::DESIGN.clone()]));
    let sparse = Counts::default();
    check(file!(), "(a) put/get round trip", 256, (valid_keys(), payload()).prop_map(prop_of), |v| {
        if v.opt.is_some() {
            bump(&sparse.ok);
        } else {
            bump(&sparse.other);
        }
        rt.block_on(async {
            table.put(&v).await.map_err(fail)?;
            let got = table.get::<Prop>(&prop_key(&v)).await.map_err(fail)?;
            prop_assert_eq!(got.as_ref(), Some(&v));
            Ok(())
        })
    });
    let (in_gsi2, not_in_gsi2) = (sparse.ok.into_inner(), sparse.other.into_inner());
    eprintln!("(a) {in_gsi2} items in the sparse gsi2, {not_in_gsi2} left out of it");
    assert!(in_gsi2 > 0 && not_in_gsi2 > 0);
    rt.block_on(singletable_tests::delete_table(table.client(), table.name()));
}

/// Where a key field sits before a delimiter, a value containing it is
/// refused before anything is sent: the round trip above can't include
/// such values, by design.
#[test]
fn a_delimiter_in_a_non_last_key_field_is_refused_and_nothing_is_written() {
    let rt = runtime();
    let table = rt.block_on(common::new_table("props_a_delim", vec![Prop::DESIGN.clone()]));
    let strategy = ((valid_keys(), small_payload()).prop_map(prop_of), any::<bool>(), any::<prop::sample::Index>());
    check(file!(), "(a) delimiter refused", 256, strategy, |(v, in_tenant, at)| {
        let mut w = v.clone();
        let (field, attribute, delimiter) = if in_tenant {
            let chars: Vec<char> = w.tenant.chars().collect();
            let i = at.index(chars.len() + 1);
            w.tenant = chars[..i].iter().chain(['#'].iter()).chain(chars[i..].iter()).collect();
            ("tenant", "pk", '#')
        } else {
            let chars: Vec<char> = w.region.chars().collect();
            let i = at.index(chars.len() + 1);
            w.region = chars[..i].iter().chain(['|'].iter()).chain(chars[i..].iter()).collect();
            ("region", "gsi1pk", '|')
        };
        let expect = |r: Result<(), Error>, op: &str| -> Result<(), TestCaseError> {
            match r {
                Err(Error::KeyDelimiter { entity, attribute: a, field: f, delimiter: d }) => {
                    prop_assert_eq!((entity.as_str(), a.as_str(), f.as_str(), d), ("Prop", attribute, field, delimiter), "{}", op);
                    Ok(())
                }
                other => Err(TestCaseError::fail(format!("{op}: expected KeyDelimiter, got {other:?}"))),
            }
        };
        rt.block_on(async {
            table.put(&v).await.map_err(fail)?;
            let before = scan(table.client(), table.name(), None).await;
            expect(w.to_item().map(drop), "to_item")?;
            expect(table.put(&w).await, "put")?;
            expect(table.create(&w).await, "create")?;
            if in_tenant {
                expect(table.get::<Prop>(&prop_key(&w)).await.map(drop), "get")?;
                expect(table.delete::<Prop>(&prop_key(&w)).await, "delete")?;
                let q = table
                    .query::<Prop>()
                    .pk(KeyParts::new().set("tenant", w.tenant.as_str()).set("big", w.big))
                    .all()
                    .await;
                expect(q.map(drop), "query")?;
            }
            let after = scan(table.client(), table.name(), None).await;
            prop_assert_eq!(before, after, "the table changed");
            table.delete::<Prop>(&prop_key(&v)).await.map_err(fail)?;
            Ok(())
        })
    });
    rt.block_on(singletable_tests::delete_table(table.client(), table.name()));
}

// ---------------------------------------------------------------------
// (b) derive == runtime evaluator, and keys parse back
// ---------------------------------------------------------------------

#[test]
fn b_derived_keys_equal_the_runtime_evaluator_and_parse_back() {
    let counts = Counts::default();
    // Around DynamoDB's 1024-byte sort key limit: `tail` is in `sk` and `gsi1sk`.
    let long_tail = (valid_keys(), string_of(proptest::char::range('a', 'z'), 940..=1100)).prop_map(|(mut k, tail)| {
        k.tail = tail;
        k
    });
    let strategy = prop_oneof![
        2 => (valid_keys(), small_payload()),
        1 => (long_tail, small_payload()),
        5 => (wild_keys(), small_payload()),
    ]
    .prop_map(prop_of);
    let kinds: [AtomicUsize; 4] = Default::default();
    check(file!(), "(b) Prop: derive vs evaluator", 2048, strategy, |v| {
        let derived = v.to_item();
        let evaluated = Prop::DESIGN.render_keys(&prop_raw_fields(&v));
        same_outcome("key_of(typed key) vs primary_key()", &Prop::key_of(&prop_key(&v)), &v.primary_key())?;
        match (derived, evaluated) {
            (Ok(item), Ok(keys)) => {
                bump(&counts.ok);
                check_rendered_keys::<Prop>(&item, &keys)?;
                let pk = v.primary_key().map_err(fail)?;
                prop_assert_eq!(item["pk"].as_s().ok(), Some(&pk.pk));
                prop_assert_eq!(item["sk"].as_s().ok(), Some(&pk.sk));
                // The sparse index: keys exactly when `opt` is present.
                prop_assert_eq!(item.contains_key("gsi2pk"), v.opt.is_some());
                prop_assert_eq!(item.contains_key("gsi2sk"), v.opt.is_some());
                prop_assert!(item.contains_key("gsi1pk") && item.contains_key("gsi1sk"));
            }
            (Err(d), Err(e)) => {
                bump(&counts.refused);
                prop_assert!(is_key_error(&d), "{}", d);
                prop_assert_eq!(d.to_string(), e.to_string(), "derive and evaluator refuse alike");
                let kind = match d {
                    Error::EmptyKey { .. } => &kinds[0],
                    Error::KeyDelimiter { .. } => &kinds[1],
                    Error::KeyFormat { .. } => &kinds[2],
                    _ => &kinds[3],
                };
                bump(kind);
            }
            (d, e) => prop_assert!(false, "derive {:?} but evaluator {:?}", d.map(|_| "Ok"), e),
        }
        Ok(())
    });
    let (ok, refused, _) = counts.report("(b) Prop rendered / refused");
    assert!(ok >= 256 && refused >= 256, "both outcomes must be exercised");
    let kinds: Vec<usize> = kinds.iter().map(|k| k.load(Ordering::Relaxed)).collect();
    eprintln!("(b) Prop refusals: EmptyKey {} / KeyDelimiter {} / KeyFormat {} / KeyTooLong {}", kinds[0], kinds[1], kinds[2], kinds[3]);
    assert!(kinds.iter().all(|&k| k > 0), "every kind of refusal must be exercised");

    let counts = Counts::default();
    check(file!(), "(b) Inj: derive vs evaluator", 2048, inj(), |v| {
        same_outcome("key_of vs primary_key", &Inj::key_of(&(v.a.clone(), v.b.clone(), v.n, v.c.clone(), v.m, v.d.clone())), &v.primary_key())?;
        match (v.to_item(), Inj::DESIGN.render_keys(&inj_raw_fields(&v))) {
            (Ok(item), Ok(keys)) => {
                bump(&counts.ok);
                check_rendered_keys::<Inj>(&item, &keys)?;
                prop_assert_eq!(Inj::from_item(item).map_err(fail)?, v);
            }
            (Err(d), Err(e)) => {
                bump(&counts.refused);
                prop_assert!(is_key_error(&d), "{}", d);
                prop_assert_eq!(d.to_string(), e.to_string());
            }
            (d, e) => prop_assert!(false, "derive {:?} but evaluator {:?}", d.map(|_| "Ok"), e),
        }
        Ok(())
    });
    let (ok, refused, _) = counts.report("(b) Inj rendered / refused");
    assert!(ok >= 100 && refused >= 100, "both outcomes must be exercised");
}

// ---------------------------------------------------------------------
// (c) injectivity
// ---------------------------------------------------------------------

/// The values a template's fields take in a raw item.
fn projection(kd: &KeyDesign, raw: &HashMap<String, AttributeValue>) -> Vec<Option<AttributeValue>> {
    kd.template.fields().map(|f| raw.get(f.attr.as_ref()).cloned()).collect()
}

#[test]
fn c_keys_are_equal_exactly_when_field_tuples_are() {
    let counts = Counts::default(); // equal keys / distinct keys / pairs with a refusal
    // A second tuple: the same, an independent one, or the first with one
    // field taken from the other (a near neighbour).
    let pairs = (inj(), inj(), 0usize..9).prop_map(|(t1, other, how)| {
        let mut t2 = t1.clone();
        match how {
            0 => {}
            1 => t2 = other,
            2 => t2.a = other.a,
            3 => t2.b = other.b,
            4 => t2.n = other.n,
            5 => t2.c = other.c,
            6 => t2.m = other.m,
            7 => t2.d = other.d,
            _ => t2.e = other.e,
        }
        (t1, t2)
    });
    check(file!(), "(c) pairs", 4096, pairs, |(t1, t2)| {
        let (r1, r2) = (inj_raw_fields(&t1), inj_raw_fields(&t2));
        // Per template, with the runtime evaluator.
        for kd in Inj::DESIGN.key_designs() {
            let (k1, k2) = (kd.template.render_item(&r1, "Inj", &kd.attr), kd.template.render_item(&r2, "Inj", &kd.attr));
            if let (Ok(k1), Ok(k2)) = (&k1, &k2) {
                let same_fields = projection(kd, &r1) == projection(kd, &r2);
                prop_assert_eq!(k1 == k2, same_fields, "{}: {:?} vs {:?}", kd.attr, k1, k2);
                bump(if k1 == k2 { &counts.ok } else { &counts.refused });
            } else {
                bump(&counts.other);
            }
        }
        // Whole items, with the derived code and typed keys.
        if let (Ok(i1), Ok(i2)) = (t1.to_item(), t2.to_item()) {
            let primary = |i: &HashMap<String, AttributeValue>| (i["pk"].clone(), i["sk"].clone());
            let key = |t: &Inj| (t.a.clone(), t.b.clone(), t.n, t.c.clone(), t.m, t.d.clone());
            prop_assert_eq!(primary(&i1) == primary(&i2), key(&t1) == key(&t2));
            let all_keys = |i: &HashMap<String, AttributeValue>| {
                Inj::DESIGN.key_designs().map(|k| i.get(k.attr.as_ref()).cloned()).collect::<Vec<_>>()
            };
            prop_assert_eq!(all_keys(&i1) == all_keys(&i2), t1 == t2);
        }
        Ok(())
    });
    let (equal, distinct, refused) = counts.report("(c) pairs: equal keys / distinct keys / a side refused");
    assert!(equal > 1000 && distinct > 1000 && refused > 0);
}

/// Every way of cutting `key` into the template's fields: `(attr, text)`
/// per placeholder. Literals must match exactly; a placeholder followed by
/// a literal may end before any occurrence of that literal.
fn splits(segments: &[Segment], key: &str) -> Vec<Vec<(String, String)>> {
    fn go(segs: &[Segment], rest: &str, acc: &mut Vec<(String, String)>, out: &mut Vec<Vec<(String, String)>>) {
        match segs.first() {
            None => {
                if rest.is_empty() {
                    out.push(acc.clone());
                }
            }
            Some(Segment::Literal(lit)) => {
                if let Some(r) = rest.strip_prefix(lit.as_ref()) {
                    go(&segs[1..], r, acc, out);
                }
            }
            Some(Segment::Field(f)) => {
                let ends: Vec<usize> = match segs.get(1) {
                    None => vec![rest.len()],
                    Some(Segment::Literal(lit)) => (0..=rest.len())
                        .filter(|&e| rest.is_char_boundary(e) && rest[e..].starts_with(lit.as_ref()))
                        .collect(),
                    Some(Segment::Field(_)) => unreachable!("placeholders never touch"),
                };
                for end in ends {
                    acc.push((f.attr.to_string(), rest[..end].to_string()));
                    go(&segs[1..], &rest[end..], acc, out);
                    acc.pop();
                }
            }
        }
    }
    let mut out = Vec::new();
    go(segments, key, &mut Vec::new(), &mut out);
    out
}

/// The stored value a placeholder's text stands for, if any value of its
/// kind renders that text.
fn value_for(kind: KeyKind, pad: Option<u8>, text: &str) -> Option<AttributeValue> {
    match kind {
        KeyKind::Str => Some(AttributeValue::S(text.to_string())),
        KeyKind::Bool => match text {
            "true" | "false" => Some(AttributeValue::Bool(text == "true")),
            _ => None,
        },
        KeyKind::Int => {
            let n: i128 = text.parse().ok()?;
            let canonical = match pad {
                Some(w) if n >= 0 => format!("{n:0w$}", w = w as usize),
                Some(_) => return None,
                None => n.to_string(),
            };
            (canonical == text).then(|| AttributeValue::N(n.to_string()))
        }
    }
}

/// What one near-collision check covered.
#[derive(Default)]
struct CutStats {
    keys: usize,
    cuts: usize,
    derived: usize,
}

/// For one raw item (fields, payload and entity type, as stored): every
/// key a template renders from it, cut every other way into fields, must
/// be refused by the runtime evaluator and must not come out of the
/// derived code either.
fn check_no_other_cut<T: Item + std::fmt::Debug>(raw: &HashMap<String, AttributeValue>) -> Result<CutStats, TestCaseError> {
    let design = T::DESIGN;
    let mut stats = CutStats::default();
    for kd in design.key_designs() {
        let Ok(key) = kd.template.render_item(raw, &design.entity, &kd.attr) else { continue };
        stats.keys += 1;
        let original = projection(kd, raw);
        let mut found_original = false;
        for split in splits(&kd.template.segments, &key) {
            let mut alt = raw.clone();
            let mut producible = true;
            for ((attr, text), field) in split.iter().zip(kd.template.fields()) {
                assert_eq!(attr, field.attr.as_ref());
                match value_for(field.kind, field.pad, text) {
                    Some(v) => {
                        alt.insert(attr.clone(), v);
                    }
                    None => producible = false,
                }
            }
            if !producible {
                continue; // no value of the field's type writes that text
            }
            if projection(kd, &alt) == original {
                found_original = true;
                continue;
            }
            stats.cuts += 1;
            // Runtime evaluator.
            if let Ok(k) = kd.template.render_item(&alt, &design.entity, &kd.attr) {
                prop_assert!(false, "{}: {:?} renders {:?} from {:?} and from {:?}", kd.attr, key, k, original, split);
            }
            // Derived code, for values that fit the Rust types: it must
            // refuse the cut too (rendering it would give the same key).
            if let Ok(other) = T::from_item(alt) {
                stats.derived += 1;
                if kd.attr == design.pk.attr || kd.attr == design.sk.attr {
                    match other.primary_key() {
                        Err(e) => prop_assert!(is_key_error(&e), "{}", e),
                        Ok(k) => prop_assert!(false, "derived code renders {:?} from {:?}", k, other),
                    }
                } else if let Ok(item) = other.to_item() {
                    prop_assert_ne!(item.get(kd.attr.as_ref()).and_then(|v| v.as_s().ok()), Some(&key), "{:?}", other);
                }
            }
        }
        prop_assert!(found_original, "{}: {:?} did not cut back into {:?}", kd.attr, key, original);
    }
    Ok(stats)
}

/// A `Prop` as a stored raw item, built without `to_item` (which refuses
/// the whole item when one key fails).
fn prop_raw_item(v: &Prop) -> HashMap<String, AttributeValue> {
    let mut raw = prop_raw_fields(v);
    let mut put = |name: &str, value: Result<Option<AttributeValue>, singletable::AttrError>| {
        if let Some(value) = value.expect("payload encodes") {
            raw.insert(name.to_string(), value);
        }
    };
    put("text", v.text.to_attr_opt());
    put("num", v.num.to_attr_opt());
    put("note", v.note.to_attr_opt());
    put("docs", v.docs.to_attr_opt());
    put("tags", v.tags.to_attr_opt());
    put("counts", v.counts.to_attr_opt());
    put("long", v.long.to_attr_opt());
    raw.insert("_et".into(), AttributeValue::S("Prop".into()));
    raw
}

#[test]
fn c_no_other_split_of_a_key_renders() {
    let (keys, cuts, derived) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
    let add = |s: CutStats| {
        keys.fetch_add(s.keys, Ordering::Relaxed);
        cuts.fetch_add(s.cuts, Ordering::Relaxed);
        derived.fetch_add(s.derived, Ordering::Relaxed);
    };
    check(file!(), "(c) near collisions, Inj", 8192, inj(), |v| {
        let mut raw = inj_raw_fields(&v);
        raw.insert("_et".into(), AttributeValue::S("Inj".into()));
        add(check_no_other_cut::<Inj>(&raw)?);
        Ok(())
    });
    check(file!(), "(c) near collisions, Prop", 4096, (dense_keys(), small_payload()).prop_map(prop_of), |v| {
        add(check_no_other_cut::<Prop>(&prop_raw_item(&v))?);
        Ok(())
    });
    let (keys, cuts, derived) = (keys.into_inner(), cuts.into_inner(), derived.into_inner());
    eprintln!("(c) near collisions: {keys} keys re-cut, {cuts} other cuts refused by the evaluator, {derived} of them also through the derived code");
    assert!(keys > 1000 && cuts > 1000 && derived > 100, "the near-collision generator must produce near collisions");

    // The textbook near collision: a `#` moved from one field to the next.
    let t = |a: &str, b: &str| Inj { a: a.into(), b: b.into(), n: 1, c: "c".into(), m: 1, d: "d".into(), e: "e".into(), flag: true };
    assert_eq!(t("x", "y#z").to_item().unwrap()["pk"].as_s().unwrap(), "x#y#z");
    assert!(matches!(
        t("x#y", "z").to_item(),
        Err(Error::KeyDelimiter { ref attribute, ref field, delimiter: '#', .. }) if attribute == "pk" && field == "a"
    ));
}

// ---------------------------------------------------------------------
// (d) empty key parts
// ---------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Blank {
    Tenant,
    Tail,
    Region,
    Opt,
}

#[test]
fn d_empty_key_parts_are_refused_and_leave_the_table_unchanged() {
    let rt = runtime();
    let table = rt.block_on(common::new_table("props_d", vec![Prop::DESIGN.clone()]));
    let cases_seen = Counts::default();
    let strategy = (
        (valid_keys(), small_payload()).prop_map(prop_of),
        select(vec![Blank::Tenant, Blank::Tail, Blank::Region, Blank::Opt]),
    );
    check(file!(), "(d) empty key parts", 256, strategy, |(v, blank)| {
        let mut w = v.clone();
        let (field, attribute) = match blank {
            Blank::Tenant => {
                w.tenant.clear();
                ("tenant", "pk")
            }
            Blank::Tail => {
                w.tail.clear();
                ("tail", "sk")
            }
            Blank::Region => {
                w.region.clear();
                ("region", "gsi1pk")
            }
            Blank::Opt => {
                w.opt = Some(String::new());
                ("opt", "gsi2pk")
            }
        };
        let expect = |r: Result<(), Error>, op: &str| -> Result<(), TestCaseError> {
            match r {
                Err(Error::EmptyKey { entity, attribute: a, field: f }) => {
                    prop_assert_eq!((entity.as_str(), a.as_str(), f.as_str()), ("Prop", attribute, field), "{}", op);
                    Ok(())
                }
                other => Err(TestCaseError::fail(format!("{op}: expected EmptyKey, got {other:?}"))),
            }
        };
        rt.block_on(async {
            // The valid item first: for Region/Opt, `w` has its key, so a
            // write of `w` would replace it.
            table.put(&v).await.map_err(fail)?;
            let before = scan(table.client(), table.name(), None).await;
            expect(w.to_item().map(drop), "to_item")?;
            expect(table.put(&w).await, "put")?;
            expect(table.create(&w).await, "create")?;
            if matches!(blank, Blank::Tenant | Blank::Tail) {
                expect(table.get::<Prop>(&prop_key(&w)).await.map(drop), "get")?;
                expect(table.delete::<Prop>(&prop_key(&w)).await, "delete")?;
            }
            match blank {
                Blank::Tenant => {
                    let q = table.query::<Prop>().pk(KeyParts::new().set("tenant", "").set("big", w.big)).all().await;
                    expect(q.map(drop), "query")?;
                }
                Blank::Opt => {
                    let q = table.query::<Prop>().index("gsi2").pk(KeyParts::new().set("opt", "")).all().await;
                    expect(q.map(drop), "query gsi2")?;
                }
                _ => {}
            }
            let after = scan(table.client(), table.name(), None).await;
            prop_assert_eq!(&before, &after, "the table changed");
            prop_assert_eq!(table.get::<Prop>(&prop_key(&v)).await.map_err(fail)?, Some(v.clone()));
            bump(&cases_seen.ok);
            table.delete::<Prop>(&prop_key(&v)).await.map_err(fail)?;
            Ok(())
        })
    });
    let checked = cases_seen.ok.into_inner();
    eprintln!("(d) {checked} cases compared against a table snapshot");
    assert_eq!(checked as u32, common::MIN_CASES.max(proptest::test_runner::Config::default().cases));
    rt.block_on(singletable_tests::delete_table(table.client(), table.name()));
}
