//! The Fluent files: both parse cleanly, every message exists in both
//! languages with the same variables, and every message the code asks for
//! exists.

use std::collections::{BTreeMap, BTreeSet};

use fluent_syntax::ast;
use meshtrace_ui::i18n::{EN_FTL, VI_FTL};

/// Message id → the variables its value and attributes use.
fn messages(name: &str, text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let res = fluent_syntax::parser::parse(text)
        .unwrap_or_else(|(_, errors)| panic!("{name} does not parse: {errors:?}"));
    let mut out = BTreeMap::new();
    for entry in res.body {
        match entry {
            ast::Entry::Message(m) => {
                let mut vars = BTreeSet::new();
                if let Some(v) = &m.value {
                    pattern_vars(v, &mut vars);
                }
                assert!(
                    out.insert(m.id.name.to_owned(), vars).is_none(),
                    "{name}: {} is defined twice",
                    m.id.name
                );
            }
            ast::Entry::Junk { content } => panic!("{name}: junk {content:?}"),
            _ => {}
        }
    }
    out
}

fn pattern_vars(p: &ast::Pattern<&str>, out: &mut BTreeSet<String>) {
    for el in &p.elements {
        if let ast::PatternElement::Placeable { expression } = el {
            expr_vars(expression, out);
        }
    }
}

fn expr_vars(e: &ast::Expression<&str>, out: &mut BTreeSet<String>) {
    match e {
        ast::Expression::Inline(i) => inline_vars(i, out),
        ast::Expression::Select { selector, variants } => {
            inline_vars(selector, out);
            for v in variants {
                pattern_vars(&v.value, out);
            }
        }
    }
}

fn inline_vars(i: &ast::InlineExpression<&str>, out: &mut BTreeSet<String>) {
    match i {
        ast::InlineExpression::VariableReference { id } => {
            out.insert(id.name.to_owned());
        }
        ast::InlineExpression::Placeable { expression } => expr_vars(expression, out),
        _ => {}
    }
}

#[test]
fn every_message_exists_in_english_and_vietnamese_with_the_same_variables() {
    let en = messages("en.ftl", EN_FTL);
    let vi = messages("vi.ftl", VI_FTL);
    let missing_vi: Vec<_> = en.keys().filter(|k| !vi.contains_key(*k)).collect();
    let missing_en: Vec<_> = vi.keys().filter(|k| !en.contains_key(*k)).collect();
    assert!(missing_vi.is_empty(), "missing in vi.ftl: {missing_vi:?}");
    assert!(missing_en.is_empty(), "missing in en.ftl: {missing_en:?}");
    for (id, vars) in &en {
        assert_eq!(vars, &vi[id], "{id}: the variables differ");
    }
    assert!(en.len() > 100, "{}", en.len());
}

#[test]
fn vietnamese_is_written_with_its_diacritics() {
    let vi = VI_FTL;
    for phrase in [
        "Bạn đã tiếp xúc gần với người nhiễm bệnh",
        "khoảng { $minutes } phút trong phạm vi 2 mét vào { $date }",
        "ngày { $day } tháng { $month }",
    ] {
        assert!(vi.contains(phrase), "{phrase}");
    }
}

/// Every message id the code asks for (`t("…")`, `args("…"`, the
/// navigation table) exists in both files.
#[test]
fn every_message_the_code_uses_exists() {
    let en = messages("en.ftl", EN_FTL);
    let vi = messages("vi.ftl", VI_FTL);
    let mut used = BTreeSet::new();
    let dirs = [
        concat!(env!("CARGO_MANIFEST_DIR"), "/src"),
        concat!(env!("CARGO_MANIFEST_DIR"), "/../cli/src"),
    ];
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for opener in [".t(\"", ".args(\n", ".args(\"", "\", \"nav-"] {
                let mut rest = text.as_str();
                while let Some(i) = rest.find(opener) {
                    rest = &rest[i + opener.len()..];
                    let s = rest.trim_start().trim_start_matches('"');
                    let id: String = s
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .collect();
                    let id = if opener == "\", \"nav-" {
                        format!("nav-{id}")
                    } else {
                        id
                    };
                    if id.contains('-') {
                        used.insert(id);
                    }
                }
            }
        }
    }
    assert!(used.len() > 50, "{used:?}");
    for id in &used {
        assert!(en.contains_key(id), "{id} is used but not in en.ftl");
        assert!(vi.contains_key(id), "{id} is used but not in vi.ftl");
    }
}
