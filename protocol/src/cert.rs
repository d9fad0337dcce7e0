//! Report authorization, offline and serverless.
//!
//! 1. The positive user's node draws a one-time [`ReportSecretKey`] and shows a
//!    [`ReportRequest`] code carrying its public half.
//! 2. The issuer checks the test result out of band and signs a
//!    [`Certificate`] over that key, the network id, a validity period, the
//!    contact window and a token cap. The issuer never sees a token.
//! 3. The node signs its announcement chunks with the report key and attaches
//!    the certificate; every receiver verifies the chain offline.

use prost::Message;

use crate::announce::Disposition;
use crate::keys::{
    ED25519_PUBLIC_LEN, IssuerPublicKey, IssuerSecretKey, ReportPublicKey, SIGNATURE_LEN,
};
use crate::time::{Day, RETENTION_DAYS, UnixTime};
use crate::wire::{
    CertificateBodyMsg, CertificateMsg, DecodeError, ReportRequestMsg, check_version,
    decode_canonical, fixed, from_code, is_valid_network_id, to_code,
};

/// Version of request and certificate messages.
pub const CERT_VERSION: u32 = 2;
/// Text-code prefix of a report request.
pub const REQUEST_CODE_PREFIX: &str = "MTRQ1:";
/// Text-code prefix of a certificate.
pub const CERTIFICATE_CODE_PREFIX: &str = "MTCT1:";
/// Largest encoded report request.
pub const MAX_REQUEST_BYTES: usize = 128;
/// Largest encoded certificate (body + signature); real ones are ~200 bytes,
/// which keeps the text code under 350 characters (a version-10 QR code).
pub const MAX_CERTIFICATE_BYTES: usize = 320;
/// Domain prefix of the issuer's signature over a certificate body.
pub const CERTIFICATE_SIGNING_DOMAIN: &[u8] = b"meshtrace/v2/certificate";
/// Longest contact window a certificate may cover, in days (first and last
/// included): the retention window plus the day of the report.
pub const MAX_WINDOW_DAYS: u32 = RETENTION_DAYS + 1;
/// Longest validity period of a certificate, in seconds (30 days).
pub const MAX_VALIDITY_SECONDS: u64 = 30 * 86_400;
/// Largest token cap a certificate may grant (64 full chunks).
pub const MAX_TOKENS_PER_REPORT: u32 = 131_072;
/// Clock skew tolerated between issuer, reporter and receivers, in seconds.
pub const MAX_CLOCK_SKEW_SECONDS: u64 = 600;

/// A request to certify a one-time report key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportRequest {
    /// The deployment's network id.
    pub network_id: String,
    /// The one-time report public key to certify.
    pub report_key: ReportPublicKey,
}

impl ReportRequest {
    /// Canonical protobuf bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        ReportRequestMsg {
            version: CERT_VERSION,
            network_id: self.network_id.clone(),
            report_key: self.report_key.0.to_vec(),
        }
        .encode_to_vec()
    }

    /// Decodes canonical protobuf bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<ReportRequest, DecodeError> {
        const WHAT: &str = "report request";
        let m: ReportRequestMsg = decode_canonical(bytes, WHAT, MAX_REQUEST_BYTES)?;
        check_version(m.version, CERT_VERSION, WHAT)?;
        if !is_valid_network_id(&m.network_id) {
            return Err(DecodeError::BadNetworkId);
        }
        Ok(ReportRequest {
            network_id: m.network_id,
            report_key: ReportPublicKey(fixed(&m.report_key, WHAT, "report_key")?),
        })
    }

    /// The text code a person copies (`MTRQ1:` + base32).
    pub fn to_code(&self) -> String {
        to_code(REQUEST_CODE_PREFIX, &self.to_bytes())
    }

    /// Parses a text code.
    pub fn from_code(code: &str) -> Result<ReportRequest, DecodeError> {
        let bytes = from_code(
            REQUEST_CODE_PREFIX,
            "report request",
            code,
            MAX_REQUEST_BYTES,
        )?;
        ReportRequest::from_bytes(&bytes)
    }
}

/// What an issuer certifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateParams {
    /// The deployment's network id.
    pub network_id: String,
    /// The reporter's one-time key.
    pub report_key: ReportPublicKey,
    /// First second the certificate may be used to sign announcements.
    pub valid_from: UnixTime,
    /// Last second it may be used.
    pub valid_until: UnixTime,
    /// First day of contacts covered (infectious period start).
    pub window_first_day: Day,
    /// Last day of contacts covered.
    pub window_last_day: Day,
    /// Most tokens (padding included) the reporter may announce.
    pub max_tokens: u32,
}

