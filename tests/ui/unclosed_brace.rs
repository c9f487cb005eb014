// `{` opens a placeholder; `{{` is a literal brace.
#[derive(singletable::Item)]
#[item(pk = "ORG#{org_id", sk = "USER#{user_id}")]
struct User {
    org_id: String,
    user_id: String,
}

fn main() {}
