//! Certifying one report request: the one code path behind both
//! `meshtrace issuer certify` and the clinic's page.
//!
//! It checks what a person could get wrong — the code (typos, a cut copy,
//! another kind of code), the network, the contact window, the validity —
//! and signs nothing unless everything is right. Every refusal is a typed
//! [`CertifyError`]: the CLI prints its `Display` (English), the page says
//! it in the chosen language.

use meshtrace_node::protocol::{
    Certificate, CertificateError, CertificateParams, Day, DecodeError, IssuerSecretKey,
    MAX_TOKENS_PER_REPORT, MAX_WINDOW_DAYS, ReportRequest, UnixTime,
};

/// Fewest days a certificate may stay usable.
pub const MIN_VALID_DAYS: u32 = 1;
/// Most days a certificate may stay usable (the protocol's limit).
pub const MAX_VALID_DAYS: u32 = 30;
/// Days a certificate stays usable unless the issuer chooses otherwise.
pub const DEFAULT_VALID_DAYS: u32 = 3;
/// Default token cap of a certificate: 8 full chunks, enough for 14 days of
/// a busy user (about 1,000 encounters a day, 1–2 tokens each).
pub const DEFAULT_MAX_TOKENS: u32 = 16_384;
/// Longest request code read (characters); a real one is under 100.
pub const MAX_REQUEST_CODE_LEN: usize = 1024;

/// What the issuer decided: the request and the terms of the certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertifyOrder {
    /// The request code the person's node showed (`MTRQ1:…`); surrounding
    /// white space and line breaks inside it are ignored.
    pub request: String,
    /// When set, requests for any other network are refused.
    pub network: Option<String>,
    /// First day of the contact window.
    pub first_day: Day,
    /// Last day of the contact window.
    pub last_day: Day,
    /// Days the certificate stays usable.
    pub valid_days: u32,
    /// Most tokens (padding included) the report may carry.
    pub max_tokens: u32,
}

/// Why nothing was certified.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertifyError {
    /// Nothing was given.
    #[error("no request code was given")]
    Empty,
    /// A text far longer than any request code.
    #[error("the request code is too long to be one (over {MAX_REQUEST_CODE_LEN} characters)")]
    TooLong,
    /// A certificate code where the request code belongs.
    #[error("this is a certificate code (MTCT1:…), not a request code (MTRQ1:…)")]
    CertificateGiven,
    /// The code does not decode (typo, cut copy, not a request code).
    #[error("the request code: {0}")]
    BadCode(DecodeError),
    /// The request is for another network than the one the issuer serves.
    #[error("the request is for network {found:?}, not {expected:?}")]
    WrongNetwork {
        /// The request's network.
        found: String,
        /// The network the issuer certifies for.
        expected: String,
    },
    /// The window ends after today.
    #[error("the contact window ends in the future ({last})")]
    WindowInFuture {
        /// The window's last day.
        last: Day,
    },
    /// The window ends before it starts.
    #[error("the contact window starts ({first}) after it ends ({last})")]
    WindowReversed {
        /// First day.
        first: Day,
        /// Last day.
        last: Day,
    },
    /// The window is longer than the protocol allows.
    #[error("the contact window is {days} days long; at most {MAX_WINDOW_DAYS} days are allowed")]
    WindowTooLong {
        /// Its length in days, both ends included.
        days: u32,
    },
    /// The validity is out of range.
    #[error("--valid-days must be between {MIN_VALID_DAYS} and {MAX_VALID_DAYS} (got {0})")]
    ValidDays(u32),
    /// The token cap is out of range.
    #[error("--max-tokens must be between 1 and {MAX_TOKENS_PER_REPORT} (got {0})")]
    MaxTokens(u32),
    /// The protocol refused the parameters (a case the checks above do not
    /// know about).
    #[error("{0}")]
    Refused(CertificateError),
}

