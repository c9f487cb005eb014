// A `serde` field has no key form.
#[derive(singletable::Item)]
#[item(pk = "ORG#{org_id}", sk = "USER#{user_id}")]
struct User {
    org_id: String,
    #[item(serde)]
    user_id: String,
}

fn main() {}
