//! AWS NoSQL Workbench data models (format version 3.0), both ways.
//!
//! [`export`] writes one model with one table: its key attributes, every
//! non-key attribute with its type, the GSIs (projection `ALL`), one
//! *facet* per entity whose key aliases are the entity's key templates,
//! and sample items (typed DynamoDB JSON) rendered by the real template
//! evaluator — per facet and for the whole table. Workbench's Data
//! modeler imports the file ("Import data model").
//!
//! What a Workbench model cannot hold, and how it is carried:
//!
//! - index key templates: Workbench aliases only the table's keys, so the
//!   index keys appear in the sample items (rendered), and [`import`]
//!   recovers their templates from those samples;
//! - whether an attribute may be absent: optional attributes are left out
//!   of every second sample, and [`import`] reads "absent from some sample"
//!   as optional (so export at least two samples to round-trip it);
//! - TTL, stream and point-in-time recovery: written as lines of the
//!   model's description, which [`import`] reads back;
//! - attributes stored through serde (type `any`): Workbench needs one
//!   type, and they are declared `S` (what serde writes for strings,
//!   enums' unit variants, dates, ids ...); an import reads them as `S`.
//!
//! [`import`] reads a model back into a design — ours, or one made in
//! Workbench or by hand, in format 3.0 or the older 1.0:
//!
//! - entities: one per facet; a model without facets keeps its items in
//!   the table's `TableData`, split by an entity-type attribute (`Type`,
//!   `EntityType` ...) when every item has one, else by the labels its keys
//!   start with (`u#12345#follower`, `Room:Music`), as is a facet whose
//!   items are of several kinds;
//! - key templates: the facet's alias when it is one (`ORG#{org_id}`, or
//!   `USER#<id>`), else the alias's tokens read as labels and field names
//!   and checked against the sample keys (`ITEMS#ItemID` with `ITEMS#001`
//!   is `ITEMS#{ItemID}`; `AccountId` with `ACC#123` is
//!   `ACC#{AccountId}`), else the sample keys alone, part by part: a part
//!   that is some attribute's value is that attribute, a constant word is
//!   literal text, and any other value is a *key-only* field — the id lives
//!   only inside the key — named after the alias token, the label before
//!   it (`c#12345` -> `c#{c_id}`), or the key attribute itself when it is
//!   the whole key (an index on `NextReminderDate` -> `{NextReminderDate}`);
//! - GSIs become indexes, their templates read from the samples the same
//!   way (a field some items lack makes the index sparse);
//! - attribute types become attributes (a placeholder filled by an `N`
//!   attribute is an integer field, by `BOOL` a boolean one, else a
//!   string); a malformed sample value drops that attribute from that item.
//!
//! Template placeholders name attributes as stored (the grammar takes any
//! name without `:`, `{` or `}`; attributes whose names have those are
//! never placeholders); each placeholder's Rust field name is an
//! identifier (`GSI1-SK` -> `GSI1_SK`), and key-only fields are named as
//! identifiers from the start. Entities whose keys could overwrite each
//! other's items are refused.

mod keys;
mod read;
#[cfg(test)]
mod real_models;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use singletable::template::Template;
use singletable::{AttrType, AttributeValue, StreamView, TableDesign};

use super::samples::sample_items;
use crate::ddb_json::item_to_json;
use crate::error::MigrateError;
use crate::raw::RawItem;

/// A NoSQL Workbench data model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Model {
    #[serde(default)]
    pub model_name: String,
    #[serde(default)]
    pub model_metadata: ModelMetadata,
    pub data_model: Vec<TableModel>,
}

/// Who made the model and when.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModelMetadata {
    #[serde(default)]
    pub author: String,
    #[serde(default)]
    pub date_created: String,
    #[serde(default)]
    pub date_last_modified: String,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "AWSService", default)]
    pub aws_service: String,
    #[serde(default)]
    pub version: String,
}

/// One table of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableModel {
    pub table_name: String,
    pub key_attributes: KeyAttributes,
    #[serde(default)]
    pub non_key_attributes: Vec<AttributeDefinition>,
    #[serde(default)]
    pub table_facets: Vec<Facet>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub global_secondary_indexes: Vec<GlobalSecondaryIndex>,
    #[serde(default)]
    pub table_data: Vec<Value>,
    #[serde(default)]
    pub data_access: DataAccess,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_mode: Option<String>,
}

/// A table's or an index's key attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyAttributes {
    pub partition_key: AttributeDefinition,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_key: Option<AttributeDefinition>,
}

/// An attribute name and its DynamoDB type (`S`, `N`, `B`, `BOOL`, `L`,
/// `M`, `SS`, `NS`, `BS`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeDefinition {
    pub attribute_name: String,
    pub attribute_type: String,
}

