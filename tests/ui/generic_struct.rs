// Generic structs are refused; code using the type still sees an `Item`
// impl (no "missing generics" or "trait not implemented" cascade).
#[derive(singletable::Item)]
#[item(pk = "USER#{user_id}", sk = "PROFILE")]
struct User<T> {
    user_id: String,
    extra: T,
}

fn save<T>(user: &User<T>) {
    let _ = <User<T> as singletable::Item>::to_item(user);
}

fn main() {}
