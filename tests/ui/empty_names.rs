// Empty entity and attribute names.
#[derive(singletable::Item)]
#[item(entity = "", entity_attr = "", pk = "ORG#{org_id}", sk = "USER#{user_id}", pk_attr = "")]
struct User {
    org_id: String,
    user_id: String,
    #[item(rename = "")]
    name: String,
}

fn main() {}
