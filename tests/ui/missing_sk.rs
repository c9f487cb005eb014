// No sort key template.
#[derive(singletable::Item)]
#[item(pk = "USER#{user_id}")]
struct User {
    user_id: String,
}

fn main() {}
