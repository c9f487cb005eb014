// A `skip` field is not stored, so it cannot be part of a key.
#[derive(singletable::Item)]
#[item(pk = "ORG#{org_id}", sk = "USER#{user_id}")]
struct User {
    org_id: String,
    #[item(skip)]
    user_id: String,
}

fn main() {}
