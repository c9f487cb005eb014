// A field type with no `AttrValue` implementation (and no `serde`).
#[derive(singletable::Item)]
#[item(pk = "USER#{user_id}", sk = "PROFILE")]
struct User {
    user_id: String,
    address: std::net::Ipv4Addr,
}

fn main() {}
