// Floats have no exact text form to key on.
#[derive(singletable::Item)]
#[item(pk = "ORG#{org_id}", sk = "READING#{value}")]
struct Reading {
    org_id: String,
    value: f64,
}

fn main() {}
