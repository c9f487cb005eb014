// `{}` names no field.
#[derive(singletable::Item)]
#[item(pk = "ORG#{}", sk = "USER#{user_id}")]
struct User {
    org_id: String,
    user_id: String,
}

fn main() {}
