//! Code generation from the validated model.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::internals::model::{Container, Entity, Field, KeyTemplate, Part, Role};

/// The runtime path every generated item goes through.
fn st() -> TokenStream {
    quote!(::singletable::__private)
}

fn wrap(body: TokenStream) -> TokenStream {
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, unused_qualifications, clippy::all)]
        const _: () = {
            #body
        };
    }
}

/// Encodes every stored field into the map `__item`. `on_err` turns an
/// `AttrError` (bound as `e`, already carrying the field) into the
/// function's error type.
fn encode_fields(c: &Container, on_err: &TokenStream) -> TokenStream {
    let st = st();
    let stmts = c.fields.iter().filter(|f| !f.skip).map(|f| {
        let ident = &f.ident;
        let ty = &f.ty;
        let attr = &f.attr;
        if f.serde {
            quote! {
                __item.insert(#st::String::from(#attr), #st::serde_to_attr(&self.#ident)
                    .map_err(|e| { let e = #st::in_field_cold(e, #attr); #on_err })?);
            }
        } else if f.role() == Some(Role::Ttl) {
            // Whole epoch seconds, which is what DynamoDB's TTL reads.
            quote! {
                if let #st::Option::Some(v) = <#ty as #st::TtlValue>::to_ttl_attr(&self.#ident)
                    .map_err(|e| { let e = #st::in_field_cold(e, #attr); #on_err })? {
                    __item.insert(#st::String::from(#attr), v);
                }
            }
        } else {
            quote! {
                <#ty as #st::AttrValue>::encode_into(&self.#ident, &mut __item, #attr)
                    .map_err(|e| { let e = #st::in_field_cold(e, #attr); #on_err })?;
            }
        }
    });
    quote!(#(#stmts)*)
}

/// Struct-literal fields decoded out of the map `__item`.
fn decode_fields(c: &Container, on_err: &TokenStream) -> TokenStream {
    let st = st();
    let inits = c.fields.iter().map(|f| {
        let ident = &f.ident;
        let ty = &f.ty;
        let attr = &f.attr;
        let take = if f.skip {
            return quote!(#ident: ::core::default::Default::default());
        } else if f.serde {
            let default = if f.default {
                quote!(#st::Option::Some(<#ty as ::core::default::Default>::default as fn() -> #ty))
            } else {
                quote!(#st::Option::None)
            };
            quote!(#st::take_serde::<#ty>(&mut __item, #attr, #default))
        } else if f.default {
            quote!(#st::take_or_default::<#ty>(&mut __item, #attr))
        } else {
            quote!(#st::take::<#ty>(&mut __item, #attr))
        };
        quote!(#ident: #take.map_err(|e| #on_err)?)
    });
    quote!(#(#inits,)*)
}

/// A block evaluating to the rendered key `String`; `value_of(field)` is
/// an expression of type `&FieldType` (or `&Inner` for sparse fields).
fn render_key(entity: &str, key: &KeyTemplate, fields: &[Field], value_of: &dyn Fn(usize) -> TokenStream) -> TokenStream {
    let st = st();
    let attr = &key.attr;
    let literal_len = key.literal_len();
    // Sized from the values themselves: a guess short of a long id or
    // e-mail would reallocate on every encode.
    let hints = key.placeholders().map(|p| {
        let value = value_of(p.field);
        let f = &fields[p.field];
        let key_ty = f.option_inner.as_ref().unwrap_or(&f.ty);
        quote!(+ <#key_ty as #st::KeyPart>::len_hint(#value))
    });
    let capacity = quote!(#literal_len #(#hints)*);
    let max = if key.is_partition { quote!(#st::MAX_PARTITION_KEY_BYTES) } else { quote!(#st::MAX_SORT_KEY_BYTES) };
    let steps = key.parts.iter().map(|part| match part {
        Part::Literal(text) => quote!(__k.push_str(#text);),
        Part::Field(p) => {
            let value = value_of(p.field);
            let f = &fields[p.field];
            let key_ty = f.option_inner.as_ref().unwrap_or(&f.ty);
            let name = f.ident.to_string();
            let pad = match p.pad {
                Some(w) => quote!(#st::Option::Some(#w)),
                None => quote!(#st::Option::None),
            };
            let delimiter = match p.delimiter {
                Some(d) => quote!(#st::Option::Some(#d)),
                None => quote!(#st::Option::None),
            };
            quote! {
                let __s = __k.len();
                <#key_ty as #st::KeyPart>::write_key(#value, &mut __k, #pad)
                    .map_err(|r| #st::format_error(r, #entity, #attr, #name))?;
                #st::check_part(&__k, __s, #delimiter, #entity, #attr, #name)?;
            }
        }
    });
    quote! {{
        let mut __k = #st::String::with_capacity(#capacity);
        #(#steps)*
        #st::check_len(&__k, #max, #entity, #attr)?;
        __k
    }}
}

fn cow_str(s: &str) -> TokenStream {
    let st = st();
    quote!(#st::Cow::Borrowed(#s))
}

/// Static design data for one template; pushes the segment constant it
/// needs into `consts`.
fn template_design(key: &KeyTemplate, c: &Container, consts: &mut Vec<TokenStream>) -> TokenStream {
    let st = st();
    let segs_ident = format_ident!("__SEGMENTS_{}", consts.len());
    let segments = key.parts.iter().map(|part| match part {
        Part::Literal(text) => {
            let text = cow_str(text);
            quote!(#st::Segment::Literal(#text))
        }
        Part::Field(p) => {
            let f = &c.fields[p.field];
            let key_ty = f.option_inner.as_ref().unwrap_or(&f.ty);
            let attr = cow_str(&f.attr);
            let field = cow_str(&f.ident.to_string());
            let optional = f.option_inner.is_some();
            let pad = match p.pad {
                Some(w) => quote!(#st::Option::Some(#w)),
                None => quote!(#st::Option::None),
            };
            quote!(#st::Segment::Field(#st::FieldRef {
                attr: #attr,
                field: #field,
                kind: <#key_ty as #st::KeyPart>::KIND,
                pad: #pad,
                optional: #optional,
            }))
        }
    });
    // Padding on a type only its `KeyPart` impl can classify: checked when
    // the constant is evaluated, reported at the field's type.
    let pad_checks = key.placeholders().filter_map(|p| Some((p, p.pad?))).map(|(p, width)| {
        let f = &c.fields[p.field];
        let key_ty = f.option_inner.as_ref().unwrap_or(&f.ty);
        let message = format!(
            "`{{{}:0{width}}}` in the `{}` template: zero padding applies to integer fields only, and this type's `KeyPart::KIND` is not `KeyKind::Int`",
            f.ident, key.attr
        );
        quote_spanned! {key_ty.span()=>
            const _: () = if !::core::matches!(<#key_ty as #st::KeyPart>::KIND, #st::KeyKind::Int) {
                ::core::panic!("{}", #message)
            };
        }
    });
    consts.push(quote! {
        const #segs_ident: &[#st::Segment] = &[#(#segments),*];
        #(#pad_checks)*
    });
    let attr = cow_str(&key.attr);
    let source = cow_str(&key.source);
    quote!(#st::KeyDesign {
        attr: #attr,
        template: #st::Template { source: #source, segments: #st::Cow::Borrowed(#segs_ident) },
    })
}

fn entity_design(c: &Container, e: &Entity) -> (TokenStream, Vec<TokenStream>) {
    let st = st();
    let mut consts = Vec::new();
    let pk = template_design(&e.pk, c, &mut consts);
    let sk = template_design(&e.sk, c, &mut consts);
    let indexes: Vec<TokenStream> = e
        .indexes
        .iter()
        .map(|i| {
            let name = cow_str(&i.name);
            let ipk = template_design(&i.pk, c, &mut consts);
            let isk = match &i.sk {
                Some(sk) => {
                    let d = template_design(sk, c, &mut consts);
                    quote!(#st::Option::Some(#d))
                }
                None => quote!(#st::Option::None),
            };
            quote!(#st::IndexDesign { name: #name, pk: #ipk, sk: #isk })
        })
        .collect();
    let attributes = c.fields.iter().filter(|f| !f.skip).map(|f| {
        let name = cow_str(&f.attr);
        let ty = &f.ty;
        let (kind, optional) = if f.serde {
            (quote!(#st::AttrType::Any), quote!(true))
        } else {
            let default = f.default;
            (quote!(<#ty as #st::AttrValue>::TYPE), quote!(<#ty as #st::AttrValue>::OPTIONAL || #default))
        };
        quote!(#st::AttributeDesign { name: #name, ty: #kind, optional: #optional })
    });
    let entity = cow_str(&e.entity);
    let entity_attr = cow_str(&e.entity_attr);
    let managed_attr = |role: Role| match c.fields.iter().find(|f| f.role() == Some(role)) {
        Some(f) => {
            let attr = cow_str(&f.attr);
            quote!(#st::Option::Some(#attr))
        }
        None => quote!(#st::Option::None),
    };
    let (version, ttl, created_at, updated_at) =
        (managed_attr(Role::Version), managed_attr(Role::Ttl), managed_attr(Role::CreatedAt), managed_attr(Role::UpdatedAt));
    consts.push(quote! {
        const __INDEXES: &[#st::IndexDesign] = &[#(#indexes),*];
        const __ATTRIBUTES: &[#st::AttributeDesign] = &[#(#attributes),*];
    });
    let design = quote!(#st::EntityDesign {
        entity: #entity,
        entity_attr: #entity_attr,
        pk: #pk,
        sk: #sk,
        indexes: #st::Cow::Borrowed(__INDEXES),
        attributes: #st::Cow::Borrowed(__ATTRIBUTES),
        managed: #st::ManagedAttrs { version: #version, ttl: #ttl, created_at: #created_at, updated_at: #updated_at },
    });
    (design, consts)
}

fn self_field(c: &Container) -> impl Fn(usize) -> TokenStream + '_ {
    move |i| {
        let ident = &c.fields[i].ident;
        quote!(&self.#ident)
    }
}

/// The kind marker of a field's handle (see `singletable::Field`).
fn field_kind(c: &Container, e: &Entity, i: usize) -> TokenStream {
    let st = st();
    let in_key = |k: &KeyTemplate| k.placeholders().any(|p| p.field == i);
    if in_key(&e.pk) || in_key(&e.sk) {
        quote!(#st::TableKey)
    } else if matches!(c.fields[i].role(), Some(Role::Version | Role::CreatedAt | Role::UpdatedAt)) {
        quote!(#st::Managed)
    } else if e.indexes.iter().any(|ix| ix.keys().any(in_key)) {
        quote!(#st::IndexKey)
    } else {
        quote!(#st::Attr)
    }
}

/// The typed field handles: a struct defined inside the anonymous const
/// block (so it adds no name to the user's module), its constructor, and
/// the trait checks of managed fields.
fn field_handles(c: &Container, e: &Entity) -> (TokenStream, TokenStream) {
    let st = st();
    let ident = &c.ident;
    let vis = &c.vis;
    let stored: Vec<(usize, &Field)> = c.fields.iter().enumerate().filter(|(_, f)| !f.skip).collect();
    let members = stored.iter().map(|&(i, f)| {
        let name = &f.ident;
        let ty = &f.ty;
        let kind = field_kind(c, e, i);
        let doc = format!("The `{}` field, stored as `{}`.", f.ident, f.attr);
        quote! {
            #[doc = #doc]
            #vis #name: #st::Field<#ident, #ty, #kind>
        }
    });
    let inits = stored.iter().map(|&(_, f)| {
        let name = &f.ident;
        let ty = &f.ty;
        let attr = &f.attr;
        let rust_name = f.ident.to_string();
        let rust_name = rust_name.trim_start_matches("r#");
        let encode = if f.serde {
            quote!(|v: &#ty| #st::serde_to_attr(v).map(#st::Option::Some))
        } else if f.role() == Some(Role::Ttl) {
            quote!(<#ty as #st::TtlValue>::to_ttl_attr)
        } else {
            quote!(<#ty as #st::AttrValue>::to_attr_opt)
        };
        quote!(#name: #st::Field::__new(#attr, #rust_name, #encode))
    });
    let definition = quote! {
        /// The typed field handles of the entity; see `singletable::Field`.
        #[derive(Clone, Copy)]
        #[allow(non_camel_case_types, missing_docs, dead_code)]
        #vis struct __Fields {
            #(#members,)*
        }
    };
    let constructor = quote!(__Fields { #(#inits,)* });
    (definition, constructor)
}

/// Trait checks of the managed fields' types, reported at the type; the
/// hidden `Item` methods that write and read them.
fn managed_fields(c: &Container, entity: &str) -> TokenStream {
    let st = st();
    // The ttl and timestamp traits are used (and so checked) where the
    // values are encoded; the version's is checked here. Either way the
    // error points at the field's type.
    let checks = c.fields.iter().filter(|f| f.role() == Some(Role::Version)).map(|f| {
        let ty = &f.ty;
        quote_spanned! {ty.span()=>
            let () = <#ty as #st::VersionNumber>::__CHECK;
        }
    });
    let now_arms = [(Role::CreatedAt, quote!(CreatedAt)), (Role::UpdatedAt, quote!(UpdatedAt))].into_iter().filter_map(|(role, variant)| {
        let f = c.fields.iter().find(|f| f.role() == Some(role))?;
        let ty = &f.ty;
        let attr = &f.attr;
        let now = quote_spanned!(ty.span()=> <#ty as #st::Timestamp>::now());
        Some(quote! {
            #st::Stamp::#variant => <#ty as #st::AttrValue>::to_attr_opt(&#now)
                .map_err(|e| e.in_field(#attr).encoding(#entity)),
        })
    });
    let written = c.fields.iter().filter(|f| matches!(f.role(), Some(Role::Version | Role::CreatedAt | Role::UpdatedAt))).map(|f| {
        let ident = &f.ident;
        let ty = &f.ty;
        let attr = &f.attr;
        quote! {
            if let #st::Option::Some(v) = __item.get(#attr) {
                self.#ident = <#ty as #st::AttrValue>::from_attr(::core::clone::Clone::clone(v))
                    .map_err(|e| e.in_field(#attr).decoding(#entity))?;
            }
        }
    });
    quote! {
        fn __now(__stamp: #st::Stamp) -> #st::Result<#st::Option<#st::AttributeValue>, #st::Error> {
            #[allow(unreachable_patterns)]
            match __stamp {
                #(#now_arms)*
                _ => #st::Result::Ok(#st::Option::None),
            }
        }

        #[allow(unused_variables)]
        fn __written(&mut self, __item: &#st::Map<#st::String, #st::AttributeValue>) -> #st::Result<(), #st::Error> {
            #(#checks)*
            #(#written)*
            #st::Result::Ok(())
        }
    }
}

pub fn expand_item(c: &Container) -> TokenStream {
    let st = st();
    let e = c.entity.as_ref().expect("Item has an entity");
    let ident = &c.ident;
    let entity = e.entity.as_str();
    let entity_attr = e.entity_attr.as_str();
    let (design, consts) = entity_design(c, e);
    let (fields_struct, fields_value) = field_handles(c, e);
    let managed = managed_fields(c, entity);

    let from_self = self_field(c);
    let pk_block = render_key(entity, &e.pk, &c.fields, &from_self);
    let sk_block = render_key(entity, &e.sk, &c.fields, &from_self);
    let (pk_attr, sk_attr) = (&e.pk.attr, &e.sk.attr);

    let index_inserts = e.indexes.iter().map(|index| {
        let mut optional: Vec<usize> = Vec::new();
        for p in index.keys().flat_map(|k| k.placeholders()) {
            if c.fields[p.field].option_inner.is_some() && !optional.contains(&p.field) {
                optional.push(p.field);
            }
        }
        let bound = |i: usize| format_ident!("__o{}", i);
        let value_of = |i: usize| {
            if optional.contains(&i) {
                let b = bound(i);
                quote!(#b)
            } else {
                from_self(i)
            }
        };
        let inserts = index.keys().map(|k| {
            let attr = &k.attr;
            let block = render_key(entity, k, &c.fields, &value_of);
            quote!(__item.insert(#st::String::from(#attr), #st::AttributeValue::S(#block));)
        });
        if optional.is_empty() {
            quote!(#(#inserts)*)
        } else {
            let pats = optional.iter().map(|&i| bound(i));
            let vals = optional.iter().map(|&i| {
                let f = &c.fields[i].ident;
                quote!(&self.#f)
            });
            quote! {
                // A sparse index: items lacking a field are left out.
                if let (#(#st::Option::Some(#pats),)*) = (#(#vals,)*) {
                    #(#inserts)*
                }
            }
        }
    });

    let capacity = 3 + 2 * e.indexes.len() + c.fields.iter().filter(|f| !f.skip).count();
    let encode = encode_fields(c, &quote!(#st::encoding_cold(e, #entity)));
    let decode = decode_fields(c, &quote!(e.decoding(#entity)));

    let key_fields = c.key_fields();
    let key_types = key_fields.iter().map(|&i| &c.fields[i].ty);
    let key_bindings: Vec<Ident> = (0..key_fields.len()).map(|n| format_ident!("__key{}", n)).collect();
    let from_key = |i: usize| {
        let n = key_fields.iter().position(|&k| k == i).expect("key field");
        let b = &key_bindings[n];
        quote!(#b)
    };
    let key_pk = render_key(entity, &e.pk, &c.fields, &from_key);
    let key_sk = render_key(entity, &e.sk, &c.fields, &from_key);
    let destructure = if key_bindings.is_empty() {
        quote!(let _ = __key;)
    } else {
        quote!(let (#(#key_bindings,)*) = __key;)
    };

    wrap(quote! {
        #(#consts)*
        const __DESIGN: #st::EntityDesign = #design;

        #fields_struct

        #[automatically_derived]
        impl ::singletable::Item for #ident {
            const DESIGN: &'static #st::EntityDesign = &__DESIGN;
            type Key = (#(#key_types,)*);

            fn to_item(&self) -> #st::Result<#st::Map<#st::String, #st::AttributeValue>, #st::Error> {
                let mut __item = #st::Map::with_capacity(#capacity);
                __item.insert(#st::String::from(#pk_attr), #st::AttributeValue::S(#pk_block));
                __item.insert(#st::String::from(#sk_attr), #st::AttributeValue::S(#sk_block));
                #(#index_inserts)*
                __item.insert(#st::String::from(#entity_attr), #st::AttributeValue::S(#st::String::from(#entity)));
                #encode
                #st::Result::Ok(__item)
            }

            fn from_item(mut __item: #st::Map<#st::String, #st::AttributeValue>) -> #st::Result<Self, #st::Error> {
                #st::check_entity(&__item, #entity_attr, #entity)?;
                #st::Result::Ok(Self { #decode })
            }

            fn primary_key(&self) -> #st::Result<#st::PrimaryKey, #st::Error> {
                #st::Result::Ok(#st::PrimaryKey { pk: #pk_block, sk: #sk_block })
            }

            fn key_of(__key: &Self::Key) -> #st::Result<#st::PrimaryKey, #st::Error> {
                #destructure
                #st::Result::Ok(#st::PrimaryKey { pk: #key_pk, sk: #key_sk })
            }

            type Fields = __Fields;

            #[inline]
            fn fields() -> __Fields {
                #fields_value
            }

            #managed
        }
    })
}

pub fn expand_document(c: &Container) -> TokenStream {
    let st = st();
    let ident = &c.ident;
    let capacity = c.fields.iter().filter(|f| !f.skip).count();
    let encode = encode_fields(c, &quote!(e));
    let decode = decode_fields(c, &quote!(e));
    wrap(quote! {
        #[automatically_derived]
        impl #st::AttrValue for #ident {
            const TYPE: #st::AttrType = #st::AttrType::M;

            fn to_attr(&self) -> #st::Result<#st::AttributeValue, #st::AttrError> {
                let mut __item = #st::Map::with_capacity(#capacity);
                #encode
                #st::Result::Ok(#st::AttributeValue::M(__item))
            }

            fn from_attr(__value: #st::AttributeValue) -> #st::Result<Self, #st::AttrError> {
                let mut __item = #st::expect_map(__value)?;
                #st::Result::Ok(Self { #decode })
            }
        }
    })
}

/// Emitted beside the errors so that code using the type sees one real
/// error, not a cascade of "trait not implemented".
pub fn fallback_item(ident: &Ident, generics: &syn::Generics) -> TokenStream {
    let st = st();
    // Generics are refused, but the impl must still name the type right.
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    wrap(quote! {
        impl #impl_generics ::singletable::Item for #ident #ty_generics #where_clause {
            const DESIGN: &'static #st::EntityDesign = #st::FALLBACK_DESIGN;
            type Key = ();
            fn to_item(&self) -> #st::Result<#st::Map<#st::String, #st::AttributeValue>, #st::Error> { ::core::unreachable!() }
            fn from_item(_: #st::Map<#st::String, #st::AttributeValue>) -> #st::Result<Self, #st::Error> { ::core::unreachable!() }
            fn primary_key(&self) -> #st::Result<#st::PrimaryKey, #st::Error> { ::core::unreachable!() }
            fn key_of(_: &()) -> #st::Result<#st::PrimaryKey, #st::Error> { ::core::unreachable!() }
            type Fields = ();
            fn fields() {}
        }
    })
}

pub fn fallback_document(ident: &Ident, generics: &syn::Generics) -> TokenStream {
    let st = st();
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    wrap(quote! {
        impl #impl_generics #st::AttrValue for #ident #ty_generics #where_clause {
            const TYPE: #st::AttrType = #st::AttrType::M;
            fn to_attr(&self) -> #st::Result<#st::AttributeValue, #st::AttrError> { ::core::unreachable!() }
            fn from_attr(_: #st::AttributeValue) -> #st::Result<Self, #st::AttrError> { ::core::unreachable!() }
        }
    })
}

