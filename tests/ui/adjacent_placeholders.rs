// Two placeholders with no literal between them could not be parsed back.
#[derive(singletable::Item)]
#[item(pk = "ORG#{org_id}{team_id}", sk = "USER#{user_id}")]
struct User {
    org_id: String,
    team_id: String,
    user_id: String,
}

fn main() {}
