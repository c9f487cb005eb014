#[derive(singletable::Item)]
#[item(pk = "SHAPE#{id}", sk = "SHAPE")]
enum Shape {
    Circle { id: String },
    Square { id: String },
}

fn main() {}
