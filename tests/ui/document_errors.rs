// `#[derive(Document)]` shares the field checks of `#[derive(Item)]`, and
// code using the broken type sees no "AttrValue not implemented".
use singletable::AttrValue;

#[derive(singletable::Document)]
struct Address {
    #[item(rename = "line")]
    street: String,
    #[item(rename = "line")]
    city: String,
    #[item(flatten)]
    extra: String,
}

#[derive(singletable::Document)]
struct Pair(String, String);

fn encode(a: &Address) -> AttributeValue {
    a.to_attr().unwrap()
}

use singletable::AttributeValue;

fn main() {}
