//! The back end of `#[derive(Collection)]`: reads only the validated model.

use proc_macro2::{Ident, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::internals::collection::CollectionModel;

pub fn expand(m: &CollectionModel) -> TokenStream {
    let st = quote!(::singletable::__private);
    let ident = &m.ident;
    let name = ident.to_string();
    let designs = m.members.iter().map(|member| {
        let ty = &member.ty;
        quote_spanned!(ty.span()=> <#ty as ::singletable::Item>::DESIGN)
    });
    let decode = m.members.iter().enumerate().map(|(i, member)| {
        let (variant, ty) = (&member.variant, &member.ty);
        quote!(#st::Option::Some(#i) => #st::Result::Ok(#ident::#variant(<#ty as ::singletable::Item>::from_item(__item)?)),)
    });
    let encode = m.members.iter().map(|member| {
        let (variant, ty) = (&member.variant, &member.ty);
        quote!(#ident::#variant(__x) => <#ty as ::singletable::Item>::to_item(__x),)
    });
    let names = m.members.iter().map(|member| {
        let (variant, ty) = (&member.variant, &member.ty);
        quote!(#ident::#variant(_) => #st::entity_name(<#ty as ::singletable::Item>::DESIGN),)
    });
    let froms = m.members.iter().map(|member| {
        let (variant, ty) = (&member.variant, &member.ty);
        quote! {
            #[automatically_derived]
            impl ::core::convert::From<#ty> for #ident {
                fn from(__x: #ty) -> Self {
                    #ident::#variant(__x)
                }
            }
        }
    });
    let message = format!("collection `{name}`: two variants wrap entities with the same entity name");
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, unused_qualifications, clippy::all)]
        const _: () = {
            #[automatically_derived]
            impl ::singletable::Collection for #ident {
                const NAME: &'static str = #name;
                const ENTITIES: &'static [&'static #st::EntityDesign] = &[#(#designs),*];

                fn from_item(__item: #st::Map<#st::String, #st::AttributeValue>) -> #st::Result<Self, #st::Error> {
                    match #st::member_of(&__item, <Self as ::singletable::Collection>::ENTITIES) {
                        #(#decode)*
                        _ => #st::Result::Err(#st::unknown_entity(#name, <Self as ::singletable::Collection>::ENTITIES, &__item)),
                    }
                }

                fn to_item(&self) -> #st::Result<#st::Map<#st::String, #st::AttributeValue>, #st::Error> {
                    match self {
                        #(#encode)*
                    }
                }

                fn entity(&self) -> &'static str {
                    match self {
                        #(#names)*
                    }
                }
            }

            #(#froms)*

            const _: () = ::core::assert!(#st::distinct_entities(<#ident as ::singletable::Collection>::ENTITIES), #message);
        };
    }
}

/// Emitted beside the errors so that code using the enum sees one real
/// error, not a cascade of "trait not implemented".
pub fn fallback(ident: &Ident, generics: &syn::Generics) -> TokenStream {
    let st = quote!(::singletable::__private);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    quote! {
        #[doc(hidden)]
        const _: () = {
            impl #impl_generics ::singletable::Collection for #ident #ty_generics #where_clause {
                const NAME: &'static str = "<invalid>";
                const ENTITIES: &'static [&'static #st::EntityDesign] = &[];
                fn from_item(_: #st::Map<#st::String, #st::AttributeValue>) -> #st::Result<Self, #st::Error> { ::core::unreachable!() }
                fn to_item(&self) -> #st::Result<#st::Map<#st::String, #st::AttributeValue>, #st::Error> { ::core::unreachable!() }
                fn entity(&self) -> &'static str { ::core::unreachable!() }
            }
        };
    }
}
