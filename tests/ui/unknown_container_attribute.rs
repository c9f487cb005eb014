// `table` is not a container attribute. The attributes after it in the
// same `#[item]` are still read: no "missing sort key" follows.
#[derive(singletable::Item)]
#[item(pk = "USER#{user_id}", table = "app", sk = "PROFILE")]
struct User {
    user_id: String,
}

fn main() {}
