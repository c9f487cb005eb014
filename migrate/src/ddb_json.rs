//! DynamoDB's typed JSON (`{"S": "x"}`, `{"N": "1"}`, `{"M": {...}}`), the
//! format of export files (one item per line) and of NoSQL Workbench data.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Value};

/// One value as typed JSON; an error for a type this SDK version does not
/// know (nothing is written as `null` in its place).
pub fn value_to_json(value: &AttributeValue) -> Result<Value, String> {
    check_known(value)?;
    serde_json::to_value(serde_dynamo::AttributeValue::from(value.clone())).map_err(|e| e.to_string())
}

/// An item as typed JSON, attributes in name order (stable output); an
/// error names the attribute whose type is unknown.
pub fn item_to_json(item: &HashMap<String, AttributeValue>) -> Result<Value, String> {
    let mut names: Vec<&String> = item.keys().collect();
    names.sort();
    let mut out = Map::new();
    for k in names {
        out.insert(k.clone(), value_to_json(&item[k]).map_err(|e| format!("attribute `{k}`: {e}"))?);
    }
    Ok(Value::Object(out))
}

/// Reads one typed-JSON value.
pub fn value_from_json(value: &Value) -> Result<AttributeValue, String> {
    let read: serde_dynamo::AttributeValue = serde_json::from_value(value.clone()).map_err(|e| format!("{e}: {value}"))?;
    Ok(read.into())
}

/// Reads a typed-JSON item.
pub fn item_from_json(value: &Value) -> Result<HashMap<String, AttributeValue>, String> {
    let obj = value.as_object().ok_or_else(|| format!("expected an object of attributes, found {value}"))?;
    obj.iter().map(|(k, v)| Ok((k.clone(), value_from_json(v).map_err(|e| format!("{k}: {e}"))?))).collect()
}

/// serde_dynamo panics on a type newer than itself: refuse it first.
fn check_known(value: &AttributeValue) -> Result<(), String> {
    match value {
        AttributeValue::S(_)
        | AttributeValue::N(_)
        | AttributeValue::B(_)
        | AttributeValue::Bool(_)
        | AttributeValue::Null(_)
        | AttributeValue::Ss(_)
        | AttributeValue::Ns(_)
        | AttributeValue::Bs(_) => Ok(()),
        AttributeValue::L(l) => l.iter().enumerate().try_for_each(|(i, v)| check_known(v).map_err(|e| format!("[{i}]: {e}"))),
        AttributeValue::M(m) => m.iter().try_for_each(|(k, v)| check_known(v).map_err(|e| format!("{k}: {e}"))),
        other => Err(format!("a DynamoDB type this SDK version does not know ({other:?}) has no typed JSON")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::primitives::Blob;
    use serde_json::json;

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
        let json = item_to_json(&item).unwrap();
        assert_eq!(item_from_json(&json).unwrap(), item);
        let line = serde_json::to_string(&json).unwrap();
        assert!(line.starts_with(r#"{"b":{"B":"AP8H"}"#), "{line}");
        assert!(value_from_json(&json!({"X": 1})).is_err());
    }
}
