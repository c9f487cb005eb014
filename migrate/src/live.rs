//! What DescribeTable (and friends) say about the live table.

use aws_sdk_dynamodb::types::{KeyType, StreamViewType, TimeToLiveStatus};
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};
use singletable::{StreamView, TableIndex};

use crate::error::MigrateError;

/// A GSI as it exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveIndex {
    pub name: String,
    /// Partition key attributes (more than one: a multi-attribute key).
    pub pk_attrs: Vec<String>,
    /// Sort key attributes.
    pub sk_attrs: Vec<String>,
    /// CREATING, ACTIVE, DELETING ...
    pub status: String,
}

impl LiveIndex {
    /// Whether the index has the key attributes the design asks for.
    pub fn matches(&self, wanted: &TableIndex) -> bool {
        self.pk_attrs == [wanted.pk_attr.clone()] && self.sk_attrs == wanted.sk_attr.iter().cloned().collect::<Vec<_>>()
    }

    /// The index as a design would state it (first attributes only).
    pub fn as_table_index(&self) -> TableIndex {
        TableIndex {
            name: self.name.clone(),
            pk_attr: self.pk_attrs.first().cloned().unwrap_or_default(),
            sk_attr: self.sk_attrs.first().cloned(),
        }
    }
}

/// The live table, as far as planning needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LiveTable {
    pub name: String,
    pub exists: bool,
    pub pk_attr: Option<String>,
    pub sk_attr: Option<String>,
    pub indexes: Vec<LiveIndex>,
    /// DynamoDB's item count (exact on Local, up to 6 h stale on AWS).
    pub item_count: Option<i64>,
    pub size_bytes: Option<i64>,
    pub ttl_attribute: Option<String>,
    pub stream: Option<StreamView>,
    /// `None` when the endpoint cannot say (DynamoDB Local).
    pub point_in_time_recovery: Option<bool>,
}

impl LiveTable {
    /// The table as [`singletable::Table::create_table`] would create it
    /// from `design` (empty, all settings applied).
    pub fn as_created(design: &singletable::TableDesign) -> Self {
        LiveTable {
            name: design.table.clone(),
            exists: true,
            pk_attr: Some(design.pk_attr.clone()),
            sk_attr: Some(design.sk_attr.clone()),
            indexes: design
                .indexes
                .iter()
                .map(|i| LiveIndex {
                    name: i.name.clone(),
                    pk_attrs: vec![i.pk_attr.clone()],
                    sk_attrs: i.sk_attr.iter().cloned().collect(),
                    status: "ACTIVE".into(),
                })
                .collect(),
            item_count: Some(0),
            size_bytes: Some(0),
            ttl_attribute: design.settings.ttl_attribute.clone(),
            stream: design.settings.stream,
            point_in_time_recovery: Some(design.settings.point_in_time_recovery),
        }
    }

    /// A table that does not exist.
    pub fn missing(name: &str) -> Self {
        LiveTable { name: name.to_string(), ..Default::default() }
    }
}

fn stream_view(v: &StreamViewType) -> Option<StreamView> {
    Some(match v {
        StreamViewType::KeysOnly => StreamView::KeysOnly,
        StreamViewType::NewImage => StreamView::NewImage,
        StreamViewType::OldImage => StreamView::OldImage,
        StreamViewType::NewAndOldImages => StreamView::NewAndOldImages,
        _ => return None,
    })
}

/// Reads the live table: DescribeTable, DescribeTimeToLive and
/// DescribeContinuousBackups (which DynamoDB Local lacks: `None`).
pub async fn describe(client: &Client, name: &str) -> Result<LiveTable, MigrateError> {
    let out = match client.describe_table().table_name(name).send().await {
        Ok(out) => out,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
            return Ok(LiveTable::missing(name))
        }
        Err(e) => return Err(MigrateError::dynamo("DescribeTable", name, e)),
    };
    let t = out.table.ok_or_else(|| MigrateError::Other(format!("DescribeTable of `{name}` returned no table")))?;
    let key_of = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement], kind: KeyType| -> Vec<String> {
        schema.iter().filter(|k| k.key_type == kind).map(|k| k.attribute_name.clone()).collect()
    };
    let schema = t.key_schema();
    let indexes = t
        .global_secondary_indexes()
        .iter()
        .map(|g| LiveIndex {
            name: g.index_name().unwrap_or_default().to_string(),
            pk_attrs: key_of(g.key_schema(), KeyType::Hash),
            sk_attrs: key_of(g.key_schema(), KeyType::Range),
            status: g.index_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
        })
        .collect();
    let stream = t
        .stream_specification()
        .filter(|s| s.stream_enabled)
        .and_then(|s| s.stream_view_type())
        .and_then(stream_view);
    let ttl = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|e| MigrateError::dynamo("DescribeTimeToLive", name, e))?;
    let ttl_attribute = ttl
        .time_to_live_description()
        .filter(|d| matches!(d.time_to_live_status(), Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)))
        .and_then(|d| d.attribute_name().map(String::from));
    let pitr = match client.describe_continuous_backups().table_name(name).send().await {
        Ok(out) => out
            .continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|p| p.point_in_time_recovery_status())
            .map(|s| s.as_str() == "ENABLED"),
        // DynamoDB Local answers UnknownOperationException.
        Err(_) => None,
    };
    Ok(LiveTable {
        name: name.to_string(),
        exists: true,
        pk_attr: key_of(schema, KeyType::Hash).into_iter().next(),
        sk_attr: key_of(schema, KeyType::Range).into_iter().next(),
        indexes,
        item_count: t.item_count,
        size_bytes: t.table_size_bytes,
        ttl_attribute,
        stream,
        point_in_time_recovery: pitr,
    })
}