/// A facet: one access pattern's view of the table — here, one entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Facet {
    pub facet_name: String,
    pub key_attribute_alias: KeyAttributeAlias,
    #[serde(default)]
    pub table_data: Vec<Value>,
    #[serde(default)]
    pub non_key_attributes: Vec<String>,
    #[serde(default)]
    pub data_access: DataAccess,
}

/// The names a facet shows for the table's keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyAttributeAlias {
    pub partition_key_alias: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_key_alias: Option<String>,
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GlobalSecondaryIndex {
    pub index_name: String,
    pub key_attributes: KeyAttributes,
    pub projection: Projection,
}

/// An index projection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Projection {
    pub projection_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub non_key_attributes: Option<Vec<String>>,
}

/// Workbench's data-access settings (`{"MySql": {}}`: none).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataAccess {
    #[serde(rename = "MySql", default)]
    pub my_sql: Map<String, Value>,
}

/// How to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Sample items per entity (fewer when an entity's keys are constant).
    pub samples: usize,
    /// `ModelMetadata.Author`.
    pub author: String,
    /// `DateCreated` and `DateLastModified`, in Workbench's form
    /// (`"Jan 12, 2023, 10:14 AM"`; see [`workbench_date`]).
    pub date: String,
    /// `ModelName`; the table name when `None`.
    pub model_name: Option<String>,
}

/// An exported model and what it could not say exactly.
#[derive(Debug, Clone)]
pub struct Export {
    pub model: Model,
    pub warnings: Vec<String>,
}

impl Model {
    /// The model as a Workbench file: pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("models always serialize") + "\n"
    }

    /// Reads a model file.
    pub fn from_json(text: &str) -> Result<Model, MigrateError> {
        serde_json::from_str(text).map_err(|e| MigrateError::Other(format!("not a NoSQL Workbench data model: {e}")))
    }
}

const TTL_LINE: &str = "TTL attribute: ";
const STREAM_LINE: &str = "Stream: ";
const PITR_LINE: &str = "Point-in-time recovery: on";

/// The Workbench type of a stored attribute type.
fn type_name(ty: AttrType) -> &'static str {
    match ty {
        AttrType::Any => "S",
        other => other.name(),
    }
}

fn key_attr(name: &str) -> AttributeDefinition {
    AttributeDefinition { attribute_name: name.to_string(), attribute_type: "S".into() }
}

