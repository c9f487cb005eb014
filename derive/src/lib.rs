//! `#[derive(Item)]` and `#[derive(Document)]` for `singletable`.
//!
//! Use them through the `singletable` crate, which documents the
//! attributes. The front end (`internals`) parses and validates the input
//! into a model, collecting every error with its span; the back end
//! (`codegen`) reads only that model.

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

mod codegen;
mod collection;
mod internals;

use internals::ctxt::Ctxt;

/// Derives `singletable::Item`.
#[proc_macro_derive(Item, attributes(item))]
pub fn derive_item(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input, true).into()
}

/// Derives `singletable::AttrValue` for a struct stored as a map.
#[proc_macro_derive(Document, attributes(item))]
pub fn derive_document(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input, false).into()
}

/// Derives `singletable::Collection` for an enum whose variants each wrap
/// one `Item` type.
#[proc_macro_derive(Collection, attributes(item))]
pub fn derive_collection(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let cx = Ctxt::new();
    let model = internals::collection::from_ast(&cx, &input);
    match (cx.check(), model) {
        (Ok(()), Some(model)) => collection::expand(&model).into(),
        (result, _) => {
            let errors = result.err().map(|e| e.to_compile_error());
            let fallback = collection::fallback(&input.ident, &input.generics);
            quote::quote!(#errors #fallback).into()
        }
    }
}

fn expand(input: &DeriveInput, is_entity: bool) -> proc_macro2::TokenStream {
    let cx = Ctxt::new();
    let model = internals::model::from_ast(&cx, input, is_entity);
    match (cx.check(), model) {
        (Ok(()), Some(model)) if is_entity => codegen::expand_item(&model),
        (Ok(()), Some(model)) => codegen::expand_document(&model),
        (result, _) => {
            let errors = result.err().map(|e| e.to_compile_error());
            let fallback = if is_entity { codegen::fallback_item(&input.ident, &input.generics) } else { codegen::fallback_document(&input.ident, &input.generics) };
            quote::quote!(#errors #fallback)
        }
    }
}
