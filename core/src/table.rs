//! The typed table handle.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::design::{EntityDesign, KeyDesign, TableDesign};
use crate::error::Error;
use crate::key::PrimaryKey;
use crate::size::{item_size, MAX_ITEM_BYTES};
use crate::template::{KeyKind, KeyPart};
use crate::Item;

/// A typed handle on one table, over an injected `aws_sdk_dynamodb::Client`.
///
/// Cloning is cheap. Every operation checks its input (keys, sizes,
/// values) before a request is sent.
#[derive(Debug, Clone)]
pub struct Table {
    pub(crate) client: Client,
    pub(crate) design: Arc<TableDesign>,
}

impl Table {
    /// A handle on the table `design.table`.
    pub fn new(client: Client, design: TableDesign) -> Self {
        Table { client, design: Arc::new(design) }
    }

    /// The table name.
    pub fn name(&self) -> &str {
        &self.design.table
    }

    /// The design the handle was built with.
    pub fn design(&self) -> &TableDesign {
        &self.design
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn entity<T: Item>(&self) -> Result<&'static EntityDesign, Error> {
        let design = T::DESIGN;
        match self.design.entity(&design.entity) {
            Some(registered) if registered == design => Ok(design),
            Some(_) => Err(Error::Design(format!(
                "entity `{}` differs from the one table `{}` was designed with",
                design.entity, self.design.table
            ))),
            None => Err(Error::Design(format!(
                "entity `{}` is not part of the design of table `{}`",
                design.entity, self.design.table
            ))),
        }
    }

    pub(crate) fn encode<T: Item>(&self, item: &T) -> Result<(&'static EntityDesign, HashMap<String, AttributeValue>), Error> {
        let design = self.entity::<T>()?;
        let encoded = item.to_item()?;
        let size = item_size(&encoded);
        if size > MAX_ITEM_BYTES {
            return Err(Error::ItemTooLarge { entity: design.entity.to_string(), size, max: MAX_ITEM_BYTES });
        }
        Ok((design, encoded))
    }

    pub(crate) fn key_map(&self, key: PrimaryKey) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (self.design.pk_attr.clone(), AttributeValue::S(key.pk)),
            (self.design.sk_attr.clone(), AttributeValue::S(key.sk)),
        ])
    }
}

/// Field values that fill (part of) a key template, named by Rust field.
///
/// ```
/// let parts = singletable::KeyParts::new().set("org_id", "acme").set("year", 2026);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyParts {
    values: Vec<(String, AttributeValue)>,
}

impl KeyParts {
    /// No values.
    pub fn new() -> Self {
        KeyParts::default()
    }

    /// Adds a field's value.
    pub fn set<V: KeyPart>(mut self, field: impl Into<String>, value: V) -> Self {
        let mut text = String::new();
        // Padding is the template's business; without it writing cannot fail.
        let _ = value.write_key(&mut text, None);
        let value = match V::KIND {
            KeyKind::Str => AttributeValue::S(text),
            KeyKind::Int => AttributeValue::N(text),
            KeyKind::Bool => AttributeValue::Bool(text == "true"),
        };
        self.values.push((field.into(), value));
        self
    }

    fn get(&self, field: &crate::template::FieldRef) -> Option<&AttributeValue> {
        self.values.iter().find(|(name, _)| *name == field.field || *name == field.attr).map(|(_, v)| v)
    }

    fn check_known(&self, entity: &EntityDesign, key: &KeyDesign) -> Result<(), Error> {
        for (name, _) in &self.values {
            if !key.template.fields().any(|f| f.field == *name || f.attr == *name) {
                return Err(Error::invalid_argument(
                    "key parts",
                    format!("{}: `{name}` is not a field of `{}`'s template `{}`", entity.entity, key.attr, key.template.source),
                ));
            }
        }
        Ok(())
    }

    /// The values of `key`'s fields only, or the fields it lacks.
    pub(crate) fn only(&self, key: &KeyDesign) -> Result<KeyParts, Vec<String>> {
        let mut values = Vec::new();
        let mut missing = Vec::new();
        for f in key.template.fields() {
            match self.get(f) {
                Some(v) => values.push((f.field.to_string(), v.clone())),
                None => missing.push(f.field.to_string()),
            }
        }
        if missing.is_empty() {
            Ok(KeyParts { values })
        } else {
            Err(missing)
        }
    }

    /// Renders a complete key.
    pub(crate) fn render(&self, entity: &EntityDesign, key: &KeyDesign) -> Result<String, Error> {
        self.check_known(entity, key)?;
        match key.template.render_prefix(|f| self.get(f), &entity.entity, &key.attr)? {
            (text, None) => Ok(text),
            (_, Some(missing)) => Err(Error::MissingKeyField {
                entity: entity.entity.to_string(),
                attribute: key.attr.to_string(),
                field: missing.field.to_string(),
            }),
        }
    }

    /// Renders a prefix: the leading fields given, the rest absent.
    /// Returns the text and whether it is complete.
    pub(crate) fn render_prefix(&self, entity: &EntityDesign, key: &KeyDesign) -> Result<(String, bool), Error> {
        self.check_known(entity, key)?;
        let (text, missing) = key.template.render_prefix(|f| self.get(f), &entity.entity, &key.attr)?;
        if let Some(missing) = missing {
            let after: Vec<&str> = key
                .template
                .fields()
                .skip_while(|f| f.field != missing.field)
                .filter(|f| self.get(f).is_some())
                .map(|f| f.field.as_ref())
                .collect();
            if let Some(given) = after.first() {
                return Err(Error::invalid_argument(
                    "key parts",
                    format!(
                        "{}: `{}` gives `{given}` but not `{}` before it; a key prefix needs the leading fields",
                        entity.entity, key.attr, missing.field
                    ),
                ));
            }
        }
        Ok((text, missing.is_none()))
    }
}
