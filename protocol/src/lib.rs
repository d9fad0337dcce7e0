//! # meshtrace-protocol
//!
//! The pure core of meshtrace, a serverless contact-tracing mesh. This crate
//! does no I/O: it reads no clock (every function takes `now`), draws no OS
//! randomness (callers pass a `CryptoRng`), and touches no file or socket.
//! `docs/protocol.md` in the repository is the byte-level specification and
//! points to the test vectors in `protocol/tests/vectors/`.
//!
//! The flow:
//!
//! 1. [`KeySchedule`] draws a fresh X25519 key per 15-minute [`Epoch`]; its
//!    public half is the [`RotatingId`] broadcast in a BLE [`Frame`].
//! 2. Heard frames become [`Sighting`]s (ID, RSSI, time); the
//!    [`EncounterTracker`] aggregates them into [`Encounter`]s holding the
//!    receiver's received levels and [`EncounterToken`]s that only the two
//!    devices in contact can compute ([`derive_token`]).
//! 3. A positive user's node shows a [`ReportRequest`] code; an issuer signs a
//!    [`Certificate`]; the node publishes padded, signed chunks built by
//!    [`build_announcements`], which carry its calibrated TX power.
//! 4. Receivers obtain a [`VerifiedAnnouncement`] only through
//!    [`VerifiedAnnouncement::verify`], then match it against their
//!    [`TokenIndex`] with the [`ExposureLedger`], scored by [`RiskConfig`]
//!    at the attenuations the report's TX power gives their levels.
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod announce;
mod cert;
mod encounter;
mod frame;
mod gcs;
mod keys;
mod matching;
#[cfg(test)]
mod refusal_codes;
mod risk;
mod time;
mod token;
mod wire;

pub use announce::{
    ANNOUNCEMENT_SIGNING_DOMAIN, ANNOUNCEMENT_VERSION, AnnouncementError, AnnouncementId,
    BuildError, Disposition, EncodedAnnouncement, MAX_ANNOUNCEMENT_BYTES, MAX_CHUNKS, ReportPlan,
    SINGLE_CHUNK_BUCKETS, TOKENS_PER_FULL_CHUNK, VerifiedAnnouncement, VerifyContext,
    build_announcements, expiry_of, max_real_tokens, padded_layout, plan_report,
};
pub use cert::{
    CERT_VERSION, CERTIFICATE_CODE_PREFIX, CERTIFICATE_SIGNING_DOMAIN, Certificate,
    CertificateError, CertificateParams, MAX_CERTIFICATE_BYTES, MAX_CLOCK_SKEW_SECONDS,
    MAX_REQUEST_BYTES, MAX_TOKENS_PER_REPORT, MAX_VALIDITY_SECONDS, MAX_WINDOW_DAYS,
    REQUEST_CODE_PREFIX, ReportRequest,
};
pub use encounter::{
    ENCOUNTER_IDLE_SECONDS, Encounter, EncounterTracker, MAX_ATTENUATION_DB,
    MAX_ENCOUNTER_SPAN_SECONDS, MAX_LEVEL_DB, MAX_OPEN_ENCOUNTERS, MAX_RECEPTIONS_PER_WINDOW,
    MAX_SCAN_CREDIT_SECONDS, MAX_SIGHTING_GAP_SECONDS, RSSI_UNKNOWN, SCAN_WINDOW_SLACK_SECONDS,
    ScanWindow, Sighting, SightingError, attenuation_db, received_level_db,
};
pub use frame::{
    AD_FLAGS_VALUE, AD_TYPE_FLAGS, AD_TYPE_SERVICE_DATA16, AD_TYPE_UUID16_COMPLETE, Decoded,
    EXTENDED_SERVICE_DATA_LEN, FRAME_VERSION, Frame, FrameError, HALF_ID_LEN, HALF_MAX_AGE_SECONDS,
    HALF_TAG_DOMAIN, HALF_TAG_LEN, Half, HalfPart, HalfReassembler, LEGACY_ADVERTISING_DATA_LEN,
    LEGACY_HALF_SERVICE_DATA_LEN, MAX_ADVERTISING_DATA_LEN, MAX_PENDING_HALVES,
    MAX_SERVICE_DATA_LEN, ReassemblyStats, SERVICE_UUID16, advertising_data, decode_service_data,
    find_service_data, half_tag,
};
pub use gcs::GcsError;
pub use keys::{
    ED25519_PUBLIC_LEN, EpochKey, IssuerPublicKey, IssuerSecretKey, KeySchedule,
    MAX_SCHEDULED_KEYS, ROTATING_ID_LEN, ROTATION_GRACE_SECONDS, ReportPublicKey, ReportSecretKey,
    RotatingId, Rotation, SIGHTING_KEY_WINDOW_SECONDS, SIGNATURE_LEN,
};
pub use matching::{
    EncounterRef, Exposure, ExposureLedger, MAX_INDEX_DIRECTORY_BITS, MAX_SAMPLING_SHIFT,
    MatchOutcome, REPORT_ASSUMED_PEER_TX_POWER_DBM, REPORT_ASYMMETRY_MARGIN_DB,
    REPORT_MAX_ATTENUATION_DB, REPORT_SAMPLE_ABOVE_DB, REPORT_TARGET_ENTRIES, ReportTokens,
    TokenIndex, assumed_peer_tx_power, estimated_peer_attenuation_db, is_interior,
    kept_by_sampling, match_announcement, select_report_tokens,
};
pub use risk::{
    AttenuationBucket, CalibratedParams, ContactEstimate, DEFAULT_ATTENUATION_AT_1M_DB,
    DEFAULT_BODY_LOSS_DB, DEFAULT_BUCKETS, DEFAULT_CALIBRATED_SESSION_GAP_SECONDS,
    DEFAULT_CLOSE_DISTANCE_M, DEFAULT_CONTACT_SIGMA_DB, DEFAULT_HIGH_RISK_MINUTES,
    DEFAULT_MIN_CONFIDENCE, DEFAULT_MIN_CONTACT_MINUTES, DEFAULT_PATH_LOSS_EXPONENT,
    DEFAULT_RECEPTION_SIGMA_DB, DEFAULT_SESSION_GAP_SECONDS, DayRisk, MAX_RISK_BUCKETS,
    MAX_SESSION_GAP_SECONDS, MAX_SIGMA_DB, PartEstimate, RiskConfig, RiskConfigBuilder,
    RiskConfigError, RiskModel, normal_cdf,
};
pub use time::{DAY_SECONDS, Day, EPOCH_SECONDS, EPOCHS_PER_DAY, Epoch, RETENTION_DAYS, UnixTime};
pub use token::{
    EncounterToken, FINGERPRINT_BITS, MAX_TOKENS_PER_ENCOUNTER, TOKEN_KDF_INFO, TOKEN_KDF_SALT,
    TOKEN_LEN, TokenError, derive_token, token_fingerprint, tokens_for_sighting, tokens_from_bytes,
};
pub use wire::{
    CODE_CHECKSUM_DOMAIN, CODE_CHECKSUM_LEN, DecodeError, MAX_NETWORK_ID_LEN, is_valid_network_id,
};

#[cfg(feature = "test-utils")]
pub use announce::build_announcements_unchecked;

/// Re-export of the zeroizing wrapper used for secret bytes.
pub use zeroize::Zeroizing;
