//! Parsing of the attribute's options: `#[cached(expire = 60, namespace = "user", ...)]`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::meta::ParseNestedMeta;
use syn::{Expr, Ident, LitInt, LitStr};

use crate::ctxt::{Ctxt, skip_option};

/// The parsed options.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) expire: Option<u64>,
    pub(crate) namespace: Option<LitStr>,
    pub(crate) key: Option<Expr>,
    pub(crate) skip: Vec<Ident>,
    pub(crate) version: u32,
    pub(crate) cache_none: bool,
    /// `http` or `http(...)`: the raw tokens inside, for the handler expansion.
    pub(crate) http: Option<proc_macro2::TokenStream>,
    /// `stale = N` seconds (with the span for errors).
    pub(crate) stale: Option<(u64, proc_macro2::Span)>,
    /// `timeout_ms = N`.
    pub(crate) timeout_ms: Option<(u64, proc_macro2::Span)>,
    /// `refresh_after = N` seconds.
    pub(crate) refresh_after: Option<(u64, proc_macro2::Span)>,
    /// `crate = "path"` (or `crate = path`): where `cache_runtime` is, for crates that
    /// re-export it.
    pub(crate) krate: Option<syn::Path>,
}

const KNOWN: &str = "expire, namespace, key, skip, version, cache_none, http, stale, timeout_ms, \
                     refresh_after, crate";

/// Parses the attribute's options, recording every bad one in `ctx` and going on with the
/// next: one compile run shows them all.
pub(crate) fn parse(attr: TokenStream, ctx: &Ctxt) -> Options {
    let mut opts = Options::default();
    let parser = syn::meta::parser(|meta| {
        let input = meta.input;
        if let Err(e) = opts.parse_meta(meta) {
            ctx.syn_error(e);
            skip_option(input);
        }
        Ok(())
    });
    ctx.ok(syn::parse::Parser::parse2(parser, attr));
    opts
}

/// Options that users reach for by another name, and the one we have.
const ALIASES: &[(&str, &str)] = &[
    ("ttl", "`expire = 60` (seconds)"),
    ("expires", "`expire = 60` (seconds)"),
    ("expiry", "`expire = 60` (seconds)"),
    ("time_to_live", "`expire = 60` (seconds)"),
    ("prefix", "`namespace = \"...\"`"),
    ("name", "`namespace = \"...\"`"),
    ("ignore", "`skip(arg, ...)`"),
    ("exclude", "`skip(arg, ...)`"),
    ("convert", "`key = <expr>`"),
    ("key_fn", "`key = <expr>`"),
];

impl Options {
    pub(crate) fn parse_meta(&mut self, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        let path = &meta.path;
        if self.given(path) {
            return Err(meta.error("this option is given twice; keep one"));
        }
        if path.is_ident("expire") {
            self.expire = Some(expire(&meta)?);
        } else if path.is_ident("namespace") {
            self.namespace = Some(namespace(&meta)?);
        } else if path.is_ident("key") {
            self.key = Some(meta.value()?.parse()?);
        } else if path.is_ident("skip") {
            self.parse_skip(&meta)?;
        } else if path.is_ident("version") {
            const HOW: &str = "`version` takes a whole number, e.g. `version = 2`";
            let lit: LitInt = meta
                .value()?
                .parse()
                .map_err(|e| syn::Error::new(e.span(), HOW))?;
            self.version = lit
                .base10_parse()
                .map_err(|_| syn::Error::new_spanned(&lit, HOW))?;
        } else if path.is_ident("cache_none") {
            self.cache_none = true;
        } else if path.is_ident("stale") {
            self.stale = Some(positive(&meta, "stale", "seconds, e.g. `stale = 3600`")?);
        } else if path.is_ident("timeout_ms") {
            self.timeout_ms = Some(positive(
                &meta,
                "timeout_ms",
                "milliseconds, e.g. `timeout_ms = 200`",
            )?);
        } else if path.is_ident("refresh_after") {
            self.refresh_after = Some(positive(
                &meta,
                "refresh_after",
                "seconds below `expire`, e.g. `refresh_after = 45`",
            )?);
        } else if path.is_ident("crate") {
            self.krate = Some(crate_path(&meta)?);
        } else if path.is_ident("http") {
            if meta.input.peek(syn::token::Paren) {
                let content;
                syn::parenthesized!(content in meta.input);
                self.http = Some(content.parse()?);
            } else {
                self.http = Some(proc_macro2::TokenStream::new());
            }
        } else {
            return Err(unknown(&meta));
        }
        Ok(())
    }

    /// Whether the option `path` names was given already.
    fn given(&self, path: &syn::Path) -> bool {
        match path.get_ident().map(|i| i.to_string()).as_deref() {
            Some("expire") => self.expire.is_some(),
            Some("namespace") => self.namespace.is_some(),
            Some("key") => self.key.is_some(),
            Some("skip") => !self.skip.is_empty(),
            Some("version") => self.version != 0,
            Some("cache_none") => self.cache_none,
            Some("http") => self.http.is_some(),
            Some("stale") => self.stale.is_some(),
            Some("timeout_ms") => self.timeout_ms.is_some(),
            Some("refresh_after") => self.refresh_after.is_some(),
            Some("crate") => self.krate.is_some(),
            _ => false,
        }
    }

