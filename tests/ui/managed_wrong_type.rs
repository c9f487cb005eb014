// Each managed field has a trait its type must implement.
#[derive(singletable::Item)]
#[item(pk = "DOC#{id}", sk = "DOC")]
struct Doc {
    id: String,
    #[item(version)]
    version: String,
    #[item(ttl)]
    expires: f64,
    #[item(created_at)]
    created: u64,
}

fn main() {}
