// `projection` is not an index attribute; the index is still read.
#[derive(singletable::Item)]
#[item(pk = "ORG#{org_id}", sk = "USER#{user_id}")]
#[item(index(name = "gsi1", projection = "ALL", pk = "EMAIL#{email}"))]
struct User {
    org_id: String,
    user_id: String,
    email: String,
}

fn main() {}
