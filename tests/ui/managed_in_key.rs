// A managed field cannot be a key part: the key would change with it.
#[derive(singletable::Item)]
#[item(pk = "DOC#{id}", sk = "V#{version}")]
#[item(index(name = "gsi1", pk = "EXPIRES#{expires}", sk = "CREATED#{created}"))]
struct Doc {
    id: String,
    #[item(version)]
    version: u64,
    #[item(ttl)]
    expires: u64,
    #[item(created_at)]
    created: Option<std::time::SystemTime>,
}

fn main() {}
