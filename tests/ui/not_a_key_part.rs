// A stored type (it implements `AttrValue`) that does not implement
// `KeyPart`, used in a template.
use singletable::{AttrError, AttrType, AttrValue, AttributeValue};

struct Uuid(String);

impl AttrValue for Uuid {
    const TYPE: AttrType = AttrType::S;
    fn to_attr(&self) -> Result<AttributeValue, AttrError> {
        self.0.to_attr()
    }
    fn from_attr(value: AttributeValue) -> Result<Self, AttrError> {
        String::from_attr(value).map(Uuid)
    }
}

#[derive(singletable::Item)]
#[item(pk = "USER#{id}", sk = "PROFILE")]
struct User {
    id: Uuid,
}

fn main() {}
