// Fields are named in templates, so they need names.
#[derive(singletable::Item)]
#[item(pk = "USER#{0}", sk = "PROFILE")]
struct User(String);

fn main() {}
