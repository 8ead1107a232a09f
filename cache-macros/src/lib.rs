//! The `#[cached]` attribute of [`cache-runtime`](https://docs.rs/cache-runtime).
//!
//! Use it through `cache_runtime::cached`: the expansion calls `cache_runtime::__private`
//! (or `<path>::__private` with `crate = "<path>"`), and the options are documented in the
//! `cache-runtime` crate docs.
//!
//! Errors are collected, not returned at the first (see `ctxt.rs`): one compile run reports
//! every bad option and argument. With errors, the user's function is emitted unchanged next
//! to them (with a stand-in `_invalidate` companion), so that callers of either do not add
//! follow-on errors such as "cannot find function".

use proc_macro::TokenStream;
use syn::ItemFn;

mod companion;
mod ctxt;
mod detach;
mod expand;
mod http;
mod options;

use ctxt::Ctxt;

/// Caches an `async fn`'s awaited result; see the `cache-runtime` crate docs for the options.
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    cached2(attr.into(), item.into()).into()
}

fn cached2(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let ctx = Ctxt::default();
    let opts = options::parse(attr.clone(), &ctx);
    let item: ItemFn = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(e) => {
            ctx.error_at(
                e.span(),
                "#[cached] goes on an `async fn` (a free function or a method)",
            );
            let errors = ctx.into_compile_errors();
            return quote::quote!(#item #errors);
        }
    };
    if item.sig.asyncness.is_none() {
        ctx.error_spanned_by(
            item.sig.fn_token,
            "#[cached] needs an `async fn`: it caches the awaited result, never a future; \
             make the function `async fn`",
        );
    }
    // Only the attribute makes a handler: nothing is inferred from argument or type names.
    if opts.http.is_some() {
        http::expand(item, opts, &attr, ctx)
    } else {
        http::check_not_handler(&item, &ctx);
        expand::expand(item, opts, ctx)
    }
}
