//! The items the toolkit keeps in the user's table, all under the partition
//! key value [`RESERVED_PK`] (in the design's partition key attribute):
//!
//! | sort key | what |
//! | --- | --- |
//! | [`DESIGN_SK`] | the design the table was last migrated to |
//! | [`LOCK_SK`] | the apply lock (a lease) |
//! | [`CHECKPOINT_PREFIX`]`<migration id>#<segment>` | apply checkpoints |
//! | [`CHECKPOINT_PREFIX`]`<migration id>#shard#<shard id>` | where an online apply's stream replay stands in each shard |
//! | [`ONLINE_SK`] | the phase of an online apply in progress |
//!
//! None of them carries the entity-type attribute nor any index key
//! attribute, so entity queries and sparse indexes never see them; scans
//! must skip them with [`is_reserved`].

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use singletable::{item_size, TableDesign, MAX_ITEM_BYTES};

use crate::error::MigrateError;
use crate::raw::RawItem;
use crate::retry::retrying;

pub use singletable::reserved::{DESIGN_ATTR, DESIGN_SK, ONLINE_SK, PHASE_ATTR, RESERVED_PK, WRITE_TOKEN_ATTR};

/// Sort key of the apply lock.
pub const LOCK_SK: &str = "#LOCK";
/// Sort key prefix of checkpoints: `#CHECKPOINT#<migration id>#<segment>`.
pub const CHECKPOINT_PREFIX: &str = "#CHECKPOINT#";

/// Attribute of the design item holding when it was recorded (epoch seconds).
pub const RECORDED_AT_ATTR: &str = "recorded_at";
/// Attribute of the design item naming the toolkit version that wrote it.
pub const RECORDED_BY_ATTR: &str = "recorded_by";

/// The sort key of one checkpoint.
pub fn checkpoint_sk(migration_id: &str, segment: u32) -> String {
    format!("{CHECKPOINT_PREFIX}{migration_id}#{segment}")
}

/// The last part of a migration's layout mark (written once every
/// segment's checkpoint exists): `#CHECKPOINT#<migration>#layout`.
pub const LAYOUT_MARK: &str = "layout";

/// The sort key of a migration's layout mark.
pub fn layout_sk(migration_id: &str) -> String {
    format!("{CHECKPOINT_PREFIX}{migration_id}#{LAYOUT_MARK}")
}

/// The primary key of a reserved item.
pub fn reserved_key(pk_attr: &str, sk_attr: &str, sk: &str) -> RawItem {
    HashMap::from([
        (pk_attr.to_string(), AttributeValue::S(RESERVED_PK.to_string())),
        (sk_attr.to_string(), AttributeValue::S(sk.to_string())),
    ])
}

/// Whether a raw item is one of the toolkit's own (its partition key, in
/// `design`'s partition key attribute, is [`RESERVED_PK`]).
pub fn is_reserved(item: &RawItem, design: &TableDesign) -> bool {
    is_reserved_in(item, &design.pk_attr)
}

/// [`is_reserved`] given only the partition key attribute.
pub fn is_reserved_in(item: &RawItem, pk_attr: &str) -> bool {
    matches!(item.get(pk_attr), Some(AttributeValue::S(pk)) if pk == RESERVED_PK)
}

/// Reads the design recorded in `table` (a strongly consistent read).
/// `Ok(None)` when the table holds none.
pub async fn read_recorded_design(
    client: &Client,
    table: &str,
    pk_attr: &str,
    sk_attr: &str,
) -> Result<Option<TableDesign>, MigrateError> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(reserved_key(pk_attr, sk_attr, DESIGN_SK)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| MigrateError::dynamo("GetItem", table, e))?;
    let Some(item) = out.item else { return Ok(None) };
    let json = match item.get(DESIGN_ATTR) {
        Some(AttributeValue::S(json)) => json,
        _ => {
            return Err(MigrateError::Other(format!(
                "table `{table}`: the reserved item ({RESERVED_PK}, {DESIGN_SK}) has no string attribute `{DESIGN_ATTR}`"
            )))
        }
    };
    let design = TableDesign::from_json(json).map_err(|e| {
        MigrateError::Other(format!("table `{table}`: the recorded design ({RESERVED_PK}, {DESIGN_SK}) is unreadable: {e}"))
    })?;
    Ok(Some(design))
}

/// Records `design` as the one `table` is migrated to (replacing any
/// earlier record): the design file JSON in [`DESIGN_ATTR`], the time in
/// [`RECORDED_AT_ATTR`]. Keyed with `design`'s key attributes.
pub async fn record_design(client: &Client, design: &TableDesign, table: &str) -> Result<(), MigrateError> {
    let item = design_item(design, unix_now());
    let size = item_size(&item);
    if size > MAX_ITEM_BYTES {
        return Err(MigrateError::Other(format!(
            "table `{table}`: the design is {size} bytes as a reserved item; DynamoDB allows at most {MAX_ITEM_BYTES}"
        )));
    }
    retrying(|| client.put_item().table_name(table).set_item(Some(item.clone())).send())
        .await
        .map_err(|e| MigrateError::dynamo("PutItem", table, e))?;
    Ok(())
}

/// The reserved item recording `design` at `recorded_at` (epoch seconds).
pub fn design_item(design: &TableDesign, recorded_at: u64) -> RawItem {
    let mut item = reserved_key(&design.pk_attr, &design.sk_attr, DESIGN_SK);
    item.insert(DESIGN_ATTR.to_string(), AttributeValue::S(design.to_json()));
    item.insert(RECORDED_AT_ATTR.to_string(), AttributeValue::N(recorded_at.to_string()));
    item.insert(
        RECORDED_BY_ATTR.to_string(),
        AttributeValue::S(concat!("singletable-migrate ", env!("CARGO_PKG_VERSION")).to_string()),
    );
    item
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use singletable::Item;

    #[derive(singletable::Item)]
    #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
    struct User {
        org: String,
        id: String,
    }

    #[test]
    fn reserved_items_are_recognised_and_carry_no_entity_type() {
        let design = TableDesign::new("app").entity::<User>().build().unwrap();
        let item = design_item(&design, 1_700_000_000);
        assert!(is_reserved(&item, &design));
        assert!(!design.entities[0].owns(&item));
        assert_eq!(item["recorded_at"], AttributeValue::N("1700000000".into()));
        let back = TableDesign::from_json(item["design"].as_s().unwrap()).unwrap();
        assert_eq!(back, design);
        let user = User { org: "acme".into(), id: "ann".into() }.to_item().unwrap();
        assert!(!is_reserved(&user, &design));
        assert_eq!(checkpoint_sk("m1", 3), "#CHECKPOINT#m1#3");
    }
}
