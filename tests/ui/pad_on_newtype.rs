// Zero padding on a newtype whose `KeyPart` kind is not `Int`: only the
// type's impl knows, so this is checked when the design is evaluated.
use singletable::{AttrError, AttrType, AttrValue, AttributeValue, KeyKind, KeyPart};

struct OrderNo(String);

impl AttrValue for OrderNo {
    const TYPE: AttrType = AttrType::S;
    fn to_attr(&self) -> Result<AttributeValue, AttrError> {
        self.0.to_attr()
    }
    fn from_attr(value: AttributeValue) -> Result<Self, AttrError> {
        String::from_attr(value).map(OrderNo)
    }
}

impl KeyPart for OrderNo {
    const KIND: KeyKind = KeyKind::Str;
    fn write_key(&self, out: &mut String, pad: Option<u8>) -> Result<(), String> {
        self.0.write_key(out, pad)
    }
}

#[derive(singletable::Item)]
#[item(pk = "ORG#{org_id}", sk = "ORDER#{number:08}")]
struct Order {
    org_id: String,
    number: OrderNo,
}

fn main() {}