/// Reads a request code as a person pastes it: trims it and removes line
/// breaks and spaces a mail or chat program may have put inside.
pub fn clean_code(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Decodes and checks a request code (and its network when `network` is
/// set) without signing anything.
pub fn read_request(code: &str, network: Option<&str>) -> Result<ReportRequest, CertifyError> {
    if code.len() > MAX_REQUEST_CODE_LEN {
        return Err(CertifyError::TooLong);
    }
    let code = clean_code(code);
    if code.is_empty() {
        return Err(CertifyError::Empty);
    }
    if code
        .get(..meshtrace_node::protocol::CERTIFICATE_CODE_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(meshtrace_node::protocol::CERTIFICATE_CODE_PREFIX))
    {
        return Err(CertifyError::CertificateGiven);
    }
    let request = ReportRequest::from_code(&code).map_err(CertifyError::BadCode)?;
    if let Some(n) = network
        && n != request.network_id
    {
        return Err(CertifyError::WrongNetwork {
            found: request.network_id,
            expected: n.to_owned(),
        });
    }
    Ok(request)
}

/// Checks an order and signs its certificate at `now`.
pub fn certify(
    key: &IssuerSecretKey,
    order: &CertifyOrder,
    now: UnixTime,
) -> Result<Certificate, CertifyError> {
    let request = read_request(&order.request, order.network.as_deref())?;
    let today = now.day();
    let (first, last) = (order.first_day, order.last_day);
    if last > today {
        return Err(CertifyError::WindowInFuture { last });
    }
    if first > last {
        return Err(CertifyError::WindowReversed { first, last });
    }
    let days = last.0 - first.0 + 1;
    if days > MAX_WINDOW_DAYS {
        return Err(CertifyError::WindowTooLong { days });
    }
    if !(MIN_VALID_DAYS..=MAX_VALID_DAYS).contains(&order.valid_days) {
        return Err(CertifyError::ValidDays(order.valid_days));
    }
    if order.max_tokens == 0 || order.max_tokens > MAX_TOKENS_PER_REPORT {
        return Err(CertifyError::MaxTokens(order.max_tokens));
    }
    Certificate::issue(
        key,
        CertificateParams {
            network_id: request.network_id,
            report_key: request.report_key,
            valid_from: now,
            valid_until: now.plus(u64::from(order.valid_days) * 86_400),
            window_first_day: first,
            window_last_day: last,
            max_tokens: order.max_tokens,
        },
    )
    .map_err(CertifyError::Refused)
}

/// Parses a day written `YYYY-MM-DD` (as a date field sends it).
pub fn parse_day(s: &str) -> Option<Day> {
    let mut parts = s.trim().splitn(3, '-');
    let y = parts.next()?.parse::<i64>().ok()?;
    let m = parts.next()?.parse::<u32>().ok()?;
    let d = parts.next()?.parse::<u32>().ok()?;
    Day::from_civil(y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshtrace_node::protocol::ReportPublicKey;

    fn key() -> IssuerSecretKey {
        IssuerSecretKey::from_bytes(&meshtrace_node::protocol::Zeroizing::new([7; 32]))
    }

    fn request(network: &str) -> String {
        ReportRequest {
            network_id: network.into(),
            report_key: ReportPublicKey([3; 32]),
        }
        .to_code()
    }

    const NOW: UnixTime = UnixTime(1_796_000_000);

    fn order(code: &str) -> CertifyOrder {
        let today = NOW.day();
        CertifyOrder {
            request: code.into(),
            network: Some("town".into()),
            first_day: today.minus(4),
            last_day: today,
            valid_days: DEFAULT_VALID_DAYS,
            max_tokens: DEFAULT_MAX_TOKENS,
        }
    }

    #[test]
    fn a_good_order_gives_a_certificate_with_its_terms() {
        let code = request("town");
        // Pasted with a line break in the middle and spaces around.
        let (a, b) = code.split_at(20);
        let cert = certify(&key(), &order(&format!("  {a}\n{b} \n")), NOW).unwrap();
        // Read back as the person's node reads it.
        let cert = Certificate::from_code(&cert.to_code()).unwrap();
        cert.verify("town", &[key().public()], NOW.plus(60))
            .unwrap();
        let checked = cert.params();
        assert_eq!(checked.window_first_day, NOW.day().minus(4));
        assert_eq!(checked.window_last_day, NOW.day());
        assert_eq!(checked.valid_until, NOW.plus(3 * 86_400));
        assert_eq!(checked.max_tokens, DEFAULT_MAX_TOKENS);
    }

    #[test]
    fn every_mistake_is_named_and_nothing_is_signed() {
        let today = NOW.day();
        let good = request("town");
        type Expect = fn(&CertifyError) -> bool;
        let cases: Vec<(CertifyOrder, Expect)> = vec![
            (order(""), |e| *e == CertifyError::Empty),
            (order(" \n "), |e| *e == CertifyError::Empty),
            (order(&"A".repeat(5000)), |e| *e == CertifyError::TooLong),
            (order("hello"), |e| matches!(e, CertifyError::BadCode(_))),
            (order(&good[..good.len() - 5]), |e| {
                matches!(e, CertifyError::BadCode(_))
            }),
            (order("MTCT1:AAAA"), |e| {
                *e == CertifyError::CertificateGiven
            }),
            (order(&request("elsewhere")), |e| {
                matches!(e, CertifyError::WrongNetwork { found, expected }
                    if found == "elsewhere" && expected == "town")
            }),
            (
                CertifyOrder {
                    last_day: today.plus(1),
                    ..order(&good)
                },
                |e| matches!(e, CertifyError::WindowInFuture { .. }),
            ),
            (
                CertifyOrder {
                    first_day: today,
                    last_day: today.minus(1),
                    ..order(&good)
                },
                |e| matches!(e, CertifyError::WindowReversed { .. }),
            ),
            (
                CertifyOrder {
                    first_day: today.minus(MAX_WINDOW_DAYS),
                    ..order(&good)
                },
                |e| {
                    *e == CertifyError::WindowTooLong {
                        days: MAX_WINDOW_DAYS + 1,
                    }
                },
            ),
            (
                CertifyOrder {
                    valid_days: 0,
                    ..order(&good)
                },
                |e| *e == CertifyError::ValidDays(0),
            ),
            (
                CertifyOrder {
                    valid_days: 31,
                    ..order(&good)
                },
                |e| *e == CertifyError::ValidDays(31),
            ),
            (
                CertifyOrder {
                    max_tokens: MAX_TOKENS_PER_REPORT + 1,
                    ..order(&good)
                },
                |e| matches!(e, CertifyError::MaxTokens(_)),
            ),
        ];
        for (o, expected) in cases {
            let e = certify(&key(), &o, NOW).unwrap_err();
            assert!(expected(&e), "{:?} gave {e:?}", o.request);
            // One plain line, no Debug forms.
            let text = e.to_string();
            assert!(!text.contains('\n') && !text.contains("Day("), "{text}");
        }
        // The longest window allowed, and no network restriction.
        let o = CertifyOrder {
            first_day: today.minus(MAX_WINDOW_DAYS - 1),
            network: None,
            ..order(&request("elsewhere"))
        };
        assert!(certify(&key(), &o, NOW).is_ok());
    }

    #[test]
    fn dates_are_read_as_a_date_field_sends_them() {
        assert_eq!(parse_day("2026-12-01"), Day::from_civil(2026, 12, 1));
        assert_eq!(parse_day(" 2026-2-3 "), Day::from_civil(2026, 2, 3));
        for bad in [
            "",
            "2026-13-01",
            "2026-02-30",
            "01/12/2026",
            "2026-12",
            "x-y-z",
        ] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }
}
