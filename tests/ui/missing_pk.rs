// No partition key template.
#[derive(singletable::Item)]
#[item(sk = "USER#{user_id}")]
struct User {
    user_id: String,
}

fn main() {}
