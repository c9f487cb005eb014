//! The validated model of a derive input. Codegen reads only this.

use std::collections::HashSet;

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, GenericArgument, Ident, LitStr, PathArguments, Type};

use super::ctxt::Ctxt;
use super::grammar::{self, Piece};

/// What kind of key part a field type is, as far as syntax tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTypeHint {
    Str,
    Int,
    Bool,
    /// Decided by the type's `KeyPart` implementation.
    Other,
}

/// What the toolkit maintains in a field (`#[item(version)]` ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Version,
    Ttl,
    CreatedAt,
    UpdatedAt,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Version, Role::Ttl, Role::CreatedAt, Role::UpdatedAt];

    pub fn name(self) -> &'static str {
        match self {
            Role::Version => "version",
            Role::Ttl => "ttl",
            Role::CreatedAt => "created_at",
            Role::UpdatedAt => "updated_at",
        }
    }

    fn from_path(path: &syn::Path) -> Option<Role> {
        Role::ALL.into_iter().find(|r| path.is_ident(r.name()))
    }

    /// Why the field cannot be a key part.
    fn not_a_key_part(self) -> &'static str {
        match self {
            Role::Version | Role::UpdatedAt => "it changes on every write, so the key would too",
            Role::CreatedAt => "the toolkit fills it in on the first write, after keys are rendered",
            Role::Ttl => "an expiry is not an identity; keep it out of keys",
        }
    }
}

pub struct Field {
    pub ident: Ident,
    pub ty: Type,
    /// Stored attribute name.
    pub attr: String,
    pub skip: bool,
    pub default: bool,
    pub serde: bool,
    /// `Option<inner>`: the inner type.
    pub option_inner: Option<Type>,
    /// A managed field, with the span of its attribute.
    pub role: Option<(Role, Span)>,
}

impl Field {
    pub fn role(&self) -> Option<Role> {
        self.role.map(|(r, _)| r)
    }
}

/// One placeholder, resolved to its field.
pub struct Placeholder {
    pub field: usize,
    pub pad: Option<u8>,
    pub delimiter: Option<char>,
}

pub enum Part {
    Literal(String),
    Field(Placeholder),
}

pub struct KeyTemplate {
    /// Physical attribute name.
    pub attr: String,
    /// Canonical source, placeholders named by stored attribute.
    pub source: String,
    pub parts: Vec<Part>,
    /// `pk`-like (2048 bytes) or `sk`-like (1024 bytes).
    pub is_partition: bool,
}

impl KeyTemplate {
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(f) => Some(f),
            Part::Literal(_) => None,
        })
    }

    pub fn literal_len(&self) -> usize {
        self.parts.iter().map(|p| if let Part::Literal(t) = p { t.len() } else { 0 }).sum()
    }
}

pub struct Index {
    pub name: String,
    pub pk: KeyTemplate,
    pub sk: Option<KeyTemplate>,
}

impl Index {
    pub fn keys(&self) -> impl Iterator<Item = &KeyTemplate> {
        std::iter::once(&self.pk).chain(self.sk.as_ref())
    }
}

pub struct Entity {
    pub entity: String,
    pub entity_attr: String,
    pub pk: KeyTemplate,
    pub sk: KeyTemplate,
    pub indexes: Vec<Index>,
}

pub struct Container {
    pub ident: Ident,
    pub vis: syn::Visibility,
    pub fields: Vec<Field>,
    /// `None` for `#[derive(Document)]`.
    pub entity: Option<Entity>,
}

impl Container {
    /// The fields of the typed key: distinct fields of pk then sk.
    pub fn key_fields(&self) -> Vec<usize> {
        let mut out = Vec::new();
        if let Some(e) = &self.entity {
            for p in e.pk.placeholders().chain(e.sk.placeholders()) {
                if !out.contains(&p.field) {
                    out.push(p.field);
                }
            }
        }
        out
    }
}

