//! The error codes of docs/protocol.md §16 against the code's error types:
//! every code in the table is one the code returns, with the same outcome,
//! and every refusal the code can return has a row in the table.

use std::collections::BTreeMap;

use crate::announce::{AnnouncementError, BuildError, Disposition};
use crate::cert::CertificateError;
use crate::encounter::SightingError;
use crate::frame::FrameError;
use crate::gcs::GcsError;
use crate::keys::IssuerPublicKey;
use crate::risk::RiskConfigError;
use crate::time::UnixTime;
use crate::token::TokenError;
use crate::wire::DecodeError;

const SPEC: &str = include_str!("../../docs/protocol.md");

/// `code → outcome` from the table of §16 ("Reject", "Ignore" or "Refuse").
fn table() -> BTreeMap<String, String> {
    let start = SPEC.find("\n## 16. ").expect("docs/protocol.md has a §16");
    let section = &SPEC[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut out = BTreeMap::new();
    for line in section.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `code` | Outcome | step | meaning |
        if cells.len() < 5 || !cells[1].starts_with('`') {
            continue;
        }
        let code = cells[1].trim_matches('`').to_owned();
        let outcome = cells[2].trim_matches('*').to_owned();
        assert!(
            out.insert(code.clone(), outcome).is_none(),
            "§16 lists {code} twice"
        );
    }
    out
}

/// The string literals passed to `Invalid(` in a source file.
fn invalid_reasons(source: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(i) = rest.find("Invalid(") {
        rest = &rest[i + "Invalid(".len()..];
        let arg = rest.trim_start();
        if let Some(lit) = arg.strip_prefix('"') {
            let end = lit.find('"').expect("closed literal");
            out.push(&lit[..end]);
        }
    }
    out
}

fn frame_errors() -> Vec<FrameError> {
    // A new variant breaks this match: give it a code and a row in §16.
    let all = vec![
        FrameError::Empty,
        FrameError::TooLong(252),
        FrameError::UnsupportedVersion(2),
        FrameError::UnknownKind(3),
        FrameError::WrongLength {
            kind: 0,
            expected: 33,
            got: 34,
        },
        FrameError::TruncatedAd,
        FrameError::AdTooLong(1651),
    ];
    for e in &all {
        match e {
            FrameError::Empty
            | FrameError::TooLong(_)
            | FrameError::UnsupportedVersion(_)
            | FrameError::UnknownKind(_)
            | FrameError::WrongLength { .. }
            | FrameError::TruncatedAd
            | FrameError::AdTooLong(_) => {}
        }
    }
    all
}

fn decode_errors() -> Vec<DecodeError> {
    let all = vec![
        DecodeError::TooLong {
            what: "w",
            len: 2,
            max: 1,
        },
        DecodeError::Malformed("w"),
        DecodeError::NonCanonical("w"),
        DecodeError::Version1 { what: "w" },
        DecodeError::UnsupportedVersion {
            what: "w",
            version: 2,
        },
        DecodeError::WrongLength {
            what: "w",
            field: "f",
            expected: 32,
            got: 31,
        },
        DecodeError::BadNetworkId,
        DecodeError::WrongPrefix("w"),
        DecodeError::BadBase32("w"),
        DecodeError::BadChecksum("w"),
        DecodeError::Truncated("w"),
    ];
    for e in &all {
        match e {
            DecodeError::TooLong { .. }
            | DecodeError::Malformed(_)
            | DecodeError::NonCanonical(_)
            | DecodeError::Version1 { .. }
            | DecodeError::UnsupportedVersion { .. }
            | DecodeError::WrongLength { .. }
            | DecodeError::BadNetworkId
            | DecodeError::WrongPrefix(_)
            | DecodeError::BadBase32(_)
            | DecodeError::BadChecksum(_)
            | DecodeError::Truncated(_) => {}
        }
    }
    all
}

fn certificate_errors() -> Vec<CertificateError> {
    let mut all = vec![
        CertificateError::UntrustedIssuer(IssuerPublicKey([7; 32])),
        CertificateError::BadSignature,
        CertificateError::WrongNetwork {
            expected: "a".into(),
            found: "b".into(),
        },
        CertificateError::NotYetValid(UnixTime(1)),
        CertificateError::Expired(UnixTime(1)),
    ];
    all.extend(
        invalid_reasons(include_str!("cert.rs"))
            .into_iter()
            .map(CertificateError::Invalid),
    );
    all.extend(decode_errors().into_iter().map(CertificateError::Decode));
    for e in &all {
        match e {
            CertificateError::Decode(_)
            | CertificateError::UntrustedIssuer(_)
            | CertificateError::BadSignature
            | CertificateError::WrongNetwork { .. }
            | CertificateError::Invalid(_)
            | CertificateError::NotYetValid(_)
            | CertificateError::Expired(_) => {}
        }
    }
    all
}

