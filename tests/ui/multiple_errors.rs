// Every error is reported at once, each at its own span, and code using
// the type sees no "the trait `Item` is not implemented" cascade.
#[derive(singletable::Item)]
#[item(entity = "User", pk = "ORG#{org}", sk = "USER#{user_id:08}")]
#[item(index(name = "gsi1", pk = "EMAIL#{email}{name}"))]
#[item(index(name = "gsi2", pk = "SCORE#{score}", ttl = "30d"))]
struct User {
    org_id: String,
    user_id: String,
    email: String,
    name: String,
    score: f64,
    #[item(rename = "email")]
    contact: String,
}

fn save(user: &User) {
    let _ = <User as singletable::Item>::to_item(user);
    let _: &singletable::EntityDesign = <User as singletable::Item>::DESIGN;
}

fn main() {}
