// A variant wrapping a type that is not an entity.
#[derive(singletable::Item)]
#[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
struct User {
    org: String,
    id: String,
}

struct Plain {
    id: String,
}

#[derive(singletable::Collection)]
enum Org {
    User(User),
    Plain(Plain),
}

fn main() {}
