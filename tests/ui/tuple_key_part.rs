// A type that is not a path (here a tuple) cannot fill a placeholder.
#[derive(singletable::Item)]
#[item(pk = "AT#{at}", sk = "POINT")]
struct Point {
    at: (i32, i32),
}

fn main() {}