fn key_of(item: &RawItem, attr: &str) -> Option<String> {
    match item.get(attr) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The design as a Workbench model. Pure: the date comes in the options.
pub fn export(design: &TableDesign, opts: &ExportOptions) -> Result<Export, MigrateError> {
    let mut warnings = Vec::new();
    let index_attrs: Vec<&str> = design
        .indexes
        .iter()
        .flat_map(|i| std::iter::once(i.pk_attr.as_str()).chain(i.sk_attr.as_deref()))
        .fold(Vec::new(), |mut v, a| {
            if !v.contains(&a) {
                v.push(a);
            }
            v
        });
    // Table-level attributes: index keys, the entity type, then payloads
    // in order of first appearance (one type per name: Workbench has no
    // per-facet types).
    let mut non_key: Vec<AttributeDefinition> = index_attrs.iter().map(|a| key_attr(a)).collect();
    if let Some(first) = design.entities.first() {
        non_key.push(key_attr(&first.entity_attr));
    }
    let mut any_attrs = Vec::new();
    for e in &design.entities {
        for a in e.attributes.iter() {
            let ty = type_name(a.ty);
            if a.ty == AttrType::Any {
                any_attrs.push(format!("{}.{}", e.entity, a.name));
            }
            match non_key.iter().find(|d| d.attribute_name == a.name) {
                Some(d) if d.attribute_type != ty => warnings.push(format!(
                    "attribute `{}` is {} in {} but {} elsewhere; Workbench keeps one type per attribute: {}",
                    a.name, ty, e.entity, d.attribute_type, d.attribute_type
                )),
                Some(_) => {}
                None => non_key.push(AttributeDefinition { attribute_name: a.name.to_string(), attribute_type: ty.into() }),
            }
        }
    }
    if !any_attrs.is_empty() {
        warnings.push(format!(
            "{} stored through serde (type decided at run time): declared as S in the model",
            any_attrs.join(", ")
        ));
    }

    let optional: Vec<String> = design
        .entities
        .iter()
        .flat_map(|e| e.attributes.iter().filter(|a| a.optional).map(move |a| format!("{}.{}", e.entity, a.name)))
        .collect();
    if opts.samples < 2 && !optional.is_empty() {
        warnings.push(format!(
            "with fewer than 2 samples the model cannot show that {} may be absent: an import reads them as always present",
            optional.join(", ")
        ));
    }
    let mut facets = Vec::new();
    let mut table_data = Vec::new();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for e in &design.entities {
        let mut kept = Vec::new();
        for item in sample_items(design, e, opts.samples)? {
            let key = (key_of(&item, &design.pk_attr).unwrap_or_default(), key_of(&item, &design.sk_attr).unwrap_or_default());
            if seen.insert(key) {
                kept.push(item);
            }
        }
        if kept.len() < opts.samples {
            warnings.push(format!(
                "entity `{}`: {} of {} sample items kept (the others had the same primary key as an earlier sample)",
                e.entity,
                kept.len(),
                opts.samples
            ));
        }
        let mut attrs: Vec<String> = vec![e.entity_attr.to_string()];
        for i in e.indexes.iter() {
            for k in i.keys() {
                if !attrs.iter().any(|a| *a == k.attr) {
                    attrs.push(k.attr.to_string());
                }
            }
        }
        attrs.extend(e.attributes.iter().map(|a| a.name.to_string()));
        // Samples are rendered from the design's attribute types, all of
        // which typed JSON has.
        let data: Vec<Value> = kept.iter().map(|i| item_to_json(i).expect("sample items hold known types")).collect();
        table_data.extend(data.iter().cloned());
        facets.push(Facet {
            facet_name: e.entity.to_string(),
            key_attribute_alias: KeyAttributeAlias {
                partition_key_alias: e.pk.template.source.to_string(),
                sort_key_alias: Some(e.sk.template.source.to_string()),
            },
            table_data: data,
            non_key_attributes: attrs,
            data_access: DataAccess::default(),
        });
    }

    let gsis = design
        .indexes
        .iter()
        .map(|i| GlobalSecondaryIndex {
            index_name: i.name.clone(),
            key_attributes: KeyAttributes { partition_key: key_attr(&i.pk_attr), sort_key: i.sk_attr.as_deref().map(key_attr) },
            projection: Projection { projection_type: "ALL".into(), non_key_attributes: None },
        })
        .collect();

    let mut description = format!(
        "Exported by singletable from the design of table `{}`. Facets are entities; their key aliases are the key templates ({{field}} placeholders).",
        design.table
    );
    if let Some(ttl) = &design.settings.ttl_attribute {
        description.push_str(&format!("\n{TTL_LINE}{ttl}"));
    }
    if let Some(view) = design.settings.stream {
        description.push_str(&format!("\n{STREAM_LINE}{}", view.as_str()));
    }
    if design.settings.point_in_time_recovery {
        description.push_str(&format!("\n{PITR_LINE}"));
    }

    let model = Model {
        model_name: opts.model_name.clone().unwrap_or_else(|| design.table.clone()),
        model_metadata: ModelMetadata {
            author: opts.author.clone(),
            date_created: opts.date.clone(),
            date_last_modified: opts.date.clone(),
            description,
            aws_service: "Amazon DynamoDB".into(),
            version: "3.0".into(),
        },
        data_model: vec![TableModel {
            table_name: design.table.clone(),
            key_attributes: KeyAttributes {
                partition_key: key_attr(&design.pk_attr),
                sort_key: Some(key_attr(&design.sk_attr)),
            },
            non_key_attributes: non_key,
            table_facets: facets,
            global_secondary_indexes: gsis,
            table_data,
            data_access: DataAccess::default(),
            billing_mode: Some("PAY_PER_REQUEST".into()),
        }],
    };
    Ok(Export { model, warnings })
}

/// A time as Workbench writes it: `"Jan 12, 2023, 10:14 AM"` (UTC).
pub fn workbench_date(secs_since_epoch: i64) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (year, month, day, secs) = crate::civil::civil(secs_since_epoch);
    let (hour, minute) = (secs / 3600, secs % 3600 / 60);
    let (h12, ampm) = match hour {
        0 => (12, "AM"),
        1..=11 => (hour, "AM"),
        12 => (12, "PM"),
        _ => (hour - 12, "PM"),
    };
    format!("{} {day:02}, {year}, {h12:02}:{minute:02} {ampm}", MONTHS[(month - 1) as usize])
}

/// An imported design and what could not be read exactly.
#[derive(Debug, Clone)]
pub struct Import {
    pub design: TableDesign,
    pub warnings: Vec<String>,
}

/// The AttrType of a Workbench type name.
fn attr_type(name: &str) -> Option<AttrType> {
    Some(match name {
        "S" => AttrType::S,
        "N" => AttrType::N,
        "B" => AttrType::B,
        "BOOL" => AttrType::Bool,
        "L" => AttrType::L,
        "M" => AttrType::M,
        "SS" => AttrType::SS,
        "NS" => AttrType::NS,
        "BS" => AttrType::BS,
        _ => return None,
    })
}

