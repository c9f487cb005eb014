//! DynamoDB's typed JSON (`{"S": "x"}`, `{"N": "1"}`, `{"M": {...}}`), the
//! format of export files (one item per line) and of NoSQL Workbench data.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Map, Value};

/// One value as typed JSON.
pub fn value_to_json(value: &AttributeValue) -> Value {
    let b64 = |b: &Blob| Value::String(aws_smithy_types::base64::encode(b.as_ref()));
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::L(v) => json!({ "L": v.iter().map(value_to_json).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": item_to_json(m) }),
        _ => Value::Null,
    }
}

/// An item as typed JSON, attributes in name order (stable output).
pub fn item_to_json(item: &HashMap<String, AttributeValue>) -> Value {
    let mut names: Vec<&String> = item.keys().collect();
    names.sort();
    Value::Object(names.into_iter().map(|k| (k.clone(), value_to_json(&item[k]))).collect::<Map<_, _>>())
}

/// Reads one typed-JSON value.
pub fn value_from_json(value: &Value) -> Result<AttributeValue, String> {
    let obj = value.as_object().filter(|o| o.len() == 1).ok_or_else(|| format!("expected {{\"TYPE\": value}}, found {value}"))?;
    let (tag, inner) = obj.iter().next().expect("one entry");
    let text = |v: &Value| v.as_str().map(String::from).ok_or_else(|| format!("{tag}: expected a string, found {v}"));
    let list = |v: &Value| v.as_array().cloned().ok_or_else(|| format!("{tag}: expected an array, found {v}"));
    let blob = |v: &Value| -> Result<Blob, String> {
        aws_smithy_types::base64::decode(text(v)?).map(Blob::new).map_err(|e| format!("{tag}: {e}"))
    };
    Ok(match tag.as_str() {
        "S" => AttributeValue::S(text(inner)?),
        "N" => AttributeValue::N(text(inner)?),
        "B" => AttributeValue::B(blob(inner)?),
        "BOOL" => AttributeValue::Bool(inner.as_bool().ok_or("BOOL: expected true or false")?),
        "NULL" => AttributeValue::Null(true),
        "SS" => AttributeValue::Ss(list(inner)?.iter().map(text).collect::<Result<_, _>>()?),
        "NS" => AttributeValue::Ns(list(inner)?.iter().map(text).collect::<Result<_, _>>()?),
        "BS" => AttributeValue::Bs(list(inner)?.iter().map(blob).collect::<Result<_, _>>()?),
        "L" => AttributeValue::L(list(inner)?.iter().map(value_from_json).collect::<Result<_, _>>()?),
        "M" => AttributeValue::M(item_from_json(inner)?),
        other => return Err(format!("unknown DynamoDB type `{other}`")),
    })
}

/// Reads a typed-JSON item.
pub fn item_from_json(value: &Value) -> Result<HashMap<String, AttributeValue>, String> {
    let obj = value.as_object().ok_or_else(|| format!("expected an object of attributes, found {value}"))?;
    obj.iter().map(|(k, v)| Ok((k.clone(), value_from_json(v).map_err(|e| format!("{k}: {e}"))?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips() {
        let item: HashMap<String, AttributeValue> = [
            ("s", AttributeValue::S("x".into())),
            ("n", AttributeValue::N("-1.5".into())),
            ("b", AttributeValue::B(Blob::new(vec![0, 255, 7]))),
            ("t", AttributeValue::Bool(true)),
            ("z", AttributeValue::Null(true)),
            ("ss", AttributeValue::Ss(vec!["a".into(), "b".into()])),
            ("ns", AttributeValue::Ns(vec!["1".into()])),
            ("bs", AttributeValue::Bs(vec![Blob::new(vec![1])])),
            ("l", AttributeValue::L(vec![AttributeValue::S("y".into()), AttributeValue::M(HashMap::new())])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let json = item_to_json(&item);
        assert_eq!(item_from_json(&json).unwrap(), item);
        let line = serde_json::to_string(&json).unwrap();
        assert!(line.starts_with(r#"{"b":{"B":"AP8H"}"#), "{line}");
        assert!(value_from_json(&json!({"X": 1})).is_err());
    }
}
