// Two indexes with the same name.
#[derive(singletable::Item)]
#[item(pk = "ORG#{org_id}", sk = "USER#{user_id}")]
#[item(index(name = "gsi1", pk = "EMAIL#{email}"))]
#[item(index(name = "gsi1", pk = "NAME#{name}"))]
struct User {
    org_id: String,
    user_id: String,
    email: String,
    name: String,
}

fn main() {}
