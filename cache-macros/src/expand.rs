//! The expansion of `#[cached]` on an `async fn`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{FnArg, Ident, ItemFn, Pat, ReturnType, Type};

use crate::ctxt::Ctxt;
use crate::options::Options;

/// The value-caching mode chosen from the output type's shape.
pub(crate) fn mode(krate: &TokenStream, ret: &Type, cache_none: bool) -> TokenStream {
    let last = match ret {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    };
    match last.as_deref() {
        Some("Result") => quote!(#krate::__private::ResultMode),
        Some("Option") if !cache_none => quote!(#krate::__private::OptionMode),
        _ => quote!(#krate::__private::ValueMode),
    }
}

/// Collects the identifiers a pattern binds (`(a, b)` binds `a` and `b`).
#[derive(Default)]
pub(crate) struct Bindings(pub(crate) Vec<Ident>);

impl<'ast> Visit<'ast> for Bindings {
    fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
        self.0.push(p.ident.clone());
        syn::visit::visit_pat_ident(self, p);
    }
}

/// Checks the signature (recording each problem in `ctx`) and returns the arguments that form
/// the default key.
pub(crate) fn key_arguments(item: &ItemFn, opts: &Options, ctx: &Ctxt) -> Vec<Ident> {
    let mut keyed = Vec::new();
    let mut all_names = Vec::new();
    for arg in &item.sig.inputs {
        match arg {
            FnArg::Receiver(r) => {
                if r.mutability.is_some() && r.reference.is_some() {
                    ctx.error_spanned_by(
                        r,
                        "#[cached] cannot cache a method taking `&mut self`: on a hit the body does not run, \
                         so its changes to `self` would be silently skipped; take `&self`",
                    );
                }
            }
            FnArg::Typed(pt) => {
                if let Type::Reference(r) = &*pt.ty
                    && r.mutability.is_some()
                {
                    ctx.error_spanned_by(
                        &pt.ty,
                        "#[cached] cannot cache a function taking `&mut` arguments: on a hit the body does \
                         not run, so the mutation would be silently skipped; take `&T` or an owned value",
                    );
                }
                let mut bindings = Bindings::default();
                bindings.visit_pat(&pt.pat);
                let skipped =
                    bindings.0.iter().all(|b| opts.skip.contains(b)) && !bindings.0.is_empty();
                if !skipped && opts.key.is_none() && contains_impl_trait(&pt.ty) {
                    let name = bindings
                        .0
                        .first()
                        .map(|i| i.to_string())
                        .unwrap_or_else(|| "_".into());
                    ctx.error_spanned_by(
                        &pt.ty,
                        format!(
                            "#[cached] cannot build a cache key from the `impl Trait` argument `{name}`: \
                             leave it out with `skip({name})`, or give the key yourself with `key = ...`"
                        ),
                    );
                }
                if let Pat::Wild(_) = &*pt.pat
                    && opts.key.is_none()
                {
                    ctx.error_spanned_by(
                        &pt.pat,
                        "#[cached] cannot put a `_` argument in the key: give it a name (and `skip(name)` \
                         if it should not be part of the key)",
                    );
                }
                for b in bindings.0 {
                    all_names.push(b.clone());
                    if !opts.skip.contains(&b) {
                        keyed.push(b);
                    }
                }
            }
        }
    }
    for s in &opts.skip {
        if !all_names.contains(s) {
            let names: Vec<String> = all_names.iter().map(|n| format!("`{n}`")).collect();
            let known = if names.is_empty() {
                "it takes no arguments to skip".to_owned()
            } else {
                format!("its arguments are {}", names.join(", "))
            };
            ctx.error_spanned_by(
                s,
                format!("`skip({s})` names no argument of this function; {known}"),
            );
        }
    }
    keyed
}

fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut f = Finder(false);
    f.visit_type(ty);
    f.0
}

/// The `static` site of a function, and the nested `fn __cache_site` whose type name tells the
/// runtime where the function is declared (module, `impl` type, trait): part of its key.
pub(crate) fn site(item: &ItemFn, opts: &Options) -> TokenStream {
    let krate = opts.krate();
    let fname = item.sig.ident.to_string();
    let function = item.sig.ident.unraw().to_string();
    let namespace = match &opts.namespace {
        Some(ns) => quote!(#ns),
        None => quote!(::core::concat!(::core::module_path!(), "::", #fname)),
    };
    let version = opts.version;
    let ttl = match opts.expire {
        Some(s) => quote!(::core::option::Option::Some(#s)),
        None => quote!(::core::option::Option::None),
    };
    let generic = item.sig.generics.type_params().next().is_some();
    let opt = |o: Option<(u64, proc_macro2::Span)>| match o {
        Some((n, _)) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let (stale, timeout, refresh) = (
        opt(opts.stale),
        opt(opts.timeout_ms),
        opt(opts.refresh_after),
    );
    quote! {
        fn __cache_site() -> &'static str {
            ::core::any::type_name_of_val(&__cache_site)
        }
        static __CACHE_SITE: #krate::__private::Site =
            #krate::__private::Site::new(#krate::__private::SiteSpec {
                namespace: #namespace,
                function: #function,
                locate: __cache_site,
                version: #version,
                ttl_secs: #ttl,
                generic: #generic,
                stale_secs: #stale,
                timeout_ms: #timeout,
                refresh_after_secs: #refresh,
            });
    }
}

/// `tokens` with every token at `span`.
fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let proc_macro2::TokenTree::Group(g) = &tt {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                tt = group.into();
            } else {
                tt.set_span(span);
            }
            tt
        })
        .collect()
}

/// The call `<path>::<mode, Ret, _>(<args>).await` of the runtime function that requires the
/// output to be cacheable (`call`), spanned at the user's return type: an output that cannot
/// be cached is reported there, once, with `Mode`'s message (its impls are
/// `do_not_recommend`: not one raw error per trait).
fn output_bound_call(
    item: &ItemFn,
    path: TokenStream,
    mode: &TokenStream,
    args: TokenStream,
) -> TokenStream {
    let ReturnType::Type(_, ty) = &item.sig.output else {
        return quote!(#path::<#mode, (), _>(#args).await);
    };
    let span = ty.span();
    let head = respan(quote!(#path::<#mode,), span);
    let tail = respan(quote!(, _>), span);
    let call = respan(quote!((#args).await), span);
    quote!(#head #ty #tail #call)
}

/// Rewrites a plain (non-handler) cached function and adds its `_invalidate` companion; with
/// errors in `ctx`, emits them next to the function unchanged instead.
pub(crate) fn expand(item: ItemFn, opts: Options, ctx: Ctxt) -> TokenStream {
    let keyed = key_arguments(&item, &opts, &ctx);
    crate::detach::check_owned_arguments(&item, &opts, &ctx);
    ctx.ok(opts.check_resilience());
    let inv_sig = invalidate_signature(&item.sig, &opts.krate());
    if ctx.has_errors() {
        return fallback(&item, Some(inv_sig), ctx);
    }
    let krate = opts.krate();
    // A body that may go on, or start, after its caller has the answer must be
    // `Send + 'static`: only `timeout_ms` and `refresh_after` need that.
    let call_fn = if opts.timeout_ms.is_some() || opts.refresh_after.is_some() {
        quote!(call_detachable)
    } else {
        quote!(call)
    };
    let ret: Type = match &item.sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let mode = mode(&krate, &ret, opts.cache_none);
    let site = site(&item, &opts);
    let key_expr = match &opts.key {
        Some(expr) => quote_spanned!(expr.span()=> &(#expr)),
        None => {
            // Each argument goes through `key_part`, spanned at the argument, so a type that
            // cannot be keyed is reported there.
            let parts = keyed
                .iter()
                .map(|arg| respan(quote!(#krate::__private::key_part(&#arg)), arg.span()));
            quote!(&(#(#parts,)*))
        }
    };
    let key_fn = quote!(#krate::__private::key::<#mode, #ret>);
    let call = output_bound_call(
        &item,
        quote!(#krate::__private::#call_fn),
        &mode,
        quote!(&__CACHE_SITE, __cache_key, __cache_body),
    );
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = &item;
    let body = quote! {
        #site
        let __cache_key = #key_fn(&__CACHE_SITE, #key_expr);
        let __cache_body = async move {
            if let ::core::option::Option::Some(__ret) = ::core::option::Option::None::<#ret> {
                return __ret;
            }
            let __ret: #ret = #block;
            #[allow(unreachable_code)]
            __ret
        };
        #call
    };
    let doc = format!(
        "Drops the cached result of [`{0}`] for these arguments, in every process sharing the cache. \
         An error means not every process is guaranteed to have dropped it yet (see the crate \
         docs' invalidation errors).",
        sig.ident
    );
    quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }

        #[doc = #doc]
        #[allow(unused_variables, unused_mut, clippy::unused_async)]
        #vis #inv_sig {
            #site
            let __cache_key = #key_fn(&__CACHE_SITE, #key_expr);
            #krate::__private::invalidate(&__CACHE_SITE, __cache_key).await
        }
    }
}

/// The signature of the `_invalidate` companion: the function's arguments; the output of every
/// invalidation, `Result<(), Error>`.
fn invalidate_signature(sig: &syn::Signature, krate: &TokenStream) -> syn::Signature {
    let mut inv_sig = sig.clone();
    inv_sig.ident = format_ident!("{}_invalidate", sig.ident);
    inv_sig.output = syn::parse_quote!(-> ::core::result::Result<(), #krate::Error>);
    inv_sig.asyncness = Some(Default::default());
    inv_sig
}

/// What is emitted when the attribute has errors (as tokio-macros does): the errors, the
/// user's function unchanged, and a stand-in for its companion, so that no call of either
/// adds an error of its own ("cannot find function ...").
pub(crate) fn fallback(item: &ItemFn, companion: Option<syn::Signature>, ctx: Ctxt) -> TokenStream {
    let errors = ctx.into_compile_errors();
    let vis = &item.vis;
    let companion = companion.map(|sig| {
        quote! {
            #[allow(unused_variables, unused_mut, dead_code, clippy::unused_async)]
            #[doc(hidden)]
            #vis #sig {
                ::core::result::Result::Ok(())
            }
        }
    });
    quote! {
        #errors
        #item
        #companion
    }
}