/// Reads the settings lines [`export`] writes into the description.
fn settings_from(description: &str) -> Value {
    let mut settings = Map::new();
    for line in description.lines().map(str::trim) {
        if let Some(ttl) = line.strip_prefix(TTL_LINE) {
            settings.insert("ttl_attribute".into(), json!(ttl.trim()));
        } else if let Some(view) = line.strip_prefix(STREAM_LINE) {
            let view = view.trim().trim_end_matches('.');
            if serde_json::from_value::<StreamView>(json!(view)).is_ok() {
                settings.insert("stream".into(), json!(view));
            }
        } else if line == PITR_LINE {
            settings.insert("point_in_time_recovery".into(), json!(true));
        }
    }
    Value::Object(settings)
}


/// Reads a Workbench model back into a design. `table` picks the table
/// of a model with several.
///
/// Models made by hand or by Workbench itself are read as far as they say
/// something a design can hold (see the module documentation); a model
/// that cannot become a working design — no entity, entities whose keys
/// could overwrite each other's items — is an error, not a warning.
pub fn import(model: &Model, table: Option<&str>) -> Result<Import, MigrateError> {
    let fail = |m: String| MigrateError::Other(m);
    let t = match table {
        Some(name) => model
            .data_model
            .iter()
            .find(|t| t.table_name == name)
            .ok_or_else(|| fail(format!("the model has no table `{name}`")))?,
        None => match model.data_model.as_slice() {
            [one] => one,
            [] => return Err(fail("the model has no table".into())),
            many => {
                let names: Vec<&str> = many.iter().map(|t| t.table_name.as_str()).collect();
                return Err(fail(format!("the model has {} tables ({}): choose one with --table", many.len(), names.join(", "))));
            }
        },
    };
    let mut warnings = Vec::new();
    let pk_attr = t.key_attributes.partition_key.attribute_name.clone();
    let sk_attr = t
        .key_attributes
        .sort_key
        .as_ref()
        .map(|k| k.attribute_name.clone())
        .ok_or_else(|| fail(format!("table `{}` has no sort key: singletable tables have one", t.table_name)))?;
    for k in std::iter::once(&t.key_attributes.partition_key)
        .chain(&t.key_attributes.sort_key)
        .chain(t.global_secondary_indexes.iter().flat_map(|i| std::iter::once(&i.key_attributes.partition_key).chain(&i.key_attributes.sort_key)))
    {
        if k.attribute_type != "S" {
            warnings.push(format!("key attribute `{}` is {} in the model; singletable keys are S", k.attribute_name, k.attribute_type));
        }
    }
    let mut types: HashMap<String, AttrType> = HashMap::new();
    for a in &t.non_key_attributes {
        let ty = attr_type(&a.attribute_type).unwrap_or_else(|| {
            warnings.push(format!("attribute `{}` has unknown type `{}`: read as S", a.attribute_name, a.attribute_type));
            AttrType::S
        });
        types.insert(a.attribute_name.clone(), ty);
    }
    let index_attrs: BTreeSet<String> = t
        .global_secondary_indexes
        .iter()
        .flat_map(|i| std::iter::once(&i.key_attributes.partition_key).chain(&i.key_attributes.sort_key))
        .map(|k| k.attribute_name.clone())
        .filter(|a| *a != pk_attr && *a != sk_attr)
        .collect();

    let table_samples = read::parse_samples(&format!("table `{}`", t.table_name), &t.table_data, &mut warnings);
    let facet_samples: Vec<Vec<read::Sample>> = t
        .table_facets
        .iter()
        .map(|f| read::parse_samples(&format!("facet `{}`", f.facet_name), &f.table_data, &mut warnings))
        .collect();

    // Which items make which entity, and where the entity's name is stored.
    let mut groups: Vec<read::Group> = Vec::new();
    let entity_attr;
    if t.table_facets.is_empty() {
        if table_samples.is_empty() {
            return Err(fail(format!("table `{}` has no facet and no sample item: nothing to read entities from", t.table_name)));
        }
        let keys: Vec<&str> = std::iter::once(pk_attr.as_str()).chain([sk_attr.as_str()]).chain(index_attrs.iter().map(String::as_str)).collect();
        match read::table_entity_attr(&table_samples, &keys) {
            Some(attr) => {
                for s in &table_samples {
                    let value = match s.item.get(&attr) {
                        Some(AttributeValue::S(v)) => v.clone(),
                        _ => unreachable!("every sample holds the entity-type attribute"),
                    };
                    match groups.iter_mut().find(|g| g.name == value) {
                        Some(g) => g.samples.push(s),
                        None => groups.push(read::Group { name: value, samples: vec![s], facet: None, splittable: false }),
                    }
                }
                entity_attr = attr;
            }
            None => {
                warnings.push(
                    "the model has no facets and its items no entity-type attribute: entities are told apart by their key labels, and store their name in `_et`".into(),
                );
                groups.push(read::Group { name: t.table_name.clone(), samples: table_samples.iter().collect(), facet: None, splittable: true });
                entity_attr = "_et".to_string();
            }
        }
    } else {
        let own: Vec<(&Facet, Vec<&read::Sample>)> =
            t.table_facets.iter().zip(&facet_samples).map(|(f, s)| (f, s.iter().collect())).collect();
        let keys: Vec<&str> = std::iter::once(pk_attr.as_str()).chain([sk_attr.as_str()]).chain(index_attrs.iter().map(String::as_str)).collect();
        let found = read::facet_entity_attr(&own, &keys);
        entity_attr = found.clone().unwrap_or_else(|| {
            warnings.push("no attribute holds each facet's name in its sample items: the entity-type attribute is `_et`".into());
            "_et".to_string()
        });
        for (f, own) in own {
            // The facet's items: its own, else the table's of this entity.
            let samples: Vec<&read::Sample> = if own.is_empty() {
                table_samples
                    .iter()
                    .filter(|s| matches!(s.item.get(&entity_attr), Some(AttributeValue::S(v)) if *v == f.facet_name))
                    .collect()
            } else {
                own
            };
            if samples.is_empty() && f.key_attribute_alias.sort_key_alias.is_none() {
                warnings.push(format!("facet `{}`: no sort key alias and no sample items to read one from: skipped", f.facet_name));
                continue;
            }
            let mut name = f.facet_name.clone();
            if found.is_some() {
                if let Some(AttributeValue::S(stored)) = samples.first().and_then(|s| s.item.get(&entity_attr)) {
                    if *stored != name {
                        warnings.push(format!(
                            "facet `{name}`: its items store `{stored}` in `{entity_attr}`: the entity is named `{stored}`"
                        ));
                        name = stored.clone();
                    }
                }
            }
            groups.push(read::Group { name, samples, facet: Some(f), splittable: found.is_none() });
        }
    }
    let ctx = read::Context { table: t, pk_attr: pk_attr.clone(), sk_attr: sk_attr.clone(), entity_attr: entity_attr.clone(), types, index_attrs };

    // Two readings: the first learns which attribute follows which label
    // where some entity's items hold it, so that the second names the
    // same value the same way where the items hold it only in their keys.
    let mut learned = BTreeMap::new();
    if let Ok((first, _)) = read::read_all(&groups, &ctx, &learned) {
        for e in &first {
            for (label, attr) in &e.rows.learned {
                learned.entry(label.clone()).or_insert_with(|| attr.clone());
            }
        }
    }
    let (mut entities, notes) = read::read_all(&groups, &ctx, &learned)?;
    warnings.extend(notes);
    if entities.is_empty() {
        return Err(fail(format!("table `{}` has no facet to read an entity from", t.table_name)));
    }
    let mut names = BTreeSet::new();
    for e in &mut entities {
        let base = e.name.clone();
        let mut n = 1;
        while !names.insert(e.name.clone()) {
            n += 1;
            e.name = format!("{base}{n}");
        }
    }
    check_keys_apart(&t.table_name, &entities)?;

    let mut used_indexes: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for e in &entities {
        let what = match e.facet {
            Some(f) if f.facet_name == e.name => format!("facet `{}`", e.name),
            Some(f) => format!("facet `{}` (entity `{}`)", f.facet_name, e.name),
            None => format!("entity `{}`", e.name),
        };
        warnings.extend(e.warnings.iter().map(|w| format!("{what}: {w}")));
        if e.pk.is_constant() && e.sk.is_constant() {
            warnings.push(format!("{what}: both keys are constant (`{}`, `{}`): the table holds one such item", e.pk.source, e.sk.source));
        }
        let mut attributes: Vec<Value> = Vec::new();
        for a in &e.attributes {
            let mut attr = json!({ "name": a, "type": e.type_of(&ctx, a) });
            if e.optional(a) {
                attr["optional"] = json!(true);
            }
            attributes.push(attr);
        }
        let indexes: Vec<Value> = e
            .indexes
            .iter()
            .map(|(index, attr, ipk, isk)| {
                used_indexes.insert(index.clone());
                let mut v = json!({ "name": index, "pk": { "attr": attr, "template": ipk } });
                if let Some((attr, t)) = isk {
                    v["sk"] = json!({ "attr": attr, "template": t });
                }
                v
            })
            .collect();
        out.push(json!({
            "entity": e.name,
            "entity_attr": entity_attr,
            "pk": { "attr": pk_attr, "template": e.pk },
            "sk": { "attr": sk_attr, "template": e.sk },
            "indexes": indexes,
            "attributes": attributes,
        }));
    }
    let indexes: Vec<Value> = t
        .global_secondary_indexes
        .iter()
        .map(|i| {
            let mut index = json!({ "name": i.index_name, "pk_attr": i.key_attributes.partition_key.attribute_name });
            if let Some(sk) = &i.key_attributes.sort_key {
                index["sk_attr"] = json!(sk.attribute_name);
            }
            if !used_indexes.contains(&i.index_name) {
                warnings.push(format!("index `{}` is used by no entity's sample items", i.index_name));
            }
            index
        })
        .collect();
    let design = json!({
        "table": t.table_name,
        "pk_attr": pk_attr,
        "sk_attr": sk_attr,
        "indexes": indexes,
        "entities": out,
        "settings": settings_from(&model.model_metadata.description),
    });
    let design = TableDesign::from_json(&design.to_string())
        .map_err(|e| fail(format!("the model does not make a valid design: {e}")))?;
    Ok(Import { design, warnings })
}