/// Why a certificate is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// The bytes did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The issuer is not in the deployment's trusted list.
    #[error("certificate issuer {} is not trusted by this deployment", .0.to_hex())]
    UntrustedIssuer(IssuerPublicKey),
    /// The issuer's signature does not verify.
    #[error("certificate signature is invalid")]
    BadSignature,
    /// Issued for another network.
    #[error("certificate is for network \"{found}\", this node is on \"{expected}\"")]
    WrongNetwork {
        /// The local network id.
        expected: String,
        /// The certificate's network id.
        found: String,
    },
    /// Fields are inconsistent or out of bounds.
    #[error("certificate fields are invalid: {0}")]
    Invalid(&'static str),
    /// `now` is before `valid_from`.
    #[error("certificate is not valid before {0}")]
    NotYetValid(UnixTime),
    /// `now` is after `valid_until`.
    #[error("certificate expired at {0}")]
    Expired(UnixTime),
}

impl CertificateError {
    /// The stable error code of this refusal (docs/protocol.md §16). A
    /// certificate that did not decode has the code of its [`DecodeError`].
    pub fn code(&self) -> &'static str {
        match self {
            CertificateError::Decode(e) => e.code(),
            CertificateError::UntrustedIssuer(_) => "untrusted_issuer",
            CertificateError::BadSignature => "bad_certificate_signature",
            CertificateError::WrongNetwork { .. } => "wrong_network",
            CertificateError::Invalid(why) => match *why {
                "valid_until is before valid_from" => "validity_reversed",
                "validity period exceeds 30 days" => "validity_too_long",
                "contact window ends before it starts" => "window_reversed",
                "contact window is longer than the retention window" => "window_too_long",
                "token cap out of range" => "token_cap_out_of_range",
                "contact window ends after the certificate's validity" => "window_after_validity",
                // Every reason `check_params` gives is listed above (a unit
                // test reads this file for them).
                _ => "invalid_certificate",
            },
            CertificateError::NotYetValid(_) => "certificate_not_yet_valid",
            CertificateError::Expired(_) => "certificate_expired",
        }
    }

    /// Every certificate refusal is [`Disposition::Reject`].
    pub fn disposition(&self) -> Disposition {
        Disposition::Reject
    }
}

/// An issuer certificate over a one-time report key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    params: CertificateParams,
    issuer: IssuerPublicKey,
    signature: [u8; SIGNATURE_LEN],
    bytes: Vec<u8>,
}

fn check_params(p: &CertificateParams) -> Result<(), CertificateError> {
    if !is_valid_network_id(&p.network_id) {
        return Err(DecodeError::BadNetworkId.into());
    }
    if p.valid_until < p.valid_from {
        return Err(CertificateError::Invalid(
            "valid_until is before valid_from",
        ));
    }
    if p.valid_until.seconds_since(p.valid_from) > MAX_VALIDITY_SECONDS {
        return Err(CertificateError::Invalid("validity period exceeds 30 days"));
    }
    if p.window_last_day < p.window_first_day {
        return Err(CertificateError::Invalid(
            "contact window ends before it starts",
        ));
    }
    if p.window_last_day.0 - p.window_first_day.0 >= MAX_WINDOW_DAYS {
        return Err(CertificateError::Invalid(
            "contact window is longer than the retention window",
        ));
    }
    if p.max_tokens == 0 || p.max_tokens > MAX_TOKENS_PER_REPORT {
        return Err(CertificateError::Invalid("token cap out of range"));
    }
    if p.window_last_day > p.valid_until.plus(MAX_CLOCK_SKEW_SECONDS).day() {
        return Err(CertificateError::Invalid(
            "contact window ends after the certificate's validity",
        ));
    }
    Ok(())
}

impl Certificate {
    /// Signs a certificate. Fails when the parameters are out of bounds.
    pub fn issue(
        issuer: &IssuerSecretKey,
        params: CertificateParams,
    ) -> Result<Certificate, CertificateError> {
        check_params(&params)?;
        let body = CertificateBodyMsg {
            version: CERT_VERSION,
            network_id: params.network_id.clone(),
            issuer_key: issuer.public().0.to_vec(),
            report_key: params.report_key.0.to_vec(),
            valid_from: params.valid_from.0,
            valid_until: params.valid_until.0,
            window_first_day: params.window_first_day.0,
            window_last_day: params.window_last_day.0,
            max_tokens: params.max_tokens,
        }
        .encode_to_vec();
        let signature = issuer.sign(&signing_input(&body));
        let bytes = CertificateMsg {
            body,
            signature: signature.to_vec(),
        }
        .encode_to_vec();
        Ok(Certificate {
            params,
            issuer: issuer.public(),
            signature,
            bytes,
        })
    }

