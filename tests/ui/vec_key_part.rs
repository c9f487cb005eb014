// A collection cannot fill a placeholder.
#[derive(singletable::Item)]
#[item(pk = "TAGS#{tags}", sk = "POST")]
struct Post {
    tags: Vec<String>,
}

fn main() {}
