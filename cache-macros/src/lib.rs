//! The `#[cached]` attribute of [`cache-runtime`](https://docs.rs/cache-runtime).
//!
//! Use it through `cache_runtime::cached`: the expansion calls `cache_runtime::__private`, and
//! the options are documented in the `cache-runtime` crate docs.

use proc_macro::TokenStream;
use syn::ItemFn;

mod companion;
mod expand;
mod http;
mod options;

/// Caches an `async fn`'s awaited result; see the `cache-runtime` crate docs for the options.
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr2 = proc_macro2::TokenStream::from(attr.clone());
    let mut opts = options::Options::default();
    let parser = syn::meta::parser(|meta| opts.parse_meta(meta));
    if let Err(e) = syn::parse::Parser::parse(parser, attr) {
        return e.to_compile_error().into();
    }
    let item: ItemFn = match syn::parse(item) {
        Ok(item) => item,
        Err(e) => {
            return syn::Error::new(
                e.span(),
                "#[cached] goes on an `async fn` (a free function or a method)",
            )
            .to_compile_error()
            .into();
        }
    };
    if item.sig.asyncness.is_none() {
        return syn::Error::new_spanned(
            item.sig.fn_token,
            "#[cached] needs an `async fn`: it caches the awaited result, never a future; \
             make the function `async fn`",
        )
        .to_compile_error()
        .into();
    }
    // Only the attribute makes a handler: nothing is inferred from argument or type names.
    let expanded = if opts.http.is_some() {
        http::expand(item, opts, &attr2)
    } else {
        http::check_not_handler(&item).and_then(|()| expand::expand(item, opts))
    };
    match expanded {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}
