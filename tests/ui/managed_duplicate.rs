// At most one field per role, one role per field, each attribute once.
#[derive(singletable::Item)]
#[item(pk = "DOC#{id}", sk = "DOC")]
struct Doc {
    id: String,
    #[item(version)]
    version: u64,
    #[item(version)]
    revision: u64,
    #[item(ttl, created_at)]
    expires: Option<std::time::SystemTime>,
    #[item(updated_at, updated_at)]
    touched: Option<std::time::SystemTime>,
}

fn main() {}
