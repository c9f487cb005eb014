// A placeholder naming a field the struct does not have.
#[derive(singletable::Item)]
#[item(pk = "ORG#{org}", sk = "USER#{user_id}")]
struct User {
    org_id: String,
    user_id: String,
}

fn main() {}
