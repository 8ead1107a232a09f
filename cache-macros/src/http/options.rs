//! The `http(...)` options of `#[cached(http)]`: parsed and checked, every bad option recorded.

use proc_macro2::{TokenStream, TokenTree};
use syn::{LitInt, LitStr};

use crate::ctxt::{Ctxt, skip_option};

/// The parsed `http(...)` options.
#[derive(Default)]
pub(super) struct HttpOptions {
    pub(super) vary: Vec<LitStr>,
    /// `Some(true)` = private.
    pub(super) visibility: Option<bool>,
    pub(super) status_header: Option<LitStr>,
    pub(super) validate_only: bool,
    pub(super) allow_credentials: bool,
    pub(super) statuses: Vec<u16>,
    /// `max_age`, `s_maxage`, `stale_while_revalidate`, `stale_if_error` (seconds).
    pub(super) freshness: [Option<u64>; 4],
    pub(super) immutable: bool,
    /// `route = "/items/{id}"`: generates the typed `{fn}_invalidate(Path(..))`.
    pub(super) route: Option<LitStr>,
}

/// The client-freshness options, in the order of `HttpOptions::freshness`.
const FRESHNESS: [&str; 4] = [
    "max_age",
    "s_maxage",
    "stale_while_revalidate",
    "stale_if_error",
];

const KNOWN: &str = "vary(\"header\", ...), public, private, status_header = \"...\", validate_only, allow_credentials, statuses(200, ...), max_age = N, s_maxage = N, stale_while_revalidate = N, stale_if_error = N, immutable, route = \"/items/{id}\"";

/// The HTTP status codes `statuses(...)` takes.
const HTTP_STATUSES: std::ops::RangeInclusive<u16> = 100..=599;

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl HttpOptions {
    /// Parses the tokens inside `http(...)`, recording every bad option in `ctx`.
    pub(super) fn parse(tokens: TokenStream, ctx: &Ctxt) -> Self {
        let mut o = HttpOptions::default();
        // `vary("a", "b")` holds string literals, which `parse_nested_meta` cannot read: take
        // it out of the token stream first.
        let tokens = o.take_vary(tokens, ctx);
        let parser = syn::meta::parser(|meta| {
            let input = meta.input;
            if let Err(e) = o.option(meta) {
                ctx.syn_error(e);
                skip_option(input);
            }
            Ok(())
        });
        ctx.ok(syn::parse::Parser::parse2(parser, tokens));
        o
    }

    /// Parses one option.
    fn option(&mut self, meta: syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
        let path = &meta.path;
        if path.is_ident("vary") {
            Err(meta.error("`vary` takes a list of header names, e.g. `vary(\"accept-language\")`"))
        } else if path.is_ident("public") || path.is_ident("private") {
            if self.visibility.is_some() {
                return Err(meta.error("give one of `public` or `private`, not both"));
            }
            self.visibility = Some(path.is_ident("private"));
            Ok(())
        } else if path.is_ident("status_header") {
            let lit: LitStr = meta.value()?.parse()?;
            if !is_token(&lit.value()) {
                return Err(syn::Error::new_spanned(
                    &lit,
                    "`status_header` must be a header name, e.g. `status_header = \"X-Cache\"`",
                ));
            }
            self.status_header = Some(lit);
            Ok(())
        } else if let Some(i) = FRESHNESS.iter().position(|n| path.is_ident(n)) {
            let how = format!(
                "`{}` takes whole seconds, e.g. `{} = 30`",
                FRESHNESS[i], FRESHNESS[i]
            );
            let lit: LitInt = meta
                .value()?
                .parse()
                .map_err(|e| syn::Error::new(e.span(), &how))?;
            self.freshness[i] = Some(
                lit.base10_parse()
                    .map_err(|_| syn::Error::new_spanned(&lit, &how))?,
            );
            Ok(())
        } else if path.is_ident("route") {
            self.route = Some(meta.value()?.parse()?);
            Ok(())
        } else if path.is_ident("statuses") {
            self.statuses(&meta)
        } else if let Some(flag) = self.flag(path) {
            *flag = true;
            Ok(())
        } else {
            Err(meta.error(format!("unknown `http` option; expected one of: {KNOWN}")))
        }
    }

    /// The flag options (`immutable`, ...): the field `path` names.
    fn flag(&mut self, path: &syn::Path) -> Option<&mut bool> {
        if path.is_ident("validate_only") {
            Some(&mut self.validate_only)
        } else if path.is_ident("immutable") {
            Some(&mut self.immutable)
        } else if path.is_ident("allow_credentials") {
            Some(&mut self.allow_credentials)
        } else {
            None
        }
    }

    /// `statuses(200, 404)`.
    fn statuses(&mut self, meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
        let content;
        syn::parenthesized!(content in meta.input);
        let lits = content.parse_terminated(|s| s.parse::<LitInt>(), syn::Token![,])?;
        for lit in lits {
            let code: u16 = lit.base10_parse().unwrap_or(0);
            if !HTTP_STATUSES.contains(&code) {
                return Err(syn::Error::new_spanned(
                    &lit,
                    "`statuses(...)` takes HTTP status codes (100 to 599), e.g. `statuses(200, 404)`",
                ));
            }
            self.statuses.push(code);
        }
        Ok(())
    }

    /// Removes `vary(...)` from `tokens`, parsing its literals.
    fn take_vary(&mut self, tokens: TokenStream, ctx: &Ctxt) -> TokenStream {
        let mut out = Vec::new();
        let mut iter = tokens.into_iter().peekable();
        while let Some(tt) = iter.next() {
            if let TokenTree::Ident(ident) = &tt
                && ident == "vary"
                && let Some(TokenTree::Group(group)) = iter.peek()
            {
                let group = group.clone();
                iter.next();
                let lits = syn::parse::Parser::parse2(
                    syn::punctuated::Punctuated::<LitStr, syn::Token![,]>::parse_terminated,
                    group.stream(),
                )
                .map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        "`vary(...)` takes header names as strings, e.g. `vary(\"accept-language\")`",
                    )
                });
                for lit in ctx.ok(lits).into_iter().flatten() {
                    if is_token(&lit.value()) {
                        self.vary.push(lit);
                    } else {
                        ctx.error_spanned_by(
                            &lit,
                            "not a header name; `vary(...)` takes names such as \"accept-language\"",
                        );
                    }
                }
                // Drop the comma that followed, if any.
                if matches!(iter.peek(), Some(TokenTree::Punct(p)) if p.as_char() == ',') {
                    iter.next();
                }
                continue;
            }
            out.push(tt);
        }
        out.into_iter().collect()
    }
}
