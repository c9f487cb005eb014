// Managed fields belong to entities: a document stored inside an item has
// no version, expiry or timestamps of its own.
#[derive(singletable::Document)]
struct Address {
    street: String,
    #[item(version)]
    version: u64,
    #[item(updated_at)]
    changed: Option<std::time::SystemTime>,
}

fn main() {}
