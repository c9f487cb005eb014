// Two types that claim one entity name cannot be told apart by it.
#[derive(singletable::Item)]
#[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
struct User {
    org: String,
    id: String,
}

#[derive(singletable::Item)]
#[item(entity = "User", pk = "ORG#{org}", sk = "MEMBER#{id}")]
struct Member {
    org: String,
    id: String,
}

#[derive(singletable::Collection)]
enum Org {
    User(User),
    Member(Member),
}

fn main() {}
