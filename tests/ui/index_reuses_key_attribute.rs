// Index keys stored in attributes that already hold another index's key,
// the table's sort key, or the entity type.
#[derive(singletable::Item)]
#[item(pk = "ORG#{org_id}", sk = "USER#{user_id}")]
#[item(index(name = "gsi1", pk = "EMAIL#{email}"))]
#[item(index(name = "gsi2", pk = "EMAIL#{email}", pk_attr = "gsi1pk"))]
#[item(index(name = "gsi3", pk = "EMAIL#{email}", sk = "USER", sk_attr = "sk"))]
#[item(index(name = "gsi4", pk = "EMAIL#{email}", pk_attr = "_et"))]
struct User {
    org_id: String,
    user_id: String,
    email: String,
}

fn main() {}
