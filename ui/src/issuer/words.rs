//! The clinic page's own words (`issuer/en.ftl`, `issuer/vi.ftl`), through
//! the same Fluent library and language choice as the node's page; the
//! words both pages share (dates, refusals) come from [`Tr`] itself.

use std::borrow::Cow;
use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};

use crate::i18n::{Lang, Tr};

/// The clinic page's English messages.
pub const ISSUER_EN_FTL: &str = include_str!("en.ftl");
/// The clinic page's Vietnamese messages.
pub const ISSUER_VI_FTL: &str = include_str!("vi.ftl");

fn ftl(lang: Lang) -> &'static str {
    match lang {
        Lang::En => ISSUER_EN_FTL,
        Lang::Vi => ISSUER_VI_FTL,
    }
}

fn bundle(lang: Lang) -> FluentBundle<FluentResource> {
    let id: unic_langid::LanguageIdentifier = lang
        .code()
        .parse()
        .unwrap_or_else(|_| unic_langid::LanguageIdentifier::default());
    let mut b = FluentBundle::new_concurrent(vec![id]);
    b.set_use_isolating(false);
    // A syntax error in a shipped file is a bug the tests catch; the
    // messages that did parse are still used.
    let res = FluentResource::try_new(ftl(lang).to_owned()).unwrap_or_else(|(res, _)| res);
    let _ = b.add_resource(res);
    b
}

fn bundles() -> &'static [FluentBundle<FluentResource>; 2] {
    static B: OnceLock<[FluentBundle<FluentResource>; 2]> = OnceLock::new();
    B.get_or_init(|| [bundle(Lang::En), bundle(Lang::Vi)])
}

/// Clinic message `id` in `tr`'s language, with named arguments. A missing
/// message (a bug: a test checks every id used exists) shows its id.
pub fn w(tr: Tr, id: &str, args: &[(&str, FluentValue<'_>)]) -> String {
    let b = match tr.lang() {
        Lang::En => &bundles()[0],
        Lang::Vi => &bundles()[1],
    };
    let Some(pattern) = b.get_message(id).and_then(|m| m.value()) else {
        tracing::error!(id, lang = tr.lang().code(), "missing message");
        return id.to_owned();
    };
    let mut fa = FluentArgs::new();
    for (k, v) in args {
        fa.set(*k, v.clone());
    }
    let mut errors = Vec::new();
    let text: Cow<'_, str> = b.format_pattern(pattern, Some(&fa), &mut errors);
    if !errors.is_empty() {
        tracing::error!(id, lang = tr.lang().code(), "message arguments missing");
    }
    text.into_owned()
}

/// Clinic message `id` without arguments.
pub fn t(tr: Tr, id: &str) -> String {
    w(tr, id, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluent_syntax::ast::{Entry, Expression, InlineExpression, PatternElement};

    /// Message ids and, for each, its variables, in file order.
    fn messages(text: &str) -> Vec<(String, Vec<String>)> {
        let res = fluent_syntax::parser::parse(text).expect("the file parses without errors");
        let mut out = Vec::new();
        for e in res.body {
            if let Entry::Message(m) = e {
                let mut vars = Vec::new();
                if let Some(p) = m.value {
                    for el in p.elements {
                        if let PatternElement::Placeable {
                            expression:
                                Expression::Inline(InlineExpression::VariableReference { id }),
                        } = el
                        {
                            vars.push(id.name.to_owned());
                        }
                    }
                }
                vars.sort();
                out.push((m.id.name.to_owned(), vars));
            }
        }
        out
    }

    #[test]
    fn both_languages_have_the_same_messages_with_the_same_arguments() {
        let en = messages(ISSUER_EN_FTL);
        let vi = messages(ISSUER_VI_FTL);
        assert!(en.len() > 20, "{} messages", en.len());
        assert_eq!(
            en.iter().map(|m| &m.0).collect::<Vec<_>>(),
            vi.iter().map(|m| &m.0).collect::<Vec<_>>(),
            "the same ids in the same order"
        );
        for (e, v) in en.iter().zip(&vi) {
            assert_eq!(e.1, v.1, "arguments of {}", e.0);
        }
    }

    #[test]
    fn every_message_the_page_uses_exists_and_vietnamese_is_written_with_diacritics() {
        let source = concat!(include_str!("page.rs"), include_str!("mod.rs"));
        let ids: std::collections::BTreeSet<&str> = source
            .split('"')
            .filter(|s| s.starts_with("issuer-") && !s.contains(' '))
            .collect();
        assert!(ids.len() > 20, "{ids:?}");
        for lang in Lang::ALL {
            for id in &ids {
                assert!(
                    bundles()[lang as usize].has_message(id),
                    "{id} missing in {}",
                    lang.code()
                );
            }
        }
        let tr = Tr(Lang::Vi);
        assert_eq!(t(tr, "issuer-submit"), "Xác nhận");
        assert!(t(tr, "issuer-title").contains("dương tính"));
        let net = w(
            tr,
            "issuer-err-network",
            &[("found", "b".into()), ("expected", "a".into())],
        );
        assert!(net.contains("“b”") && net.contains("“a”"), "{net}");
        assert_eq!(t(Tr(Lang::En), "issuer-nope"), "issuer-nope");
    }
}
