// An empty template would render an empty key attribute.
#[derive(singletable::Item)]
#[item(pk = "ORG#{org_id}", sk = "")]
struct User {
    org_id: String,
    user_id: String,
}

fn main() {}
