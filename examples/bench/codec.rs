//! Codec benchmark: encode and decode of one representative entity through
//! `#[derive(singletable::Item)]`, `serde_dynamo` plus hand-added keys, the
//! `dynamodel` derive plus hand-added keys, and hand-written code, side by
//! side in one run.
//!
//! ```text
//! cargo run --release -p singletable-examples --bin bench-codec [ITERATIONS [ROUNDS]]
//! # one cell alone (--only=IMPL:encode|decode), e.g. under `perf record`:
//! target/release/bench-codec 100000 5 --only=derive:encode
//! ```
//!
//! `IMPL` is one of `hand`, `hand-itoa`, `derive`, `serde`, `dynamodel`.
//!
//! A plain program, not a timed test: it prints a table and never fails on
//! a number. Every implementation produces the *same*
//! `HashMap<String, AttributeValue>` (checked once before timing) and
//! decodes it back to an equal `Order`, so they are compared on equal work.
//!
//! Method: one warm-up round, then `ROUNDS` rounds (default 25); in each
//! round every implementation runs `ITERATIONS` encodes (default 20 000),
//! then every implementation runs `ITERATIONS` decodes, in a rotating
//! order so that drift in machine state is shared. Work is timed in
//! batches of 256: encode results are collected and dropped outside the
//! timed region, and decode inputs (clones of the canonical item) are made
//! outside it, so only the conversion itself is measured (a decoder's drop
//! of attributes it does not keep — the key attributes, or everything, for
//! a decoder that clones — is part of its cost). A round's figure is the
//! median batch, which discards batches that another process preempted;
//! the table gives the median over rounds and its ratio to the idiomatic
//! hand-written code, and the minimum over rounds (the figure least
//! disturbed by other processes). Many short rounds rather than a few long ones: on a
//! shared machine a burst of other work then spoils a few rounds of every
//! implementation, which the median drops, instead of one long round of
//! one implementation.
//!
//! On a shared machine wall-clock ratios move by several percent from run
//! to run. For a load-independent cross-check, count instructions of one
//! cell under callgrind (`encode_one`/`decode_one` are never inlined, so
//! their inclusive cost divided by ITERATIONS is instructions per op):
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='bench_codec::encode_one*' \
//!     target/release/bench-codec 2000 1 --only=derive:encode
//! ```
//!
//! What every implementation does on encode: render `pk`, `sk`, `gsi1pk`,
//! `gsi1sk` with the same checks the derive makes (no empty key part,
//! `created_at` non-negative and at most 12 digits for its zero-padded
//! slot, key length within DynamoDB's limits), write `_et`, write the 12
//! fields (an absent `Option` is left out). On decode: check `_et`, then
//! decode the 12 fields, failing on a missing or mistyped attribute.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use dynamodel::Dynamodel;
use serde::{Deserialize, Serialize};
use singletable::Item as _;

type Item = HashMap<String, AttributeValue>;

// ---------------------------------------------------------------------------
// The entity. One set of types carries all three derives, so the same
// values go through every implementation.
// ---------------------------------------------------------------------------

/// 12 fields: 4 strings used in keys, a status, two integers (one in a
/// zero-padded key), a list of strings, a list of nested maps, an optional
/// nested map, an optional string, a small integer and a bool.
#[derive(singletable::Item, Serialize, Deserialize, Dynamodel, Debug, Clone, PartialEq)]
#[item(entity = "Order", pk = "ORG#{org_id}", sk = "ORDER#{order_id}")]
#[item(index(name = "gsi1", pk = "EMAIL#{customer_email}", sk = "ORDER#{created_at:012}"))]
struct Order {
    org_id: String,
    order_id: String,
    customer_email: String,
    status: String,
    total_cents: i64,
    created_at: i64,
    tags: Vec<String>,
    lines: Vec<Line>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shipping: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    priority: u8,
    paid: bool,
}

#[derive(singletable::Document, Serialize, Deserialize, Dynamodel, Debug, Clone, PartialEq)]
struct Line {
    sku: String,
    name: String,
    qty: u32,
    unit_cents: i64,
}

