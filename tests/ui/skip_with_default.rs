// `default` and `serde` mean nothing on a field that is not stored.
#[derive(singletable::Item)]
#[item(pk = "USER#{user_id}", sk = "PROFILE")]
struct User {
    user_id: String,
    #[item(skip, default)]
    cache: Vec<u8>,
    #[item(serde, skip)]
    session: Option<String>,
}

fn main() {}
