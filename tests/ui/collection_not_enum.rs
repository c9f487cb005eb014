// A struct (and a generic one) is not a collection.
#[derive(singletable::Collection)]
struct Org {
    name: String,
}

#[derive(singletable::Collection)]
enum Generic<T> {
    One(T),
}

fn main() {}