    /// Decodes a certificate and checks its own signature and field bounds
    /// (not trust, network or time: see [`Certificate::verify`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Certificate, CertificateError> {
        let (cert, signed) = Certificate::decode_unverified(bytes)?;
        if !cert.issuer.verify(&signed, &cert.signature) {
            return Err(CertificateError::BadSignature);
        }
        Ok(cert)
    }

    /// [`Certificate::from_bytes`] without the signature check: the decoded
    /// certificate and the bytes its issuer signed. Only for callers that
    /// check the signature themselves (batch verification).
    pub(crate) fn decode_unverified(
        bytes: &[u8],
    ) -> Result<(Certificate, Vec<u8>), CertificateError> {
        const WHAT: &str = "certificate";
        let m: CertificateMsg = decode_canonical(bytes, WHAT, MAX_CERTIFICATE_BYTES)?;
        let signature: [u8; SIGNATURE_LEN] = fixed(&m.signature, WHAT, "signature")?;
        let b: CertificateBodyMsg = decode_canonical(&m.body, WHAT, MAX_CERTIFICATE_BYTES)?;
        check_version(b.version, CERT_VERSION, WHAT)?;
        let issuer = IssuerPublicKey(fixed::<ED25519_PUBLIC_LEN>(
            &b.issuer_key,
            WHAT,
            "issuer_key",
        )?);
        let params = CertificateParams {
            network_id: b.network_id,
            report_key: ReportPublicKey(fixed(&b.report_key, WHAT, "report_key")?),
            valid_from: UnixTime(b.valid_from),
            valid_until: UnixTime(b.valid_until),
            window_first_day: Day(b.window_first_day),
            window_last_day: Day(b.window_last_day),
            max_tokens: b.max_tokens,
        };
        check_params(&params)?;
        Ok((
            Certificate {
                params,
                issuer,
                signature,
                bytes: bytes.to_vec(),
            },
            signing_input(&m.body),
        ))
    }

    /// Checks trust and network: the issuer is one of `trusted` and the
    /// certificate is for `network_id`.
    pub fn check_trust(
        &self,
        network_id: &str,
        trusted: &[IssuerPublicKey],
    ) -> Result<(), CertificateError> {
        if self.params.network_id != network_id {
            return Err(CertificateError::WrongNetwork {
                expected: network_id.to_owned(),
                found: self.params.network_id.clone(),
            });
        }
        if !trusted.contains(&self.issuer) {
            return Err(CertificateError::UntrustedIssuer(self.issuer));
        }
        Ok(())
    }

    /// Full check for using the certificate at `now`: trust, network and
    /// validity period (with [`MAX_CLOCK_SKEW_SECONDS`] of tolerance).
    pub fn verify(
        &self,
        network_id: &str,
        trusted: &[IssuerPublicKey],
        now: UnixTime,
    ) -> Result<(), CertificateError> {
        self.check_trust(network_id, trusted)?;
        self.check_validity_at(now)
    }

    /// Checks that `t` falls in the validity period (± skew).
    pub fn check_validity_at(&self, t: UnixTime) -> Result<(), CertificateError> {
        if t.plus(MAX_CLOCK_SKEW_SECONDS) < self.params.valid_from {
            return Err(CertificateError::NotYetValid(self.params.valid_from));
        }
        if t.minus(MAX_CLOCK_SKEW_SECONDS) > self.params.valid_until {
            return Err(CertificateError::Expired(self.params.valid_until));
        }
        Ok(())
    }

    /// The certified fields.
    pub fn params(&self) -> &CertificateParams {
        &self.params
    }

    /// The issuer that signed it.
    pub fn issuer(&self) -> IssuerPublicKey {
        self.issuer
    }

    /// The canonical encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The issuer's signature.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// The text code (`MTCT1:` + base32).
    pub fn to_code(&self) -> String {
        to_code(CERTIFICATE_CODE_PREFIX, &self.bytes)
    }

    /// Parses and checks a text code (as [`Certificate::from_bytes`]).
    pub fn from_code(code: &str) -> Result<Certificate, CertificateError> {
        let bytes = from_code(
            CERTIFICATE_CODE_PREFIX,
            "certificate",
            code,
            MAX_CERTIFICATE_BYTES,
        )?;
        Certificate::from_bytes(&bytes)
    }
}

