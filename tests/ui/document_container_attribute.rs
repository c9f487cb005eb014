// Documents are stored inside items: they have no keys.
#[derive(singletable::Document)]
#[item(pk = "ADDRESS#{city}")]
struct Address {
    city: String,
}

fn main() {}
