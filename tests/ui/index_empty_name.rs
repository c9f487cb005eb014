// An index name must not be empty.
#[derive(singletable::Item)]
#[item(pk = "ORG#{org_id}", sk = "USER#{user_id}")]
#[item(index(name = "", pk = "EMAIL#{email}"))]
struct User {
    org_id: String,
    user_id: String,
    email: String,
}

fn main() {}
