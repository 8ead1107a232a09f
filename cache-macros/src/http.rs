//! `#[cached(http)]` on an axum handler: the `http(...)` options, and the expansion.
//!
//! The expansion keeps the handler's body in an inner `async fn` with the original signature,
//! and wraps it in a handler that takes one more extractor (`RequestParts`) and calls
//! `cache_runtime::__private::http::serve`, where all the HTTP logic lives.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote};
use syn::{FnArg, ItemFn, Pat, ReturnType, Type};

use crate::ctxt::Ctxt;
use crate::options::Options;

mod options;

use options::HttpOptions;

/// Axum extractors that destructure (`Path(id): Path<u64>`): a plain cached function with
/// such an argument would key on the wrapped value while axum calls it as a handler.
const EXTRACTORS: &[&str] = &[
    "Path",
    "State",
    "Query",
    "Json",
    "Form",
    "Extension",
    "ConnectInfo",
    "TypedHeader",
];

/// Refuses a function without `http` that can only be an axum handler: an argument written as
/// an extractor pattern of the same extractor type (`Path(id): Path<u64>`), or an
/// `impl Trait` return type (never a storable value). Nothing else is inferred from names: a
/// type of the user's called `State` is a plain argument.
pub(crate) fn check_not_handler(item: &ItemFn, ctx: &Ctxt) {
    const ADD: &str = "add `http` to cache it as an axum handler, keyed by the request: \
                       `#[cached(http, ...)]`";
    for arg in &item.sig.inputs {
        let FnArg::Typed(pt) = arg else { continue };
        let Pat::TupleStruct(ts) = &*pt.pat else {
            continue;
        };
        let Some(name) = ts.path.segments.last().map(|s| s.ident.to_string()) else {
            continue;
        };
        let generic_same_type = match &*pt.ty {
            Type::Path(p) => p.path.segments.last().is_some_and(|s| {
                s.ident == name && matches!(s.arguments, syn::PathArguments::AngleBracketed(_))
            }),
            _ => false,
        };
        if EXTRACTORS.contains(&name.as_str()) && generic_same_type {
            ctx.error_spanned_by(
                &pt.pat,
                format!(
                    "`{}` is an axum extractor pattern: it cannot be part of a plain cached \
                     function's key; {ADD}",
                    quote::ToTokens::to_token_stream(&pt.pat)
                ),
            );
        }
    }
    if let ReturnType::Type(_, ty) = &item.sig.output
        && let Type::ImplTrait(_) = &**ty
    {
        ctx.error_spanned_by(
            ty,
            format!(
                "a plain cached function must return a storable type, not `impl Trait`; if \
                 this is an axum handler, {ADD}"
            ),
        );
    }
}

/// Finds the option `name` in the attribute's tokens, for an error span.
fn option_span(attr: &TokenStream, name: &str) -> Option<Span> {
    attr.clone().into_iter().find_map(|tt| match tt {
        TokenTree::Ident(i) if i == name => Some(i.span()),
        _ => None,
    })
}

/// Expands `#[cached]` on an axum handler; with errors in `ctx`, emits them next to the
/// handler unchanged instead.
pub(crate) fn expand(item: ItemFn, opts: Options, attr: &TokenStream, ctx: Ctxt) -> TokenStream {
    check(&item, &opts, attr, &ctx);
    let http = HttpOptions::parse(opts.http.clone().unwrap_or_default(), &ctx);
    let krate = opts.krate();
    let namespace = match &opts.namespace {
        Some(ns) => quote!(#ns),
        None => {
            let fname = item.sig.ident.to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #fname))
        }
    };
    let companion = http
        .route
        .as_ref()
        .map(|route| crate::companion::companion(&item, &namespace, route, &krate, &ctx));
    if ctx.has_errors() {
        let stub = http
            .route
            .as_ref()
            .map(|_| crate::companion::signature(&item, &krate));
        return crate::expand::fallback(&item, stub, ctx);
    }
    let site = site(&item, &opts, &http);
    // A refresh finishes in the background with the request's handler future: it must be
    // `Send + 'static` (axum handlers taking their extractors by value are).
    let serve = if opts.refresh_after.is_some() {
        format_ident!("serve_detachable")
    } else {
        format_ident!("serve")
    };
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = &item;
    let mut inner_sig = sig.clone();
    inner_sig.ident = format_ident!("__cached_handler");
    let (outer_sig, arg_names) = outer_signature(sig, &krate);
    quote! {
        #(#attrs)*
        #vis #outer_sig {
            #[allow(clippy::unused_async)]
            #inner_sig #block
            #krate::__private::http::require_axum_feature::<()>();
            #site
            #krate::__private::http::#serve(&__CACHE_HTTP_SITE, __cache_request, async move {
                #krate::__private::http::into_response(__cached_handler(#(#arg_names),*).await)
            })
            .await
        }

        #companion
    }
}