    /// `skip(arg, ...)`.
    fn parse_skip(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        meta.parse_nested_meta(|inner| {
            let ident = inner.path.get_ident().cloned().ok_or_else(|| {
                syn::Error::new_spanned(
                    &inner.path,
                    "`skip(...)` takes argument names, e.g. `skip(db, client)`",
                )
            })?;
            self.skip.push(ident);
            Ok(())
        })
    }
}

/// `expire = N`: whole seconds above 0.
fn expire(meta: &ParseNestedMeta<'_>) -> syn::Result<u64> {
    let lit: LitInt = meta.value()?.parse().map_err(|e| {
        syn::Error::new(e.span(), "`expire` takes whole seconds, e.g. `expire = 60`")
    })?;
    let secs: u64 = lit.base10_parse().map_err(|_| {
        syn::Error::new_spanned(&lit, "`expire` takes whole seconds, e.g. `expire = 60`")
    })?;
    if secs == 0 {
        return Err(syn::Error::new_spanned(
            &lit,
            "`expire = 0` would cache nothing; remove `expire` for no TTL, or give seconds > 0",
        ));
    }
    Ok(secs)
}

/// `namespace = "..."`: non-empty, no whitespace.
fn namespace(meta: &ParseNestedMeta<'_>) -> syn::Result<LitStr> {
    let lit: LitStr = meta.value()?.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            "`namespace` takes a string, e.g. `namespace = \"user\"`",
        )
    })?;
    if lit.value().is_empty() || lit.value().contains(char::is_whitespace) {
        return Err(syn::Error::new_spanned(
            &lit,
            "a namespace must be non-empty and contain no whitespace",
        ));
    }
    Ok(lit)
}

/// The error of an unknown option, naming ours when it is a known alias.
fn unknown(meta: &ParseNestedMeta<'_>) -> syn::Error {
    let name = meta
        .path
        .get_ident()
        .map(|i| i.to_string())
        .unwrap_or_else(|| "this".into());
    let hint = ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map(|(_, ours)| format!(": use {ours} instead"))
        .unwrap_or_default();
    meta.error(format!(
        "unknown #[cached] option `{name}`{hint}; the options are: {KNOWN}"
    ))
}

/// `crate = "path"` (as serde and tokio take it) or `crate = path`.
fn crate_path(meta: &ParseNestedMeta<'_>) -> syn::Result<syn::Path> {
    const HOW: &str = "`crate` takes the path through which this crate reaches cache_runtime, \
                       e.g. `crate = \"my_lib::cache_runtime\"`";
    let value = meta.value()?;
    if value.peek(LitStr) {
        let lit: LitStr = value.parse()?;
        lit.parse_with(syn::Path::parse_mod_style)
            .map_err(|_| syn::Error::new_spanned(&lit, HOW))
    } else {
        syn::Path::parse_mod_style(value).map_err(|e| syn::Error::new(e.span(), HOW))
    }
}

impl Options {
    /// The path of the runtime crate every emitted path goes through: `::cache_runtime`
    /// unless `crate = ...` says otherwise.
    pub(crate) fn krate(&self) -> TokenStream {
        match &self.krate {
            Some(path) => quote!(#path),
            None => quote!(::cache_runtime),
        }
    }
}

/// A whole number above 0 given as `name = N`.
fn positive(
    meta: &ParseNestedMeta<'_>,
    name: &str,
    what: &str,
) -> syn::Result<(u64, proc_macro2::Span)> {
    let how = format!("`{name}` takes whole {what}");
    let lit: LitInt = meta
        .value()?
        .parse()
        .map_err(|e| syn::Error::new(e.span(), &how))?;
    let n: u64 = lit
        .base10_parse()
        .map_err(|_| syn::Error::new_spanned(&lit, &how))?;
    if n == 0 {
        return Err(syn::Error::new_spanned(&lit, format!("{how}, above 0")));
    }
    Ok((n, lit.span()))
}

impl Options {
    /// Checks the resilience options against `expire`.
    pub(crate) fn check_resilience(&self) -> syn::Result<()> {
        let expire = self.expire;
        if let Some((_, span)) = self.stale
            && expire.is_none()
        {
            return Err(syn::Error::new(
                span,
                "`stale` keeps a value past its expiry, so it needs one: add `expire = N` \
                 (e.g. `expire = 60, stale = 3600`)",
            ));
        }
        if let Some((after, span)) = self.refresh_after {
            match expire {
                None => {
                    return Err(syn::Error::new(
                        span,
                        "`refresh_after` refreshes before expiry: it needs `expire = N` too",
                    ));
                }
                Some(expire) if after >= expire => {
                    return Err(syn::Error::new(
                        span,
                        format!(
                            "`refresh_after = {after}` must be below `expire = {expire}`: the \
                             refresh starts before the entry expires; {}",
                            match expire * 3 / 4 {
                                0 => "raise `expire`".to_owned(),
                                n => format!("lower it (e.g. `refresh_after = {n}`)"),
                            }
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some((_, span)) = self.timeout_ms
            && self.stale.is_none()
        {
            return Err(syn::Error::new(
                span,
                "`timeout_ms` answers with the stale value when the body is slow, and without \
                 one the caller waits anyway: add `stale = N` (seconds a value is kept past \
                 `expire`), or remove `timeout_ms`",
            ));
        }
        Ok(())
    }
}