/// Refuses entities whose table keys have the same form (the same text
/// around their placeholders): their items could take each other's
/// primary keys and overwrite each other. Identical constant keys are the
/// plainest case: two entities that can hold one item between them.
fn check_keys_apart(table: &str, entities: &[read::Entity]) -> Result<(), MigrateError> {
    let form = |t: &Template| -> Vec<Option<String>> {
        t.segments
            .iter()
            .map(|s| match s {
                singletable::template::Segment::Literal(text) => Some(text.to_string()),
                singletable::template::Segment::Field(_) => None,
            })
            .collect()
    };
    for (i, a) in entities.iter().enumerate() {
        for b in &entities[i + 1..] {
            if form(&a.pk) == form(&b.pk) && form(&a.sk) == form(&b.sk) {
                let how = if a.pk.is_constant() && a.sk.is_constant() { "the same constant keys" } else { "keys of the same form" };
                return Err(MigrateError::Other(format!(
                    "table `{table}`: entities `{}` (`{}`, `{}`) and `{}` (`{}`, `{}`) have {how}: their items would overwrite each other, so the model cannot become a working design; give them different key labels (aliases or sample keys)",
                    a.name, a.pk.source, a.sk.source, b.name, b.pk.source, b.sk.source
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ddb_json::item_from_json;
    use crate::design::fixtures;

    fn opts(samples: usize) -> ExportOptions {
        ExportOptions { samples, author: "tests".into(), date: workbench_date(1_767_225_600), model_name: None }
    }

    #[test]
    fn dates_look_like_workbench_dates() {
        assert_eq!(workbench_date(0), "Jan 01, 1970, 12:00 AM");
        assert_eq!(workbench_date(1_673_518_440), "Jan 12, 2023, 10:14 AM");
        assert_eq!(workbench_date(1_690_374_600), "Jul 26, 2023, 12:30 PM");
        assert_eq!(workbench_date(951_825_600), "Feb 29, 2000, 12:00 PM");
        assert_eq!(workbench_date(1_767_225_600 - 60), "Dec 31, 2025, 11:59 PM");
    }

    #[test]
    fn export_has_workbench_structure() {
        let design = fixtures::design();
        let Export { model, warnings } = export(&design, &opts(3)).unwrap();
        let json: Value = serde_json::from_str(&model.to_json()).unwrap();
        assert_eq!(json["ModelName"], "app");
        let meta = &json["ModelMetadata"];
        assert_eq!(meta["AWSService"], "Amazon DynamoDB");
        assert_eq!(meta["Version"], "3.0");
        assert_eq!(meta["Author"], "tests");
        assert_eq!(meta["DateCreated"], "Jan 01, 2026, 12:00 AM");
        assert_eq!(meta["DateLastModified"], "Jan 01, 2026, 12:00 AM");
        assert!(meta["Description"].as_str().unwrap().contains("TTL attribute: expires_at\nStream: NEW_AND_OLD_IMAGES"));
        let tables = json["DataModel"].as_array().unwrap();
        assert_eq!(tables.len(), 1);
        let t = &tables[0];
        assert_eq!(t["TableName"], "app");
        assert_eq!(t["KeyAttributes"], json!({
            "PartitionKey": { "AttributeName": "pk", "AttributeType": "S" },
            "SortKey": { "AttributeName": "sk", "AttributeType": "S" },
        }));
        assert_eq!(t["BillingMode"], "PAY_PER_REQUEST");
        assert_eq!(t["DataAccess"], json!({ "MySql": {} }));
        // Types of the non-key attributes; index keys and the entity type among them.
        let types: HashMap<&str, &str> = t["NonKeyAttributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["AttributeName"].as_str().unwrap(), a["AttributeType"].as_str().unwrap()))
            .collect();
        for (name, ty) in [
            ("gsi1pk", "S"), ("gsi2sk", "S"), ("_et", "S"), ("org_id", "S"), ("number", "N"), ("admin", "BOOL"),
            ("tags", "SS"), ("notes", "L"), ("expires_at", "N"),
        ] {
            assert_eq!(types.get(name), Some(&ty), "{name}");
        }
        assert!(!types.contains_key("pk") && !types.contains_key("sk"));
        let gsis = t["GlobalSecondaryIndexes"].as_array().unwrap();
        assert_eq!(gsis[0], json!({
            "IndexName": "gsi1",
            "KeyAttributes": {
                "PartitionKey": { "AttributeName": "gsi1pk", "AttributeType": "S" },
                "SortKey": { "AttributeName": "gsi1sk", "AttributeType": "S" },
            },
            "Projection": { "ProjectionType": "ALL" },
        }));
        // One facet per entity, key aliases = templates.
        let facets = t["TableFacets"].as_array().unwrap();
        let names: Vec<&str> = facets.iter().map(|f| f["FacetName"].as_str().unwrap()).collect();
        assert_eq!(names, ["User", "Project", "Task"]);
        let task = &facets[2];
        assert_eq!(task["KeyAttributeAlias"], json!({
            "PartitionKeyAlias": "ORG#{org_id}",
            "SortKeyAlias": "TASK#{project_id}#{number:06}",
        }));
        assert_eq!(task["DataAccess"], json!({ "MySql": {} }));
        assert_eq!(
            task["NonKeyAttributes"],
            json!(["_et", "gsi2pk", "gsi2sk", "org_id", "project_id", "number", "assignee", "done", "expires_at", "notes"])
        );
        assert_eq!(task["TableData"].as_array().unwrap().len(), 3);
        assert_eq!(task["TableData"][0]["sk"], json!({ "S": "TASK#project_id-1#000001" }));
        assert_eq!(task["TableData"][0]["number"], json!({ "N": "1" }));
        assert_eq!(t["TableData"].as_array().unwrap().len(), 9);
        // Every facet attribute is declared at the table level.
        for f in facets {
            for a in f["NonKeyAttributes"].as_array().unwrap() {
                assert!(types.contains_key(a.as_str().unwrap()), "{a}");
            }
        }
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn sample_keys_are_valid_for_their_entity() {
        let design = fixtures::design();
        let model = export(&design, &opts(4)).unwrap().model;
        let t = &model.data_model[0];
        let mut keys = BTreeSet::new();
        for item in &t.table_data {
            let item = item_from_json(item).unwrap();
            let entity = design.entities.iter().find(|e| e.owns(&item)).expect("entity-type attribute");
            // The stored keys are exactly what the evaluator renders.
            for (attr, key) in entity.render_keys(&item).unwrap() {
                assert_eq!(item.get(&attr), Some(&AttributeValue::S(key.clone())), "{attr}");
            }
            for key in entity.key_designs() {
                if let Some(AttributeValue::S(k)) = item.get(key.attr.as_ref()) {
                    key.template.parse_key(k, &entity.entity, &key.attr).unwrap();
                }
            }
            assert!(keys.insert((key_of(&item, "pk").unwrap(), key_of(&item, "sk").unwrap())), "primary keys are unique");
        }
        assert_eq!(keys.len(), 12);
    }

    #[test]
    fn constant_keys_give_one_sample() {
        let design = TableDesign::from_json(
            &serde_json::to_string(&json!({
                "table": "cfg", "pk_attr": "pk", "sk_attr": "sk",
                "entities": [{
                    "entity": "Config", "entity_attr": "_et",
                    "pk": { "attr": "pk", "template": Template::parse("CONFIG", |_| None).unwrap() },
                    "sk": { "attr": "sk", "template": Template::parse("GLOBAL", |_| None).unwrap() },
                    "attributes": [{ "name": "limit", "type": "N" }],
                }],
            }))
            .unwrap(),
        )
        .unwrap();
        let Export { model, warnings } = export(&design, &opts(3)).unwrap();
        assert_eq!(model.data_model[0].table_data.len(), 1);
        let one = export(&fixtures::design(), &opts(1)).unwrap();
        assert!(one.warnings.iter().any(|w| w.contains("Task.assignee, Task.expires_at may be absent")), "{:?}", one.warnings);
        assert!(warnings[0].contains("1 of 3 sample items kept"), "{warnings:?}");
        let back = import(&model, None).unwrap();
        assert_eq!(back.design.entities, design.entities);
    }

    #[test]
    fn export_then_import_gives_the_same_design() {
        let design = fixtures::design();
        let json = export(&design, &opts(3)).unwrap().model.to_json();
        let Import { design: back, warnings } = import(&Model::from_json(&json).unwrap(), None).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(back.table, design.table);
        assert_eq!((&back.pk_attr, &back.sk_attr), (&design.pk_attr, &design.sk_attr));
        assert_eq!(back.indexes, design.indexes);
        assert_eq!(back.settings, design.settings);
        assert_eq!(back.entities.len(), design.entities.len());
        for (b, d) in back.entities.iter().zip(&design.entities) {
            assert_eq!(b, d, "entity {}", d.entity);
        }
        assert_eq!(back.to_json(), design.to_json());
    }

    #[test]
    fn import_reads_a_hand_made_model() {
        // Aliases that are labels, not templates; types from the table.
        let model = json!({
            "ModelName": "shop",
            "ModelMetadata": { "Author": "", "DateCreated": "", "DateLastModified": "", "Description": "", "AWSService": "Amazon DynamoDB", "Version": "3.0" },
            "DataModel": [{
                "TableName": "shop",
                "KeyAttributes": { "PartitionKey": { "AttributeName": "PK", "AttributeType": "S" }, "SortKey": { "AttributeName": "SK", "AttributeType": "S" } },
                "NonKeyAttributes": [
                    { "AttributeName": "type", "AttributeType": "S" },
                    { "AttributeName": "customerId", "AttributeType": "S" },
                    { "AttributeName": "orderNo", "AttributeType": "N" },
                    { "AttributeName": "GSI1PK", "AttributeType": "S" },
                    { "AttributeName": "total", "AttributeType": "N" }
                ],
                "TableFacets": [{
                    "FacetName": "Order",
                    "KeyAttributeAlias": { "PartitionKeyAlias": "CUSTOMER#<customerId>", "SortKeyAlias": "SK" },
                    "TableData": [
                        { "PK": { "S": "CUSTOMER#c1" }, "SK": { "S": "ORDER#0007" }, "type": { "S": "Order" }, "customerId": { "S": "c1" }, "orderNo": { "N": "7" }, "total": { "N": "12.5" }, "GSI1PK": { "S": "ORDERS" } },
                        { "PK": { "S": "CUSTOMER#c2" }, "SK": { "S": "ORDER#0012" }, "type": { "S": "Order" }, "customerId": { "S": "c2" }, "orderNo": { "N": "12" }, "total": { "N": "3" } }
                    ],
                    "NonKeyAttributes": ["type", "customerId", "orderNo", "total", "GSI1PK"],
                    "DataAccess": { "MySql": {} }
                }],
                "GlobalSecondaryIndexes": [{
                    "IndexName": "GSI1",
                    "KeyAttributes": { "PartitionKey": { "AttributeName": "GSI1PK", "AttributeType": "S" } },
                    "Projection": { "ProjectionType": "ALL" }
                }],
                "TableData": [],
                "DataAccess": { "MySql": {} },
                "BillingMode": "PROVISIONED"
            }]
        });
        let Import { design, warnings } = import(&serde_json::from_value(model).unwrap(), None).unwrap();
        let order = design.entity("Order").unwrap();
        assert_eq!(order.entity_attr, "type");
        assert_eq!(order.pk.template.source, "CUSTOMER#{customerId}");
        assert_eq!(order.sk.template.source, "ORDER#{orderNo:04}");
        let gsi1 = order.index("GSI1").unwrap();
        assert_eq!(gsi1.pk.template.source, "ORDERS");
        assert!(gsi1.sk.is_none());
        let total = order.attributes.iter().find(|a| a.name == "total").unwrap();
        assert_eq!(total.ty, AttrType::N);
        // `SK` names the key attribute: the template comes from the samples, silently.
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("facet `Order`: `PK` alias `CUSTOMER#<customerId>` read as the template `CUSTOMER#{customerId}`"), "{warnings:?}");
        assert!(warnings[1].contains("every Order item will be in index `GSI1`"), "{warnings:?}");
    }

    #[test]
    fn import_refuses_what_is_not_a_design() {
        assert!(Model::from_json("{}").is_err());
        let mut model = export(&fixtures::small(), &opts(1)).unwrap().model;
        model.data_model[0].key_attributes.sort_key = None;
        let err = import(&model, None).unwrap_err().to_string();
        assert!(err.contains("no sort key"), "{err}");
        let mut two = export(&fixtures::small(), &opts(1)).unwrap().model;
        two.data_model.push(two.data_model[0].clone());
        two.data_model[1].table_name = "other".into();
        assert!(import(&two, None).unwrap_err().to_string().contains("choose one with --table"));
        assert_eq!(import(&two, Some("other")).unwrap().design.table, "other");
    }
}

