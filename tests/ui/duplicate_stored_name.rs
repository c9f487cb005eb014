// Two fields stored under one attribute name.
#[derive(singletable::Item)]
#[item(pk = "USER#{user_id}", sk = "PROFILE")]
struct User {
    user_id: String,
    #[item(rename = "name")]
    display_name: String,
    #[item(rename = "name")]
    full_name: String,
}

fn main() {}
