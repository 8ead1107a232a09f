//! `timeout_ms` and `refresh_after` run the body in the background, after the caller has its
//! answer: such a body must own everything it uses. A borrowed argument (or `&self`) is
//! reported here, at the argument, with what to take instead, rather than as a lifetime error
//! deep in the expansion.

use syn::visit::Visit;
use syn::{FnArg, ItemFn, Type};

use crate::ctxt::Ctxt;
use crate::options::Options;

/// Records an error for each argument a detachable body could not own.
pub(crate) fn check_owned_arguments(item: &ItemFn, opts: &Options, ctx: &Ctxt) {
    let option = match (opts.timeout_ms, opts.refresh_after) {
        (Some(_), _) => "timeout_ms",
        (_, Some(_)) => "refresh_after",
        _ => return,
    };
    for arg in &item.sig.inputs {
        match arg {
            // `&self`, and `self: &Self` (whose reference is in the type).
            FnArg::Receiver(r) if r.reference.is_some() || borrows(&r.ty) => ctx.error_spanned_by(
                r,
                format!(
                    "`{option}` runs the body in the background after the caller has its answer, \
                     so it cannot borrow `self`: make this a function taking what it needs by \
                     value (e.g. an `Arc` clone of `self`), or remove `{option}`"
                ),
            ),
            FnArg::Typed(pt) if borrows(&pt.ty) => ctx.error_spanned_by(
                &pt.ty,
                format!(
                    "`{option}` runs the body in the background after the caller has its answer, \
                     so its arguments must be owned: take an owned type here (`String` for \
                     `&str`, `Vec<T>` for `&[T]`, `Arc<T>` for `&T`), or remove `{option}`"
                ),
            ),
            _ => {}
        }
    }
}

/// Whether `ty` holds a reference or a lifetime other than `'static`.
fn borrows(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            if r.lifetime.as_ref().is_none_or(|l| l.ident != "static") {
                self.0 = true;
            }
            self.visit_type(&r.elem);
        }
        fn visit_lifetime(&mut self, l: &'ast syn::Lifetime) {
            if l.ident != "static" {
                self.0 = true;
            }
        }
    }
    let mut finder = Finder(false);
    finder.visit_type(ty);
    finder.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_lifetimes_borrow_but_static_ones_do_not() {
        let ty = |s: &str| syn::parse_str::<Type>(s).unwrap();
        for borrowed in [
            "&str",
            "&'a [u8]",
            "Cow<'a, str>",
            "Vec<&u64>",
            "(u64, &String)",
        ] {
            assert!(borrows(&ty(borrowed)), "{borrowed}");
        }
        for owned in [
            "String",
            "&'static str",
            "Arc<Vec<u8>>",
            "Cow<'static, str>",
            "u64",
        ] {
            assert!(!borrows(&ty(owned)), "{owned}");
        }
    }
}
