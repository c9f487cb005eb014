// `sk_attr` names the attribute of an index sort key the index lacks.
#[derive(singletable::Item)]
#[item(pk = "ORG#{org_id}", sk = "USER#{user_id}")]
#[item(index(name = "gsi1", pk = "EMAIL#{email}", sk_attr = "gsi1_sort"))]
struct User {
    org_id: String,
    user_id: String,
    email: String,
}

fn main() {}
