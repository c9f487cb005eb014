// What the key design forbids does not compile: a table key field cannot
// change in place, a managed field is the toolkit's, and DynamoDB cannot
// compute the new value of an index key field.
use singletable::{Item, Table};

#[derive(Item)]
#[item(pk = "ORG#{org}", sk = "USER#{id}")]
#[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
struct User {
    org: String,
    id: String,
    email: String,
    rank: u32,
    #[item(version)]
    version: u64,
}

#[derive(Item)]
#[item(pk = "RANK#{rank}", sk = "X")]
#[item(index(name = "gsi1", pk = "SCORE#{score}", sk = "X"))]
struct Board {
    rank: u32,
    score: u32,
}

fn demo(table: &Table) {
    let f = User::fields();
    let _ = table.update::<User>(&("o".into(), "u".into())).set(f.id, "other");
    let _ = table.update::<User>(&("o".into(), "u".into())).set(f.version, 7u64);
    let b = Board::fields();
    let _ = table.update::<Board>(&(1,)).add(b.score, 1);
    let _ = table.update::<Board>(&(1,)).set_if_not_exists(b.score, 1);
}

fn main() {}