/// The handler axum calls: the user's extractors (renamed `__cache_argN`, returned in order)
/// after one more, the request's parts, and a response as output.
fn outer_signature(sig: &syn::Signature, krate: &TokenStream) -> (syn::Signature, Vec<syn::Ident>) {
    let mut outer_sig = sig.clone();
    let mut arg_names = Vec::new();
    let mut outer_inputs: syn::punctuated::Punctuated<FnArg, syn::Token![,]> =
        syn::punctuated::Punctuated::new();
    outer_inputs.push(syn::parse_quote!(
        __cache_request: #krate::__private::http::RequestParts
    ));
    for (i, arg) in sig.inputs.iter().enumerate() {
        if let FnArg::Typed(pt) = arg {
            let name = format_ident!("__cache_arg{}", i);
            let ty = &pt.ty;
            outer_inputs.push(syn::parse_quote!(#name: #ty));
            arg_names.push(name);
        }
    }
    outer_sig.inputs = outer_inputs;
    outer_sig.output = syn::parse_quote!(-> #krate::__private::http::Response);
    (outer_sig, arg_names)
}

/// The `static` site of a handler: its [`HandlerSpec`] from the options.
fn site(item: &ItemFn, opts: &Options, http: &HttpOptions) -> TokenStream {
    let krate = opts.krate();
    let fname = item.sig.ident.to_string();
    let namespace = match &opts.namespace {
        Some(ns) => quote!(#ns),
        None => quote!(::core::concat!(::core::module_path!(), "::", #fname)),
    };
    let ttl = match opts.expire {
        Some(s) => quote!(::core::option::Option::Some(#s)),
        None => quote!(::core::option::Option::None),
    };
    let vary = &http.vary;
    let visibility = match http.visibility {
        Some(true) => {
            quote!(::core::option::Option::Some(
                #krate::__private::http::Visibility::Private
            ))
        }
        Some(false) => {
            quote!(::core::option::Option::Some(
                #krate::__private::http::Visibility::Public
            ))
        }
        None => quote!(::core::option::Option::None),
    };
    let status_header = match &http.status_header {
        Some(lit) => quote!(::core::option::Option::Some(#lit)),
        None => quote!(::core::option::Option::None),
    };
    let validate_only = http.validate_only;
    let allow_credentials = http.allow_credentials;
    let statuses = &http.statuses;
    let [max_age, s_maxage, swr, sie] = http.freshness.map(|f| match f {
        Some(s) => quote!(::core::option::Option::Some(#s)),
        None => quote!(::core::option::Option::None),
    });
    let immutable = http.immutable;
    let opt = |o: Option<(u64, Span)>| match o {
        Some((n, _)) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let (stale, refresh_after) = (opt(opts.stale), opt(opts.refresh_after));
    quote! {
    static __CACHE_HTTP_SITE: #krate::__private::http::HttpSite =
        #krate::__private::http::HttpSite::new(
            #krate::__private::http::HandlerSpec {
                namespace: #namespace,
                function: #fname,
                ttl_secs: #ttl,
                vary: &[#(#vary),*],
                visibility: #visibility,
                status_header: #status_header,
                validate_only: #validate_only,
                allow_credentials: #allow_credentials,
                statuses: &[#(#statuses),*],
                freshness: #krate::__private::http::Freshness {
                    max_age: #max_age,
                    s_maxage: #s_maxage,
                    stale_while_revalidate: #swr,
                    stale_if_error: #sie,
                    immutable: #immutable,
                },
                stale_secs: #stale,
                refresh_after_secs: #refresh_after,
            },
        );
    }
}

/// Refuses the options and shapes that do not apply to a handler.
fn check(item: &ItemFn, opts: &Options, attr: &TokenStream, ctx: &Ctxt) {
    let on_handler = "on an axum handler the cache key is the request (method, path, query and \
                      the headers in `http(vary(...))`), never the arguments";
    if let Some(key) = &opts.key {
        ctx.error_spanned_by(key, format!("{on_handler}: remove `key = ...`"));
    }
    if let Some(skip) = opts.skip.first() {
        ctx.error_spanned_by(
            skip,
            format!("{on_handler}: extractors are never part of the key, remove `skip(...)`"),
        );
    }
    let span = |name| option_span(attr, name).unwrap_or_else(|| item.sig.ident.span());
    if opts.cache_none {
        ctx.error_at(
            span("cache_none"),
            "`cache_none` does not apply to an axum handler: responses are cached by status \
             code; use `http(statuses(...))`",
        );
    }
    if opts.version != 0 {
        ctx.error_at(
            span("version"),
            "`version` does not apply to an axum handler: responses are keyed by URL; after a \
             change of the response format use another `namespace` or call \
             `cache_runtime::invalidate_namespace`",
        );
    }
    if let Some((_, span)) = opts.timeout_ms {
        ctx.error_at(
            span,
            "`timeout_ms` does not apply to an axum handler (a request is never answered before \
             its handler ends); remove it, and use `stale = N` and `refresh_after = N`",
        );
    }
    ctx.ok(opts.check_resilience());
    if let Some(FnArg::Receiver(r)) = item.sig.inputs.first() {
        ctx.error_spanned_by(
            r,
            "an axum handler is a free `async fn`; move it out of the `impl` block",
        );
    }
}