/// Raw container attributes, before templates are resolved.
#[derive(Default)]
struct RawContainer {
    entity: Option<LitStr>,
    pk: Option<LitStr>,
    sk: Option<LitStr>,
    pk_attr: Option<LitStr>,
    sk_attr: Option<LitStr>,
    entity_attr: Option<LitStr>,
    indexes: Vec<RawIndex>,
    /// An `#[item(...)]` failed to parse, so the keys after the error were
    /// not read: reporting pk or sk missing would be a cascade.
    incomplete: bool,
}

struct RawIndex {
    name: LitStr,
    pk: Option<LitStr>,
    sk: Option<LitStr>,
    pk_attr: Option<LitStr>,
    sk_attr: Option<LitStr>,
    span: Span,
}

const CONTAINER_KEYS: &str = "entity, pk, sk, index(...), pk_attr, sk_attr, entity_attr";
const INDEX_KEYS: &str = "name, pk, sk, pk_attr, sk_attr";
const FIELD_KEYS: &str = "rename, default, skip, serde, version, ttl, created_at, updated_at";

fn set_once(cx: &Ctxt, slot: &mut Option<LitStr>, meta: &syn::meta::ParseNestedMeta, name: &str) -> syn::Result<()> {
    let value: LitStr = meta.value()?.parse()?;
    if slot.is_some() {
        cx.error_spanned_by(&meta.path, format!("duplicate `{name}` attribute"));
    }
    *slot = Some(value);
    Ok(())
}

/// Reports an unknown key and skips its value (`= expr` or `(...)`), so
/// the keys after it are still read instead of reported missing.
fn unknown_key(cx: &Ctxt, meta: &syn::meta::ParseNestedMeta, message: String) -> syn::Result<()> {
    cx.syn_error(meta.error(message));
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<proc_macro2::TokenStream>()?;
    }
    Ok(())
}

fn parse_container_attrs(cx: &Ctxt, input: &DeriveInput, is_entity: bool) -> RawContainer {
    let mut raw = RawContainer::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("item")) {
        let result = attr.parse_nested_meta(|meta| {
            let is = |name: &str| meta.path.is_ident(name);
            if !is_entity {
                return Err(meta.error("`#[derive(Document)]` takes no container attributes: documents have no keys"));
            }
            if is("entity") {
                set_once(cx, &mut raw.entity, &meta, "entity")
            } else if is("pk") {
                set_once(cx, &mut raw.pk, &meta, "pk")
            } else if is("sk") {
                set_once(cx, &mut raw.sk, &meta, "sk")
            } else if is("pk_attr") {
                set_once(cx, &mut raw.pk_attr, &meta, "pk_attr")
            } else if is("sk_attr") {
                set_once(cx, &mut raw.sk_attr, &meta, "sk_attr")
            } else if is("entity_attr") {
                set_once(cx, &mut raw.entity_attr, &meta, "entity_attr")
            } else if is("index") {
                let span = meta.path.get_ident().map_or_else(Span::call_site, |i| i.span());
                let mut name = None;
                let mut index = RawIndex { name: LitStr::new("", span), pk: None, sk: None, pk_attr: None, sk_attr: None, span };
                meta.parse_nested_meta(|inner| {
                    let is = |n: &str| inner.path.is_ident(n);
                    if is("name") {
                        set_once(cx, &mut name, &inner, "name")
                    } else if is("pk") {
                        set_once(cx, &mut index.pk, &inner, "pk")
                    } else if is("sk") {
                        set_once(cx, &mut index.sk, &inner, "sk")
                    } else if is("pk_attr") {
                        set_once(cx, &mut index.pk_attr, &inner, "pk_attr")
                    } else if is("sk_attr") {
                        set_once(cx, &mut index.sk_attr, &inner, "sk_attr")
                    } else {
                        unknown_key(cx, &inner, format!("unknown index attribute; expected one of: {INDEX_KEYS}"))
                    }
                })?;
                match name {
                    Some(n) if !n.value().is_empty() => index.name = n,
                    Some(n) => cx.error_spanned_by(&n, "index name must not be empty"),
                    None => cx.syn_error(syn::Error::new(span, "index needs a name: index(name = \"gsi1\", pk = \"...\")")),
                }
                raw.indexes.push(index);
                Ok(())
            } else {
                unknown_key(cx, &meta, format!("unknown item attribute; expected one of: {CONTAINER_KEYS}"))
            }
        });
        if let Err(e) = result {
            cx.syn_error(e);
            raw.incomplete = true;
        }
    }
    raw
}

