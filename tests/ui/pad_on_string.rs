// Zero padding on a `String` field.
#[derive(singletable::Item)]
#[item(pk = "ORG#{org_id}", sk = "ORDER#{number:08}")]
struct Order {
    org_id: String,
    number: String,
}

fn main() {}
