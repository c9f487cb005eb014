// The same container attribute given twice, across two `#[item]`s.
#[derive(singletable::Item)]
#[item(pk = "USER#{user_id}", sk = "PROFILE")]
#[item(pk = "ACCOUNT#{user_id}")]
struct User {
    user_id: String,
}

fn main() {}