fn option_inner(ty: &Type) -> Option<Type> {
    let Type::Path(p) = ty else { return None };
    if p.qself.is_some() {
        return None;
    }
    let last = p.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    match args.args.first()? {
        GenericArgument::Type(t) if args.args.len() == 1 => Some(t.clone()),
        _ => None,
    }
}

/// Classifies a key field type by syntax; `Err` names why it cannot be a
/// key part.
fn key_type_hint(ty: &Type) -> Result<KeyTypeHint, String> {
    match ty {
        Type::Reference(r) => key_type_hint(&r.elem),
        Type::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default();
            Ok(match last.as_str() {
                "String" | "str" => KeyTypeHint::Str,
                "bool" => KeyTypeHint::Bool,
                "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => {
                    KeyTypeHint::Int
                }
                "f32" | "f64" => {
                    return Err(format!("`{last}` cannot be a key part: floats have no exact text form to key on; store the number in an integer (e.g. cents) or a string"))
                }
                "Vec" | "HashMap" | "BTreeMap" | "HashSet" | "BTreeSet" | "VecDeque" | "Box" | "Blob" => {
                    return Err(format!("`{last}` cannot be a key part: key templates take strings, integers and bool"))
                }
                "Option" => return Err("a nested `Option` cannot be a key part: one `Option` already makes the index sparse".into()),
                _ => KeyTypeHint::Other,
            })
        }
        _ => Err("this type cannot be a key part: key templates take strings, integers and bool".into()),
    }
}

/// `None` when the input is not a struct with named fields (reported).
fn parse_fields(cx: &Ctxt, input: &DeriveInput) -> Option<Vec<Field>> {
    let named = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => named,
            _ => {
                cx.error_spanned_by(&input.ident, "singletable derives need a struct with named fields");
                return None;
            }
        },
        _ => {
            cx.error_spanned_by(&input.ident, "singletable derives need a struct with named fields");
            return None;
        }
    };
    let mut fields = Vec::new();
    for f in &named.named {
        let ident = f.ident.clone().expect("named field");
        let mut field = Field {
            attr: ident.to_string().trim_start_matches("r#").to_string(),
            ident,
            ty: f.ty.clone(),
            skip: false,
            default: false,
            serde: false,
            option_inner: option_inner(&f.ty),
            role: None,
        };
        for attr in f.attrs.iter().filter(|a| a.path().is_ident("item")) {
            let result = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename") {
                    let v: LitStr = meta.value()?.parse()?;
                    if v.value().is_empty() {
                        cx.error_spanned_by(&v, "attribute name must not be empty");
                    }
                    field.attr = v.value();
                    Ok(())
                } else if meta.path.is_ident("default") {
                    field.default = true;
                    Ok(())
                } else if meta.path.is_ident("skip") {
                    field.skip = true;
                    Ok(())
                } else if meta.path.is_ident("serde") {
                    field.serde = true;
                    Ok(())
                } else if let Some(role) = Role::from_path(&meta.path) {
                    match field.role {
                        Some((existing, _)) if existing == role => {
                            cx.error_spanned_by(&meta.path, format!("duplicate `{}` attribute", role.name()))
                        }
                        Some((existing, _)) => cx.error_spanned_by(
                            &meta.path,
                            format!("field `{}` is already the `{}` field; one field has one role", field.ident, existing.name()),
                        ),
                        None => field.role = Some((role, meta.path.span())),
                    }
                    Ok(())
                } else {
                    unknown_key(cx, &meta, format!("unknown field attribute; expected one of: {FIELD_KEYS}"))
                }
            });
            if let Err(e) = result {
                cx.syn_error(e);
            }
        }
        if field.skip && (field.default || field.serde) {
            cx.error_spanned_by(&field.ident, "a `skip` field is not stored: `default` and `serde` do not apply");
        }
        if let Some((role, span)) = field.role {
            if field.skip {
                cx.syn_error(syn::Error::new(span, format!("a `skip` field is not stored, so it cannot be the `{}` field", role.name())));
            } else if field.serde {
                cx.syn_error(syn::Error::new(
                    span,
                    format!("the `{}` field is read and written by the toolkit, which needs its own encoding: remove `serde`", role.name()),
                ));
            }
        }
        fields.push(field);
    }
    for role in Role::ALL {
        let mut with_role = fields.iter().filter(|f| f.role() == Some(role));
        if let Some(first) = with_role.next() {
            for again in with_role {
                let span = again.role.map_or_else(|| again.ident.span(), |(_, s)| s);
                cx.syn_error(syn::Error::new(
                    span,
                    format!("`{}` would be a second `{}` field (`{}` already is); an entity has at most one", again.ident, role.name(), first.ident),
                ));
            }
        }
    }
    let mut seen = HashSet::new();
    for f in fields.iter().filter(|f| !f.skip) {
        if !seen.insert(f.attr.clone()) {
            cx.error_spanned_by(&f.ident, format!("two fields are stored as attribute `{}`", f.attr));
        }
    }
    Some(fields)
}

