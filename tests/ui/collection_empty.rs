// An empty enum; `#[item]` on the enum and on a variant.
#[derive(singletable::Collection)]
enum Nothing {}

#[derive(singletable::Item)]
#[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
struct User {
    org: String,
    id: String,
}

#[derive(singletable::Collection)]
#[item(entity = "Org")]
enum Org {
    #[item(entity = "U")]
    User(User),
}

fn main() {}
