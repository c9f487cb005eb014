// Table keys must always exist: `Option` only in index templates.
#[derive(singletable::Item)]
#[item(pk = "ORG#{org_id}", sk = "USER#{user_id}")]
struct User {
    org_id: Option<String>,
    user_id: Option<String>,
}

fn main() {}
