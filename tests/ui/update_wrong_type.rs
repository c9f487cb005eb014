// Values, fields and conditions are typed by field and entity.
use singletable::{Item, Table};

#[derive(Item)]
#[item(pk = "ORG#{org}", sk = "USER#{id}")]
struct User {
    org: String,
    id: String,
    name: String,
    logins: u32,
    tags: Vec<String>,
}

#[derive(Item)]
#[item(pk = "ORG#{org}", sk = "ORDER#{n}")]
struct Order {
    org: String,
    n: u32,
}

fn demo(table: &Table) {
    let f = User::fields();
    let o = Order::fields();
    let key = ("o".to_string(), "u".to_string());
    let _ = table.update::<User>(&key).set(f.name, 5);
    let _ = table.update::<User>(&key).remove(f.name);
    let _ = table.update::<User>(&key).add(f.name, 1);
    let _ = table.update::<User>(&key).append(f.logins, [1u32]);
    let _ = table.update::<User>(&key).condition(o.n.eq(1u32));
    let _ = f.logins.begins_with("1");
}

fn main() {}