#[derive(singletable::Document, Serialize, Deserialize, Dynamodel, Debug, Clone, PartialEq)]
struct Address {
    name: String,
    street: String,
    city: String,
    postcode: String,
    country: String,
}

fn sample() -> Order {
    Order {
        org_id: "acme-corp".into(),
        order_id: "01HZX3K9Q2M7N8P4R5S6T7V8W9".into(),
        customer_email: "ann.smith@example.com".into(),
        status: "SHIPPED".into(),
        total_cents: 18_497,
        created_at: 1_717_171_717,
        tags: vec!["gift".into(), "express".into(), "fragile".into()],
        lines: vec![
            Line { sku: "SKU-1001".into(), name: "Espresso cups (set of 4)".into(), qty: 2, unit_cents: 2_499 },
            Line { sku: "SKU-2040".into(), name: "Hand grinder".into(), qty: 1, unit_cents: 8_900 },
            Line { sku: "SKU-0007".into(), name: "Beans, 1 kg".into(), qty: 3, unit_cents: 1_533 },
        ],
        shipping: Some(Address {
            name: "Ann Smith".into(),
            street: "12 Harbour Road".into(),
            city: "Portsmouth".into(),
            postcode: "PO1 3AX".into(),
            country: "GB".into(),
        }),
        note: Some("Leave with the concierge".into()),
        priority: 2,
        paid: true,
    }
}

// ---------------------------------------------------------------------------
// Shared pieces of the non-derive implementations.
// ---------------------------------------------------------------------------

