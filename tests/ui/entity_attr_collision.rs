// The entity-type attribute cannot be a key attribute: it would overwrite
// the key with the entity name.
#[derive(singletable::Item)]
#[item(pk = "ORG#{org_id}", sk = "USER#{user_id}", entity_attr = "sk")]
struct User {
    org_id: String,
    user_id: String,
}

fn main() {}