/// What a template may use and where it sits.
struct TemplateSite<'a> {
    /// `pk`, `sk`, `index gsi1 pk` ...: for messages.
    what: String,
    attr: String,
    allow_optional: bool,
    is_partition: bool,
    lit: &'a LitStr,
}

fn resolve_template(cx: &Ctxt, fields: &[Field], site: TemplateSite<'_>) -> Option<KeyTemplate> {
    let lit = site.lit;
    let src = lit.value();
    let pieces = match grammar::parse(&src) {
        Ok(p) => p,
        Err(e) => {
            cx.error_spanned_by(lit, format!("{} template: {}", site.what, e.message));
            return None;
        }
    };
    let mut ok = true;
    let mut parts = Vec::with_capacity(pieces.len());
    let mut canonical = Vec::with_capacity(pieces.len());
    for (i, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Literal(text) => {
                parts.push(Part::Literal(text.clone()));
                canonical.push(piece.clone());
            }
            Piece::Field { name, pad, offset } => {
                let Some(index) = fields.iter().position(|f| f.ident == name.as_str()) else {
                    let known: Vec<String> = fields.iter().filter(|f| !f.skip).map(|f| f.ident.to_string()).collect();
                    cx.error_spanned_by(
                        lit,
                        format!("{} template: unknown field `{name}`; the fields are: {}", site.what, known.join(", ")),
                    );
                    ok = false;
                    continue;
                };
                let field = &fields[index];
                if field.skip || field.serde {
                    let why = if field.skip { "skip" } else { "serde" };
                    cx.error_spanned_by(lit, format!("{} template: `{name}` is a `{why}` field and cannot be a key part", site.what));
                    ok = false;
                } else if let Some(role) = field.role() {
                    cx.error_spanned_by(
                        lit,
                        format!("{} template: `{name}` is the `{}` field and cannot be a key part: {}", site.what, role.name(), role.not_a_key_part()),
                    );
                    ok = false;
                }
                let key_ty = match (&field.option_inner, site.allow_optional) {
                    (Some(inner), true) => inner,
                    (Some(_), false) => {
                        cx.error_spanned_by(
                            lit,
                            format!("{} template: `{name}` is an `Option`; table keys must always exist (only index keys may be sparse)", site.what),
                        );
                        ok = false;
                        continue;
                    }
                    (None, _) => &field.ty,
                };
                match key_type_hint(key_ty) {
                    Err(why) => {
                        cx.error_spanned_by(lit, format!("{} template: field `{name}`: {why}", site.what));
                        ok = false;
                    }
                    Ok(KeyTypeHint::Str | KeyTypeHint::Bool) if pad.is_some() => {
                        cx.error_spanned_by(
                            lit,
                            format!("{} template: `{{{name}:0{}}}`: zero padding applies to integer fields only", site.what, pad.unwrap()),
                        );
                        ok = false;
                    }
                    Ok(_) => {}
                }
                parts.push(Part::Field(Placeholder { field: index, pad: *pad, delimiter: grammar::delimiter_after(&pieces, i) }));
                canonical.push(Piece::Field { name: field.attr.clone(), pad: *pad, offset: *offset });
            }
        }
    }
    ok.then(|| KeyTemplate { attr: site.attr, source: grammar::unparse(&canonical), parts, is_partition: site.is_partition })
}

