//! The typed invalidation companion of a cached handler with `http(route = "/items/{id}")`:
//! `get_item_invalidate(Path(id))` drops every cached response of that item's path.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::visit::Visit;
use syn::{FnArg, Ident, ItemFn, LitStr, Pat, Signature};

use crate::ctxt::Ctxt;
use crate::expand::Bindings;

/// The `{name}` placeholders of a route, or an error for `{*rest}` and unbalanced braces.
fn placeholders(route: &LitStr) -> syn::Result<Vec<String>> {
    let text = route.value();
    let mut names = Vec::new();
    let mut rest = text.as_str();
    while let Some(open) = rest.find(['{', '}']) {
        let close = rest[open..].find('}').map(|c| open + c);
        match close {
            Some(close) if rest.as_bytes()[open] == b'{' => {
                let name = &rest[open + 1..close];
                if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    return Err(syn::Error::new_spanned(
                        route,
                        format!(
                            "`{{{name}}}`: `route` takes `{{name}}` placeholders named like the \
                             handler's `Path` bindings (no catch-all `{{*rest}}`)"
                        ),
                    ));
                }
                names.push(name.to_owned());
                rest = &rest[close + 1..];
            }
            _ => {
                return Err(syn::Error::new_spanned(
                    route,
                    "unbalanced `{` or `}` in `route`",
                ));
            }
        }
    }
    if !text.starts_with('/') {
        return Err(syn::Error::new_spanned(
            route,
            "`route` is the handler's full path, e.g. `route = \"/items/{id}\"`",
        ));
    }
    Ok(names)
}

/// The handler's `Path(..)` arguments and the names they bind.
fn path_arguments(item: &ItemFn) -> (Vec<FnArg>, Vec<Ident>) {
    let mut inputs = Vec::new();
    let mut bound = Vec::new();
    for arg in &item.sig.inputs {
        let FnArg::Typed(pt) = arg else { continue };
        let Pat::TupleStruct(ts) = &*pt.pat else {
            continue;
        };
        if ts.path.segments.last().is_none_or(|s| s.ident != "Path") {
            continue;
        }
        let mut b = Bindings::default();
        b.visit_pat(&pt.pat);
        bound.extend(b.0);
        inputs.push(arg.clone());
    }
    (inputs, bound)
}

/// `async fn {fn}_invalidate(<the handler's Path arguments>) -> Result<(), Error>`.
pub(crate) fn signature(item: &ItemFn, krate: &TokenStream) -> Signature {
    let (inputs, _) = path_arguments(item);
    let name = format_ident!("{}_invalidate", item.sig.ident);
    syn::parse_quote!(async fn #name(#(#inputs),*) -> ::core::result::Result<(), #krate::Error>)
}

/// `{fn}_invalidate(<the handler's Path arguments>)`: formats `route` from the `Path`
/// bindings and calls `invalidate_path(namespace, ..)`. Problems go to `ctx`.
pub(crate) fn companion(
    item: &ItemFn,
    namespace: &TokenStream,
    route: &LitStr,
    krate: &TokenStream,
    ctx: &Ctxt,
) -> TokenStream {
    let (_, bound) = path_arguments(item);
    for name in ctx.ok(placeholders(route)).unwrap_or_default() {
        if !bound.iter().any(|b| b == &name) {
            ctx.error_spanned_by(
                route,
                format!(
                    "`{{{name}}}` in `route` names no binding of the handler's `Path(..)` \
                     arguments; name the binding `{name}`, e.g. `Path({name}): Path<u64>`"
                ),
            );
        }
    }
    let vis = &item.vis;
    let sig = signature(item, krate);
    let doc = format!(
        "Drops every cached response of [`{}`] for these path parameters (route `{}`, any \
         query, any varied header), in every process sharing the cache.",
        item.sig.ident,
        route.value()
    );
    quote! {
        #[doc = #doc]
        #[allow(unused_variables, clippy::unused_async)]
        #vis #sig {
            let __cache_path = ::std::format!(#route);
            #krate::http::invalidate_path(#namespace, &__cache_path).await
        }
    }
}
