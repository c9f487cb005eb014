// A field type with no `AttrValue` implementation (and no `serde`).
#[derive(singletable::Item)]
#[item(pk = "USER#{user_id}", sk = "PROFILE")]
struct User {
    user_id: String,
    joined: std::time::SystemTime,
}

fn main() {}
