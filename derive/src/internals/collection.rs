//! The front end of `#[derive(Collection)]`: an enum whose variants each
//! wrap one `Item` type, validated into a model, every error collected
//! with its span.

use quote::ToTokens;
use syn::{Data, DeriveInput, Fields, Ident, Type};

use super::ctxt::Ctxt;

pub struct Member {
    pub variant: Ident,
    pub ty: Type,
}

pub struct CollectionModel {
    pub ident: Ident,
    pub members: Vec<Member>,
}

const SHAPE: &str = "each variant of a `#[derive(Collection)]` enum wraps exactly one `Item` type, e.g. `User(User)`";

pub fn from_ast(cx: &Ctxt, input: &DeriveInput) -> Option<CollectionModel> {
    if !input.generics.params.is_empty() {
        cx.error_spanned_by(&input.generics, "`#[derive(Collection)]` does not support generic enums");
    }
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("item")) {
        cx.error_spanned_by(attr, "`#[item(...)]` belongs on the entity structs, not on a `#[derive(Collection)]` enum");
    }
    let Data::Enum(data) = &input.data else {
        cx.error_spanned_by(&input.ident, "`#[derive(Collection)]` needs an enum whose variants each wrap one `Item` type");
        return None;
    };
    if data.variants.is_empty() {
        cx.error_spanned_by(&input.ident, "a collection needs at least one variant wrapping an `Item` type");
        return None;
    }
    let mut members: Vec<Member> = Vec::new();
    let mut ok = true;
    for v in &data.variants {
        for attr in v.attrs.iter().filter(|a| a.path().is_ident("item")) {
            cx.error_spanned_by(attr, "`#[item(...)]` belongs on the entity structs, not on collection variants");
            ok = false;
        }
        if let Some((_, d)) = &v.discriminant {
            cx.error_spanned_by(d, format!("variant `{}` has a discriminant; {SHAPE}", v.ident));
            ok = false;
        }
        let ty = match &v.fields {
            Fields::Unnamed(f) if f.unnamed.len() == 1 => f.unnamed[0].ty.clone(),
            Fields::Unnamed(f) => {
                cx.error_spanned_by(f, format!("variant `{}` wraps {} types; {SHAPE}", v.ident, f.unnamed.len()));
                ok = false;
                continue;
            }
            Fields::Named(f) => {
                cx.error_spanned_by(f, format!("variant `{}` has named fields; {SHAPE}", v.ident));
                ok = false;
                continue;
            }
            Fields::Unit => {
                cx.error_spanned_by(&v.ident, format!("variant `{}` wraps nothing; {SHAPE}", v.ident));
                ok = false;
                continue;
            }
        };
        let text = ty.to_token_stream().to_string();
        if let Some(first) = members.iter().find(|m| m.ty.to_token_stream().to_string() == text) {
            cx.error_spanned_by(&ty, format!("`{text}` is already wrapped by variant `{}`; each entity may be a member once", first.variant));
            ok = false;
            continue;
        }
        members.push(Member { variant: v.ident.clone(), ty });
    }
    ok.then(|| CollectionModel { ident: input.ident.clone(), members })
}
