// Malformed attribute values: a key without `= "..."`, and a non-string.
#[derive(singletable::Item)]
#[item(pk = "USER#{user_id}", sk)]
struct User {
    user_id: String,
}

#[derive(singletable::Item)]
#[item(pk = "USER#{user_id}", sk = 7)]
struct Account {
    user_id: String,
}

fn main() {}