/// The errors the hand-written code reports (the derive's checks, by hand).
#[derive(Debug)]
#[allow(dead_code)] // the payloads are read through Debug only
enum HandError {
    EmptyKey(&'static str),
    KeyFormat(&'static str),
    KeyTooLong(&'static str),
    WrongEntity,
    Missing(&'static str),
    WrongType(&'static str),
    BadNumber(&'static str),
}

const MAX_PK: usize = 2048;
const MAX_SK: usize = 1024;
/// The largest value that fits the `{created_at:012}` slot.
const MAX_CREATED_AT: i64 = 999_999_999_999;

/// The four key values, rendered the idiomatic way (`format!`), after the
/// checks the derive makes. Used by the idiomatic hand-written code and by
/// the serde_dynamo and dynamodel implementations, whose keys are hand-added.
#[inline]
fn keys_std(o: &Order) -> Result<[String; 4], HandError> {
    for (value, field) in [(&o.org_id, "org_id"), (&o.order_id, "order_id"), (&o.customer_email, "customer_email")] {
        if value.is_empty() {
            return Err(HandError::EmptyKey(field));
        }
    }
    if !(0..=MAX_CREATED_AT).contains(&o.created_at) {
        return Err(HandError::KeyFormat("created_at"));
    }
    let keys = [
        format!("ORG#{}", o.org_id),
        format!("ORDER#{}", o.order_id),
        format!("EMAIL#{}", o.customer_email),
        format!("ORDER#{:012}", o.created_at),
    ];
    check_key_lengths(&keys)?;
    Ok(keys)
}

#[inline]
fn check_key_lengths(keys: &[String; 4]) -> Result<(), HandError> {
    for (key, max, attr) in [(&keys[0], MAX_PK, "pk"), (&keys[1], MAX_SK, "sk"), (&keys[2], MAX_PK, "gsi1pk"), (&keys[3], MAX_SK, "gsi1sk")] {
        if key.len() > max {
            return Err(HandError::KeyTooLong(attr));
        }
    }
    Ok(())
}

/// Adds rendered keys and the entity attribute to an encoded item.
#[inline]
fn add_keys(item: &mut Item, [pk, sk, gsi1pk, gsi1sk]: [String; 4]) {
    item.insert("pk".to_string(), AttributeValue::S(pk));
    item.insert("sk".to_string(), AttributeValue::S(sk));
    item.insert("gsi1pk".to_string(), AttributeValue::S(gsi1pk));
    item.insert("gsi1sk".to_string(), AttributeValue::S(gsi1sk));
    item.insert("_et".to_string(), AttributeValue::S("Order".to_string()));
}

/// The entity check every decoder makes first.
#[inline]
fn check_entity(item: &Item) -> Result<(), HandError> {
    match item.get("_et") {
        Some(AttributeValue::S(et)) if et == "Order" => Ok(()),
        _ => Err(HandError::WrongEntity),
    }
}

// ---------------------------------------------------------------------------
// The implementations.
// ---------------------------------------------------------------------------

trait Codec {
    const NAME: &'static str;
    /// For `--only`.
    const KEY: &'static str;
    fn encode(order: &Order) -> Item;
    fn decode(item: Item) -> Order;
}

/// `#[derive(singletable::Item)]`.
struct Derive;

impl Codec for Derive {
    const NAME: &'static str = "singletable derive";
    const KEY: &'static str = "derive";
    #[inline]
    fn encode(order: &Order) -> Item {
        order.to_item().unwrap()
    }
    #[inline]
    fn decode(item: Item) -> Order {
        Order::from_item(item).unwrap()
    }
}

/// `serde_dynamo::to_item` / `from_item`, keys added by hand.
struct SerdeDynamo;

impl Codec for SerdeDynamo {
    const NAME: &'static str = "serde_dynamo + keys";
    const KEY: &'static str = "serde";
    #[inline]
    fn encode(order: &Order) -> Item {
        let keys = keys_std(order).unwrap();
        let mut item: Item = serde_dynamo::aws_sdk_dynamodb_1::to_item(order).unwrap();
        add_keys(&mut item, keys);
        item
    }
    #[inline]
    fn decode(item: Item) -> Order {
        check_entity(&item).unwrap();
        serde_dynamo::aws_sdk_dynamodb_1::from_item(item).unwrap()
    }
}

/// `#[derive(dynamodel::Dynamodel)]`, keys added by hand. Its conversion
/// consumes the value (`Into<HashMap>`), so encoding from `&Order` clones
/// first. (Its `#[dynamodel(extra = "...")]` hook could add the keys, but
/// cannot fail, so the checks would have to happen outside it anyway.)
struct Dynamodel_;

impl Codec for Dynamodel_ {
    const NAME: &'static str = "dynamodel + keys";
    const KEY: &'static str = "dynamodel";
    #[inline]
    fn encode(order: &Order) -> Item {
        let keys = keys_std(order).unwrap();
        let mut item: Item = order.clone().into();
        add_keys(&mut item, keys);
        item
    }
    #[inline]
    fn decode(item: Item) -> Order {
        check_entity(&item).unwrap();
        Order::try_from(item).unwrap()
    }
}

/// Hand-written, idiomatic std: `format!` keys, `to_string()` numbers,
/// presized maps, values moved out of the item on decode.
struct Hand;

impl Codec for Hand {
    const NAME: &'static str = "hand-written";
    const KEY: &'static str = "hand";
    #[inline]
    fn encode(order: &Order) -> Item {
        hand::encode::<StdText>(order, keys_std(order).unwrap()).unwrap()
    }
    #[inline]
    fn decode(item: Item) -> Order {
        hand::decode(item).unwrap()
    }
}

/// Hand-written doing exactly the derive's primitive work: keys pushed into
/// a presized `String`, numbers through `itoa`. Decode is the same code as
/// [`Hand`], so its decode row measures the noise between two identical
/// runs.
struct HandItoa;

impl Codec for HandItoa {
    const NAME: &'static str = "hand-written, itoa";
    const KEY: &'static str = "hand-itoa";
    #[inline]
    fn encode(order: &Order) -> Item {
        hand::encode::<ItoaText>(order, hand::keys_itoa(order).unwrap()).unwrap()
    }
    #[inline]
    fn decode(item: Item) -> Order {
        hand::decode(item).unwrap()
    }
}

/// How the hand-written encoders turn integers into number text.
trait NumText {
    fn text<T: itoa::Integer + ToString>(n: T) -> String;
}

/// `n.to_string()`.
struct StdText;

impl NumText for StdText {
    #[inline]
    fn text<T: itoa::Integer + ToString>(n: T) -> String {
        n.to_string()
    }
}

/// `itoa`, as the derive does.
struct ItoaText;

impl NumText for ItoaText {
    #[inline]
    fn text<T: itoa::Integer + ToString>(n: T) -> String {
        itoa::Buffer::new().format(n).to_owned()
    }
}

mod hand {
    use super::*;

    /// Keys as the derive renders them: one presized `String` each,
    /// `push_str`, `itoa` and zero padding by hand.
    #[inline]
    pub fn keys_itoa(o: &Order) -> Result<[String; 4], HandError> {
        #[inline]
        fn key(prefix: &str, value: &str, field: &'static str) -> Result<String, HandError> {
            if value.is_empty() {
                return Err(HandError::EmptyKey(field));
            }
            let mut k = String::with_capacity(prefix.len() + 16);
            k.push_str(prefix);
            k.push_str(value);
            Ok(k)
        }
        let pk = key("ORG#", &o.org_id, "org_id")?;
        let sk = key("ORDER#", &o.order_id, "order_id")?;
        let gsi1pk = key("EMAIL#", &o.customer_email, "customer_email")?;
        if !(0..=MAX_CREATED_AT).contains(&o.created_at) {
            return Err(HandError::KeyFormat("created_at"));
        }
        let mut buf = itoa::Buffer::new();
        let digits = buf.format(o.created_at);
        let mut gsi1sk = String::with_capacity(6 + 16);
        gsi1sk.push_str("ORDER#");
        #[allow(clippy::manual_repeat_n)] // as the derive's runtime pads; `repeat_n` needs Rust 1.82 (MSRV 1.80)
        gsi1sk.extend(std::iter::repeat('0').take(12 - digits.len()));
        gsi1sk.push_str(digits);
        let keys = [pk, sk, gsi1pk, gsi1sk];
        check_key_lengths(&keys)?;
        Ok(keys)
    }

    #[inline]
    pub fn encode<F: NumText>(o: &Order, keys: [String; 4]) -> Result<Item, HandError> {
        let mut item = Item::with_capacity(17);
        add_keys(&mut item, keys);
        item.insert("org_id".to_string(), AttributeValue::S(o.org_id.clone()));
        item.insert("order_id".to_string(), AttributeValue::S(o.order_id.clone()));
        item.insert("customer_email".to_string(), AttributeValue::S(o.customer_email.clone()));
        item.insert("status".to_string(), AttributeValue::S(o.status.clone()));
        item.insert("total_cents".to_string(), AttributeValue::N(F::text(o.total_cents)));
        item.insert("created_at".to_string(), AttributeValue::N(F::text(o.created_at)));
        item.insert("tags".to_string(), AttributeValue::L(o.tags.iter().map(|t| AttributeValue::S(t.clone())).collect()));
        let lines = o
            .lines
            .iter()
            .map(|l| {
                let mut m = Item::with_capacity(4);
                m.insert("sku".to_string(), AttributeValue::S(l.sku.clone()));
                m.insert("name".to_string(), AttributeValue::S(l.name.clone()));
                m.insert("qty".to_string(), AttributeValue::N(F::text(l.qty)));
                m.insert("unit_cents".to_string(), AttributeValue::N(F::text(l.unit_cents)));
                AttributeValue::M(m)
            })
            .collect();
        item.insert("lines".to_string(), AttributeValue::L(lines));
        if let Some(a) = &o.shipping {
            let mut m = Item::with_capacity(5);
            m.insert("name".to_string(), AttributeValue::S(a.name.clone()));
            m.insert("street".to_string(), AttributeValue::S(a.street.clone()));
            m.insert("city".to_string(), AttributeValue::S(a.city.clone()));
            m.insert("postcode".to_string(), AttributeValue::S(a.postcode.clone()));
            m.insert("country".to_string(), AttributeValue::S(a.country.clone()));
            item.insert("shipping".to_string(), AttributeValue::M(m));
        }
        if let Some(n) = &o.note {
            item.insert("note".to_string(), AttributeValue::S(n.clone()));
        }
        item.insert("priority".to_string(), AttributeValue::N(F::text(o.priority)));
        item.insert("paid".to_string(), AttributeValue::Bool(o.paid));
        Ok(item)
    }

    #[inline]
    fn s(value: AttributeValue, name: &'static str) -> Result<String, HandError> {
        match value {
            AttributeValue::S(s) => Ok(s),
            _ => Err(HandError::WrongType(name)),
        }
    }

    #[inline]
    fn take_s(m: &mut Item, name: &'static str) -> Result<String, HandError> {
        s(m.remove(name).ok_or(HandError::Missing(name))?, name)
    }

    #[inline]
    fn take_n<T: std::str::FromStr>(m: &mut Item, name: &'static str) -> Result<T, HandError> {
        match m.remove(name) {
            Some(AttributeValue::N(n)) => n.parse().map_err(|_| HandError::BadNumber(name)),
            Some(_) => Err(HandError::WrongType(name)),
            None => Err(HandError::Missing(name)),
        }
    }

    #[inline]
    fn take_l(m: &mut Item, name: &'static str) -> Result<Vec<AttributeValue>, HandError> {
        match m.remove(name) {
            Some(AttributeValue::L(l)) => Ok(l),
            Some(_) => Err(HandError::WrongType(name)),
            None => Err(HandError::Missing(name)),
        }
    }

    fn line(value: AttributeValue) -> Result<Line, HandError> {
        let AttributeValue::M(mut m) = value else { return Err(HandError::WrongType("lines[]")) };
        Ok(Line {
            sku: take_s(&mut m, "sku")?,
            name: take_s(&mut m, "name")?,
            qty: take_n(&mut m, "qty")?,
            unit_cents: take_n(&mut m, "unit_cents")?,
        })
    }

    fn address(mut m: Item) -> Result<Address, HandError> {
        Ok(Address {
            name: take_s(&mut m, "name")?,
            street: take_s(&mut m, "street")?,
            city: take_s(&mut m, "city")?,
            postcode: take_s(&mut m, "postcode")?,
            country: take_s(&mut m, "country")?,
        })
    }

    #[inline]
    pub fn decode(mut m: Item) -> Result<Order, HandError> {
        check_entity(&m)?;
        Ok(Order {
            org_id: take_s(&mut m, "org_id")?,
            order_id: take_s(&mut m, "order_id")?,
            customer_email: take_s(&mut m, "customer_email")?,
            status: take_s(&mut m, "status")?,
            total_cents: take_n(&mut m, "total_cents")?,
            created_at: take_n(&mut m, "created_at")?,
            tags: take_l(&mut m, "tags")?.into_iter().map(|v| s(v, "tags[]")).collect::<Result<_, _>>()?,
            lines: take_l(&mut m, "lines")?.into_iter().map(line).collect::<Result<_, _>>()?,
            shipping: match m.remove("shipping") {
                None | Some(AttributeValue::Null(_)) => None,
                Some(AttributeValue::M(a)) => Some(address(a)?),
                Some(_) => return Err(HandError::WrongType("shipping")),
            },
            note: match m.remove("note") {
                None | Some(AttributeValue::Null(_)) => None,
                Some(v) => Some(s(v, "note")?),
            },
            priority: take_n(&mut m, "priority")?,
            paid: match m.remove("paid") {
                Some(AttributeValue::Bool(b)) => b,
                Some(_) => return Err(HandError::WrongType("paid")),
                None => return Err(HandError::Missing("paid")),
            },
        })
    }
}

// ---------------------------------------------------------------------------
// Harness.
// ---------------------------------------------------------------------------

const BATCH: usize = 256;

/// One encode. Never inlined, so that `valgrind --tool=callgrind` can count
/// the instructions of exactly one conversion (one call per conversion of
/// a microsecond or more: no measurable cost to the timings).
#[inline(never)]
fn encode_one<C: Codec>(order: &Order) -> Item {
    C::encode(order)
}

/// One decode; see [`encode_one`].
#[inline(never)]
fn decode_one<C: Codec>(item: Item) -> Order {
    C::decode(item)
}

/// Times `iterations` encodes of `order` (rounded up to whole batches);
/// returns the median over batches of ns/op. The median of small batches
/// (about a millisecond each) rather than the total keeps a batch that was
/// preempted by another process from moving the result.
fn encode_round<C: Codec>(order: &Order, iterations: usize, out: &mut Vec<Item>) -> f64 {
    let mut batches = Vec::with_capacity(iterations.div_ceil(BATCH));
    for _ in 0..iterations.div_ceil(BATCH) {
        let start = Instant::now();
        for _ in 0..BATCH {
            out.push(encode_one::<C>(black_box(order)));
        }
        batches.push(start.elapsed());
        black_box(&mut *out);
        out.clear(); // dropping the results is not encoding
    }
    median_ns_per_op(&mut batches)
}

/// Times `iterations` decodes of clones of `item`; as [`encode_round`].
fn decode_round<C: Codec>(item: &Item, iterations: usize, inputs: &mut Vec<Item>, out: &mut Vec<Order>) -> f64 {
    let mut batches = Vec::with_capacity(iterations.div_ceil(BATCH));
    for _ in 0..iterations.div_ceil(BATCH) {
        inputs.extend((0..BATCH).map(|_| item.clone())); // made outside the timed region
        let start = Instant::now();
        for input in inputs.drain(..) {
            out.push(decode_one::<C>(black_box(input)));
        }
        batches.push(start.elapsed());
        black_box(&mut *out);
        out.clear();
    }
    median_ns_per_op(&mut batches)
}

fn median_ns_per_op(batches: &mut [Duration]) -> f64 {
    batches.sort();
    let n = batches.len();
    let mid = if n % 2 == 1 { batches[n / 2] } else { (batches[n / 2 - 1] + batches[n / 2]) / 2 };
    mid.as_nanos() as f64 / BATCH as f64
}

struct Entry {
    name: &'static str,
    key: &'static str,
    encode: fn(&Order, usize, &mut Vec<Item>) -> f64,
    decode: fn(&Item, usize, &mut Vec<Item>, &mut Vec<Order>) -> f64,
    check: fn(&Order, &Item),
}

fn entry<C: Codec>() -> Entry {
    Entry {
        name: C::NAME,
        key: C::KEY,
        encode: encode_round::<C>,
        decode: decode_round::<C>,
        check: |order, expected| {
            let item = C::encode(order);
            assert_eq!(&item, expected, "{}: encoded item differs from the derive's", C::NAME);
            assert_eq!(&C::decode(item), order, "{}: decoded order differs", C::NAME);
            // Each decoder also reads the item every other encoder wrote.
            assert_eq!(&C::decode(expected.clone()), order, "{}: decoding the reference item", C::NAME);
        },
    }
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn min(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::INFINITY, f64::min)
}

fn spread(xs: &[f64]) -> f64 {
    let lo = min(xs);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    100.0 * (hi - lo) / median(xs)
}

fn main() {
    let mut positional = Vec::new();
    let mut only: Option<(String, String)> = None;
    for arg in std::env::args().skip(1) {
        if let Some(spec) = arg.strip_prefix("--only=") {
            let (key, op) = spec.split_once(':').expect("--only=IMPL:encode|decode");
            only = Some((key.to_string(), op.to_string()));
        } else {
            positional.push(arg);
        }
    }
    let mut positional = positional.into_iter();
    let iterations: usize =
        positional.next().map(|a| a.parse().expect("ITERATIONS must be a number")).unwrap_or(20_000);
    let rounds: usize = positional.next().map(|a| a.parse().expect("ROUNDS must be a number")).unwrap_or(25);
    assert!(iterations > 0 && rounds > 0, "ITERATIONS and ROUNDS must be positive");

    let entries = [entry::<Hand>(), entry::<HandItoa>(), entry::<Derive>(), entry::<SerdeDynamo>(), entry::<Dynamodel_>()];
    let baseline = 0; // ratios are against idiomatic hand-written code

    // Same item from every implementation, and a faithful round trip.
    let order = sample();
    let reference = order.to_item().expect("the sample encodes");
    assert_eq!(reference.len(), 17, "4 key attributes + _et + 12 fields");
    for e in &entries {
        (e.check)(&order, &reference);
    }
    // The checks the hand-written code repeats refuse what the derive refuses.
    for bad in [
        Order { org_id: String::new(), ..order.clone() },
        Order { created_at: -1, ..order.clone() },
        Order { created_at: MAX_CREATED_AT + 1, ..order.clone() },
    ] {
        assert!(bad.to_item().is_err() && keys_std(&bad).is_err() && hand::keys_itoa(&bad).is_err());
    }

    let mut items = Vec::with_capacity(BATCH);
    let mut inputs = Vec::with_capacity(BATCH);
    let mut orders = Vec::with_capacity(BATCH);

    // `--only=IMPL:OP`: one cell alone, for `perf stat` / `perf record`.
    if let Some((key, op)) = only {
        let e = entries.iter().find(|e| e.key == key).unwrap_or_else(|| {
            panic!("unknown implementation {key:?}; one of: {:?}", entries.iter().map(|e| e.key).collect::<Vec<_>>())
        });
        for _ in 0..rounds {
            let ns = match op.as_str() {
                "encode" => (e.encode)(&order, iterations, &mut items),
                "decode" => (e.decode)(&reference, iterations, &mut inputs, &mut orders),
                _ => panic!("OP is encode or decode"),
            };
            println!("{} {op}: {ns:.0} ns/op", e.name);
        }
        return;
    }

    println!(
        "bench-codec: {} attributes per item ({} bytes by DynamoDB's size rule), {iterations} iterations x {rounds} rounds per cell, batches of {BATCH}",
        reference.len(),
        singletable::item_size(&reference)
    );

    // Warm-up: caches, branch predictors, allocator free lists, CPU clock.
    let warm = (iterations / 5).max(BATCH);
    for e in &entries {
        (e.encode)(&order, warm, &mut items);
        (e.decode)(&reference, warm, &mut inputs, &mut orders);
    }

    let mut enc = vec![Vec::with_capacity(rounds); entries.len()];
    let mut dec = vec![Vec::with_capacity(rounds); entries.len()];
    let started = Instant::now();
    for round in 0..rounds {
        // Rotate the order so no implementation always runs first or last.
        for k in 0..entries.len() {
            let i = (round + k) % entries.len();
            enc[i].push((entries[i].encode)(&order, iterations, &mut items));
        }
        for k in 0..entries.len() {
            let i = (round + k) % entries.len();
            dec[i].push((entries[i].decode)(&reference, iterations, &mut inputs, &mut orders));
        }
    }
    let elapsed = started.elapsed();

    let enc_base = median(&enc[baseline]);
    let dec_base = median(&dec[baseline]);
    println!();
    println!(
        "{:<22} {:>9} {:>7} {:>8} {:>7}   {:>9} {:>7} {:>8} {:>7}",
        "implementation", "encode ns", "min", "vs hand", "spread", "decode ns", "min", "vs hand", "spread"
    );
    println!("{}", "-".repeat(100));
    for (i, e) in entries.iter().enumerate() {
        let (em, dm) = (median(&enc[i]), median(&dec[i]));
        println!(
            "{:<22} {:>9.0} {:>7.0} {:>7.2}x {:>6.1}%   {:>9.0} {:>7.0} {:>7.2}x {:>6.1}%",
            e.name,
            em,
            min(&enc[i]),
            em / enc_base,
            spread(&enc[i]),
            dm,
            min(&dec[i]),
            dm / dec_base,
            spread(&dec[i]),
        );
    }
    println!("{}", "-".repeat(100));
    // The spec's target: derive within 1.15x of hand-written, judged against
    // both hand-written baselines.
    let target = 1.15;
    let derive = entries.iter().position(|e| e.key == Derive::KEY).unwrap();
    for base in [baseline, entries.iter().position(|e| e.key == HandItoa::KEY).unwrap()] {
        let re = median(&enc[derive]) / median(&enc[base]);
        let rd = median(&dec[derive]) / median(&dec[base]);
        let verdict = |r: f64| if r <= target { "met" } else { "MISSED" };
        println!(
            "derive / {:<19} encode {re:.2}x ({}), decode {rd:.2}x ({})   [target {target:.2}x]",
            format!("{}:", entries[base].name),
            verdict(re),
            verdict(rd),
        );
    }
    println!(
        "ns/op: median and min over {rounds} rounds (each round's figure is its median batch); ratios of medians; \
         spread = (max - min) / median; timed loops took {:.1}s",
        elapsed.as_secs_f64()
    );
}
