// Fields whose stored names collide with the key and entity-type
// attributes (`pk`, a renamed `_et`, an index key).
#[derive(singletable::Item)]
#[item(pk = "ORG#{org_id}", sk = "USER#{user_id}")]
#[item(index(name = "gsi1", pk = "EMAIL#{email}"))]
struct User {
    org_id: String,
    user_id: String,
    email: String,
    pk: String,
    #[item(rename = "_et")]
    kind: String,
    gsi1pk: String,
}

fn main() {}
