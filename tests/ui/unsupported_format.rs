// The only format is zero padding, `{n:0N}`.
#[derive(singletable::Item)]
#[item(pk = "ORG#{org_id}", sk = "ORDER#{number:x}")]
struct Order {
    org_id: String,
    number: u64,
}

fn main() {}
