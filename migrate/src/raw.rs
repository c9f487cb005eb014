//! The raw item: a DynamoDB item as the SDK holds it, attribute name to
//! value. Named apart from the [`singletable::Item`] trait (a typed item)
//! so that the two never shadow each other.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// A DynamoDB item (or key) as the SDK holds it.
pub type RawItem = HashMap<String, AttributeValue>;
