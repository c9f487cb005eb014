// An index needs a partition key template.
#[derive(singletable::Item)]
#[item(pk = "ORG#{org_id}", sk = "USER#{user_id}")]
#[item(index(name = "gsi1", sk = "EMAIL#{email}"))]
struct User {
    org_id: String,
    user_id: String,
    email: String,
}

fn main() {}
