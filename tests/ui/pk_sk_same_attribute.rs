// The partition and sort keys cannot share one attribute.
#[derive(singletable::Item)]
#[item(pk = "ORG#{org_id}", sk = "USER#{user_id}", sk_attr = "pk")]
struct User {
    org_id: String,
    user_id: String,
}

fn main() {}
