// Variants that do not wrap exactly one `Item` type, a discriminant, and
// the same type twice: every error at once, each at its variant.
#[derive(singletable::Item)]
#[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
struct User {
    org: String,
    id: String,
}

#[derive(singletable::Item)]
#[item(entity = "Task", pk = "ORG#{org}", sk = "TASK#{id}")]
struct Task {
    org: String,
    id: String,
}

#[derive(singletable::Collection)]
enum Org {
    User(User),
    Nothing,
    Named { task: Task },
    Pair(User, Task),
    Again(User),
}

fn main() {}