fn attr_name(lit: &Option<LitStr>, default: &str) -> String {
    lit.as_ref().map_or_else(|| default.to_string(), LitStr::value)
}

/// Reads and validates a derive input. `is_entity` is true for
/// `#[derive(Item)]`, false for `#[derive(Document)]`.
pub fn from_ast(cx: &Ctxt, input: &DeriveInput, is_entity: bool) -> Option<Container> {
    if !input.generics.params.is_empty() {
        cx.error_spanned_by(&input.generics, "singletable derives do not support generic structs");
    }
    let raw = parse_container_attrs(cx, input, is_entity);
    let fields = parse_fields(cx, input)?;
    if !is_entity {
        for f in &fields {
            if let Some((role, span)) = f.role {
                cx.syn_error(syn::Error::new(
                    span,
                    format!("`{}` applies to entities (`#[derive(Item)]`), not to a document stored inside one", role.name()),
                ));
            }
        }
        return Some(Container { ident: input.ident.clone(), vis: input.vis.clone(), fields, entity: None });
    }

    let pk_attr = attr_name(&raw.pk_attr, "pk");
    let sk_attr = attr_name(&raw.sk_attr, "sk");
    let entity_attr = attr_name(&raw.entity_attr, "_et");
    for lit in [&raw.pk_attr, &raw.sk_attr, &raw.entity_attr].into_iter().flatten() {
        if lit.value().is_empty() {
            cx.error_spanned_by(lit, "attribute name must not be empty");
        }
    }
    let entity_name = raw.entity.as_ref().map_or_else(|| input.ident.to_string(), LitStr::value);
    if let Some(lit) = raw.entity.as_ref().filter(|l| l.value().is_empty()) {
        cx.error_spanned_by(lit, "entity name must not be empty");
    }

    let site = |what: &str, attr: &str, lit, allow_optional, is_partition| TemplateSite {
        what: what.to_string(),
        attr: attr.to_string(),
        allow_optional,
        is_partition,
        lit,
    };
    let pk = match &raw.pk {
        Some(lit) => resolve_template(cx, &fields, site("pk", &pk_attr, lit, false, true)),
        None if raw.incomplete => None,
        None => {
            cx.error_spanned_by(&input.ident, "missing partition key: add #[item(pk = \"PREFIX#{field}\")]");
            None
        }
    };
    let sk = match &raw.sk {
        Some(lit) => resolve_template(cx, &fields, site("sk", &sk_attr, lit, false, false)),
        None if raw.incomplete => None,
        None => {
            cx.error_spanned_by(&input.ident, "missing sort key: add #[item(sk = \"PREFIX#{field}\")] (a constant such as \"PROFILE\" is fine)");
            None
        }
    };

    // Every attribute the derive writes itself, with what it holds. Empty
    // names are already reported and not checked again.
    let mut key_attrs: Vec<(String, String)> = vec![(pk_attr.clone(), "the table's partition key".into())];
    let distinct = |key_attrs: &[(String, String)], attr: &str, lit: Option<&LitStr>, what: &str, fix: &str| {
        match key_attrs.iter().find(|(a, _)| a == attr).filter(|_| !attr.is_empty()) {
            Some((_, holder)) => {
                let message = format!("{what} would be stored in `{attr}`, which holds {holder}; {fix}");
                match lit {
                    Some(lit) => cx.error_spanned_by(lit, message),
                    None => cx.error_spanned_by(&input.ident, message),
                }
                false
            }
            None => true,
        }
    };
    if distinct(&key_attrs, &sk_attr, raw.sk_attr.as_ref().or(raw.pk_attr.as_ref()), "the sort key", "give it another name with `sk_attr`") {
        key_attrs.push((sk_attr.clone(), "the table's sort key".into()));
    }
    if distinct(&key_attrs, &entity_attr, raw.entity_attr.as_ref(), "the entity type", "give it another name with `entity_attr`") {
        key_attrs.push((entity_attr.clone(), "the entity type".into()));
    }

    let mut indexes = Vec::new();
    let mut names = HashSet::new();
    for raw_index in &raw.indexes {
        let name = raw_index.name.value();
        if name.is_empty() {
            continue;
        }
        if !names.insert(name.clone()) {
            cx.error_spanned_by(&raw_index.name, format!("duplicate index `{name}`"));
            continue;
        }
        let ipk_attr = attr_name(&raw_index.pk_attr, &format!("{name}pk"));
        let isk_attr = attr_name(&raw_index.sk_attr, &format!("{name}sk"));
        let Some(pk_lit) = &raw_index.pk else {
            cx.syn_error(syn::Error::new(raw_index.span, format!("index `{name}` needs a partition key template: pk = \"...\"")));
            continue;
        };
        let ipk = resolve_template(cx, &fields, site(&format!("index `{name}` pk"), &ipk_attr, pk_lit, true, true));
        let isk = raw_index
            .sk
            .as_ref()
            .map(|lit| resolve_template(cx, &fields, site(&format!("index `{name}` sk"), &isk_attr, lit, true, false)));
        if raw_index.sk.is_none() && raw_index.sk_attr.is_some() {
            cx.error_spanned_by(raw_index.sk_attr.as_ref().unwrap(), format!("index `{name}` has `sk_attr` but no `sk` template"));
        }
        let mut index_attrs = vec![("pk", &ipk_attr, raw_index.pk_attr.as_ref())];
        if raw_index.sk.is_some() {
            index_attrs.push(("sk", &isk_attr, raw_index.sk_attr.as_ref()));
        }
        for (key, attr, lit) in index_attrs {
            let what = format!("index `{name}` {key}");
            let fix = format!("give it another name with `{key}_attr`");
            if distinct(&key_attrs, attr, Some(lit.unwrap_or(&raw_index.name)), &what, &fix) {
                key_attrs.push((attr.clone(), what));
            }
        }
        match (ipk, isk) {
            (Some(pk), None) if raw_index.sk.is_none() => indexes.push(Index { name, pk, sk: None }),
            (Some(pk), Some(Some(sk))) => indexes.push(Index { name, pk, sk: Some(sk) }),
            _ => {}
        }
    }
    for f in fields.iter().filter(|f| !f.skip) {
        if let Some((_, holder)) = key_attrs.iter().find(|(a, _)| *a == f.attr && !a.is_empty()) {
            cx.error_spanned_by(
                &f.ident,
                format!("field `{}` would be stored as `{}`, which holds {holder}; rename it with #[item(rename = \"...\")]", f.ident, f.attr),
            );
        }
    }

    let entity = match (pk, sk) {
        (Some(pk), Some(sk)) => Some(Entity { entity: entity_name, entity_attr, pk, sk, indexes }),
        _ => None,
    };
    entity.map(|entity| Container { ident: input.ident.clone(), vis: input.vis.clone(), fields, entity: Some(entity) })
}