fn announcement_errors() -> Vec<AnnouncementError> {
    let mut all = vec![
        AnnouncementError::BadSignature,
        AnnouncementError::NetworkMismatch,
        AnnouncementError::FromTheFuture(UnixTime(1)),
        AnnouncementError::Expired(UnixTime(1)),
        AnnouncementError::Fingerprints(GcsError::Truncated),
        AnnouncementError::Fingerprints(GcsError::OutOfRange),
        AnnouncementError::Fingerprints(GcsError::NotAscending),
        AnnouncementError::Fingerprints(GcsError::Trailing),
    ];
    all.extend(
        invalid_reasons(include_str!("announce.rs"))
            .into_iter()
            // `verify_batch`'s placeholder for a result it never leaves unset.
            .filter(|r| *r != "not verified")
            .map(AnnouncementError::Invalid),
    );
    all.extend(decode_errors().into_iter().map(AnnouncementError::Decode));
    all.extend(
        certificate_errors()
            .into_iter()
            .map(AnnouncementError::Certificate),
    );
    for e in &all {
        match e {
            AnnouncementError::Decode(_)
            | AnnouncementError::Certificate(_)
            | AnnouncementError::BadSignature
            | AnnouncementError::NetworkMismatch
            | AnnouncementError::Invalid(_)
            | AnnouncementError::FromTheFuture(_)
            | AnnouncementError::Fingerprints(
                GcsError::Truncated
                | GcsError::OutOfRange
                | GcsError::NotAscending
                | GcsError::Trailing,
            )
            | AnnouncementError::Expired(_) => {}
        }
    }
    all
}

/// Every refusal the code can return: `(code, outcome)`.
fn code_refusals() -> Vec<(&'static str, &'static str)> {
    fn outcome(d: Disposition) -> &'static str {
        match d {
            Disposition::Reject => "Reject",
            Disposition::Ignore => "Ignore",
        }
    }
    let mut out = Vec::new();
    out.extend(
        frame_errors()
            .iter()
            .map(|e| (e.code(), outcome(e.disposition()))),
    );
    for e in [TokenError::NonContributory, TokenError::OwnId] {
        match e {
            TokenError::NonContributory | TokenError::OwnId => {}
        }
        out.push((e.code(), outcome(e.disposition())));
    }
    for e in [SightingError::NoActiveKey, SightingError::NoToken] {
        match e {
            SightingError::NoActiveKey | SightingError::NoToken => {}
        }
        out.push((e.code(), outcome(e.disposition())));
    }
    out.extend(
        decode_errors()
            .iter()
            .map(|e| (e.code(), outcome(e.disposition()))),
    );
    out.extend(
        certificate_errors()
            .iter()
            .map(|e| (e.code(), outcome(e.disposition()))),
    );
    out.extend(
        announcement_errors()
            .iter()
            .map(|e| (e.code(), outcome(e.disposition()))),
    );
    // A risk configuration is local too.
    for e in [
        RiskConfigError::BucketCount,
        RiskConfigError::BucketOrder,
        RiskConfigError::Weight(2.0),
        RiskConfigError::Threshold,
        RiskConfigError::MinContact,
        RiskConfigError::SessionGap,
        RiskConfigError::Calibration("x"),
    ] {
        match e {
            RiskConfigError::BucketCount
            | RiskConfigError::BucketOrder
            | RiskConfigError::Weight(_)
            | RiskConfigError::Threshold
            | RiskConfigError::MinContact
            | RiskConfigError::SessionGap
            | RiskConfigError::Calibration(_) => {}
        }
        out.push((e.code(), "Refuse"));
    }
    // Building a report is local: nothing is received, nothing is sent.
    for e in [
        BuildError::WrongReportKey,
        BuildError::TooManyTokens { tokens: 2, max: 1 },
    ] {
        match e {
            BuildError::WrongReportKey
            | BuildError::TooManyTokens { .. }
            | BuildError::Certificate(_) => {}
        }
        out.push((e.code(), "Refuse"));
    }
    out
}

#[test]
fn every_code_in_the_table_is_returned_by_the_code_and_vice_versa() {
    let table = table();
    assert!(table.len() >= 40, "§16 lists {} codes", table.len());
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (code, outcome) in code_refusals() {
        let Some(want) = table.get(code) else {
            panic!("the code returns {code}, which §16 does not list");
        };
        assert_eq!(want, outcome, "outcome of {code}");
        if let Some(prev) = seen.insert(code, outcome) {
            assert_eq!(
                prev, outcome,
                "{code} has one outcome wherever it is raised"
            );
        }
    }
    for code in table.keys() {
        assert!(
            seen.contains_key(code.as_str()),
            "§16 lists {code}, which no error returns"
        );
    }
}

#[test]
fn codes_are_snake_case() {
    for code in table().keys() {
        assert!(
            !code.is_empty()
                && code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{code}"
        );
    }
}

#[test]
fn only_an_expired_announcement_is_ignored_on_the_mesh() {
    let ignored: Vec<&str> = announcement_errors()
        .iter()
        .filter(|e| e.disposition() == Disposition::Ignore)
        .map(AnnouncementError::code)
        .collect();
    assert_eq!(ignored, ["announcement_expired"]);
}
