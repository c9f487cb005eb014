// `rename_all` is not a field attribute. The `rename` after it is still
// read, so no "field `pk` would be stored as `pk`" follows.
#[derive(singletable::Item)]
#[item(pk = "USER#{user_id}", sk = "PROFILE")]
struct User {
    user_id: String,
    #[item(rename_all = "camelCase", rename = "pk_value")]
    pk: String,
}

fn main() {}
