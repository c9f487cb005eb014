// The toolkit reads and writes managed fields itself: they must be stored,
// with its own encoding.
#[derive(singletable::Item)]
#[item(pk = "DOC#{id}", sk = "DOC")]
struct Doc {
    id: String,
    #[item(version, skip)]
    version: u64,
    #[item(serde, ttl)]
    expires: u64,
}

fn main() {}