fn signing_input(body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(CERTIFICATE_SIGNING_DOMAIN.len() + body.len());
    v.extend_from_slice(CERTIFICATE_SIGNING_DOMAIN);
    v.extend_from_slice(body);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::ReportSecretKey;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn params(report: ReportPublicKey) -> CertificateParams {
        CertificateParams {
            network_id: "campus".into(),
            report_key: report,
            valid_from: UnixTime(1_800_000_000),
            valid_until: UnixTime(1_800_000_000 + 3 * 86_400),
            window_first_day: UnixTime(1_800_000_000).day().minus(5),
            window_last_day: UnixTime(1_800_000_000).day(),
            max_tokens: 4096,
        }
    }

    #[test]
    fn request_code_round_trip() {
        let mut rng = ChaCha20Rng::seed_from_u64(20);
        let rk = ReportSecretKey::generate(&mut rng);
        let req = ReportRequest {
            network_id: "campus".into(),
            report_key: rk.public(),
        };
        let code = req.to_code();
        assert!(code.len() < 100, "request code is short: {}", code.len());
        assert_eq!(ReportRequest::from_code(&code), Ok(req));
    }

    #[test]
    fn certificate_round_trip_and_checks() {
        let mut rng = ChaCha20Rng::seed_from_u64(21);
        let issuer = IssuerSecretKey::generate(&mut rng);
        let rk = ReportSecretKey::generate(&mut rng);
        let p = params(rk.public());
        let cert = Certificate::issue(&issuer, p.clone()).unwrap();
        let code = cert.to_code();
        assert!(code.len() < 350);
        let back = Certificate::from_code(&code).unwrap();
        assert_eq!(back, cert);
        let trusted = [issuer.public()];
        assert_eq!(back.verify("campus", &trusted, p.valid_from), Ok(()));
        assert!(matches!(
            back.verify("other", &trusted, p.valid_from),
            Err(CertificateError::WrongNetwork { .. })
        ));
        let stranger = IssuerSecretKey::generate(&mut rng).public();
        assert!(matches!(
            back.verify("campus", &[stranger], p.valid_from),
            Err(CertificateError::UntrustedIssuer(_))
        ));
        assert!(matches!(
            back.verify(
                "campus",
                &trusted,
                p.valid_until.plus(MAX_CLOCK_SKEW_SECONDS + 1)
            ),
            Err(CertificateError::Expired(_))
        ));
        assert!(matches!(
            back.verify(
                "campus",
                &trusted,
                p.valid_from.minus(MAX_CLOCK_SKEW_SECONDS + 1)
            ),
            Err(CertificateError::NotYetValid(_))
        ));
    }

    #[test]
    fn refusals_read_plainly() {
        let mut rng = ChaCha20Rng::seed_from_u64(23);
        let issuer = IssuerSecretKey::generate(&mut rng);
        let rk = ReportSecretKey::generate(&mut rng);
        let p = params(rk.public());
        let cert = Certificate::issue(&issuer, p.clone()).unwrap();
        let stranger = IssuerSecretKey::generate(&mut rng).public();
        let untrusted = cert
            .verify("campus", &[stranger], p.valid_from)
            .unwrap_err()
            .to_string();
        assert_eq!(
            untrusted,
            format!(
                "certificate issuer {} is not trusted by this deployment",
                issuer.public().to_hex()
            )
        );
        let expired = cert
            .verify("campus", &[issuer.public()], p.valid_until.plus(86_400))
            .unwrap_err()
            .to_string();
        // valid_until is 1_800_259_200 s: 2027-01-18 08:00 UTC.
        assert_eq!(expired, "certificate expired at 2027-01-18 08:00 UTC");
        let early = cert
            .verify("campus", &[issuer.public()], p.valid_from.minus(86_400))
            .unwrap_err()
            .to_string();
        assert_eq!(
            early,
            "certificate is not valid before 2027-01-15 08:00 UTC"
        );
        let network = cert
            .verify("other", &[issuer.public()], p.valid_from)
            .unwrap_err()
            .to_string();
        assert_eq!(
            network,
            "certificate is for network \"campus\", this node is on \"other\""
        );
        let code = cert.to_code();
        for cut in [1, 7, 20] {
            let e = Certificate::from_code(&code[..code.len() - cut]).unwrap_err();
            assert_eq!(
                e.to_string(),
                "certificate code is incomplete: it seems cut off (copy the whole code)",
                "{cut} characters cut off"
            );
        }
    }

    #[test]
    fn tampered_certificate_fails_signature() {
        let mut rng = ChaCha20Rng::seed_from_u64(22);
        let issuer = IssuerSecretKey::generate(&mut rng);
        let rk = ReportSecretKey::generate(&mut rng);
        let cert = Certificate::issue(&issuer, params(rk.public())).unwrap();
        // Re-sign a stretched window with another key but keep the issuer id.
        let mut p = params(rk.public());
        p.max_tokens = 8192;
        let other = Certificate::issue(&IssuerSecretKey::generate(&mut rng), p).unwrap();
        let mut forged = CertificateMsg::decode(other.as_bytes()).unwrap();
        let mut body = CertificateBodyMsg::decode(&forged.body[..]).unwrap();
        body.issuer_key = issuer.public().0.to_vec();
        forged.body = body.encode_to_vec();
        assert_eq!(
            Certificate::from_bytes(&forged.encode_to_vec()),
            Err(CertificateError::BadSignature)
        );
        assert_ne!(cert.as_bytes(), other.as_bytes());
    }

    #[test]
    fn bad_params_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(23);
        let issuer = IssuerSecretKey::generate(&mut rng);
        let rk = ReportSecretKey::generate(&mut rng).public();
        let mut p = params(rk);
        p.window_first_day = p.window_last_day.minus(MAX_WINDOW_DAYS);
        assert!(Certificate::issue(&issuer, p).is_err());
        let mut p = params(rk);
        p.max_tokens = 0;
        assert!(Certificate::issue(&issuer, p).is_err());
        let mut p = params(rk);
        p.valid_until = p.valid_from.minus(1);
        assert!(Certificate::issue(&issuer, p).is_err());
        let mut p = params(rk);
        p.network_id = "Bad Net".into();
        assert!(Certificate::issue(&issuer, p).is_err());
    }

    #[test]
    fn wrong_version_length_and_network_are_typed_errors() {
        let mut rng = ChaCha20Rng::seed_from_u64(24);
        let rk = ReportSecretKey::generate(&mut rng).public();
        let msg = |version: u32, net: &str, key: Vec<u8>| {
            ReportRequestMsg {
                version,
                network_id: net.into(),
                report_key: key,
            }
            .encode_to_vec()
        };
        assert_eq!(
            ReportRequest::from_bytes(&msg(3, "campus", rk.0.to_vec())),
            Err(DecodeError::UnsupportedVersion {
                what: "report request",
                version: 3
            })
        );
        assert_eq!(
            ReportRequest::from_bytes(&msg(1, "campus", rk.0.to_vec())),
            Err(DecodeError::Version1 {
                what: "report request"
            })
        );
        assert!(matches!(
            ReportRequest::from_bytes(&msg(2, "campus", rk.0[..31].to_vec())),
            Err(DecodeError::WrongLength {
                expected: 32,
                got: 31,
                ..
            })
        ));
        assert_eq!(
            ReportRequest::from_bytes(&msg(2, "", rk.0.to_vec())),
            Err(DecodeError::BadNetworkId)
        );
        assert!(matches!(
            ReportRequest::from_bytes(&[0u8; MAX_REQUEST_BYTES + 1]),
            Err(DecodeError::TooLong { .. })
        ));

        let issuer = IssuerSecretKey::generate(&mut rng);
        let cert = Certificate::issue(&issuer, params(rk)).unwrap();
        let outer = CertificateMsg::decode(cert.as_bytes()).unwrap();
        let body = CertificateBodyMsg::decode(&outer.body[..]).unwrap();
        for (version, want) in [
            (
                3,
                DecodeError::UnsupportedVersion {
                    what: "certificate",
                    version: 3,
                },
            ),
            (
                1,
                DecodeError::Version1 {
                    what: "certificate",
                },
            ),
        ] {
            let mut body = body.clone();
            body.version = version;
            let body = body.encode_to_vec();
            let resigned = CertificateMsg {
                signature: issuer.sign(&signing_input(&body)).to_vec(),
                body,
            };
            assert_eq!(
                Certificate::from_bytes(&resigned.encode_to_vec()),
                Err(CertificateError::Decode(want))
            );
        }
        let short_sig = CertificateMsg {
            body: outer.body.clone(),
            signature: outer.signature[..63].to_vec(),
        };
        assert!(matches!(
            Certificate::from_bytes(&short_sig.encode_to_vec()),
            Err(CertificateError::Decode(DecodeError::WrongLength { .. }))
        ));
    }
}
