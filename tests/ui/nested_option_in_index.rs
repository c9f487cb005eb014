// `Option` makes an index sparse; `Option<Option<_>>` has no key form.
#[derive(singletable::Item)]
#[item(pk = "ORG#{org_id}", sk = "USER#{user_id}")]
#[item(index(name = "gsi1", pk = "EMAIL#{email}"))]
struct User {
    org_id: String,
    user_id: String,
    email: Option<Option<String>>,
}

fn main() {}
