//! Report requests waiting for a certificate: made, kept sealed in the
//! store, and taken when the certificate comes back. One path for the
//! running node and for `meshtrace report request` on a stopped node.

use meshtrace_protocol::{ReportRequest, ReportSecretKey, UnixTime, Zeroizing};

use super::{
    MAX_PENDING_REPORT_REQUESTS, META_PENDING_REPORTS, META_REPORT_KEY, NewReportRequest,
    NodeError, REPORT_REQUEST_LIFETIME_SECONDS,
};
use crate::store::{ContactStore, Store};

/// One stored pending request: made at, usable until, secret key.
pub(super) struct PendingReport {
    pub(super) made_at: UnixTime,
    pub(super) expires_at: UnixTime,
    pub(super) key: Zeroizing<[u8; 32]>,
}

/// Bytes of one pending request in [`META_PENDING_REPORTS`].
const PENDING_RECORD_BYTES: usize = 8 + 8 + 32;

/// The pending requests of `store` that have not expired at `now`, oldest
/// first (with the key of earlier versions, if any, as the oldest).
pub(super) fn pending_reports<S: Store>(
    store: &ContactStore<S>,
    now: UnixTime,
) -> Result<Vec<PendingReport>, NodeError> {
    let mut out = Vec::new();
    if let Some(old) = store.meta(META_REPORT_KEY)?
        && let Ok(key) = <[u8; 32]>::try_from(&old[..])
    {
        out.push(PendingReport {
            made_at: now,
            expires_at: now.plus(REPORT_REQUEST_LIFETIME_SECONDS),
            key: Zeroizing::new(key),
        });
    }
    if let Some(bytes) = store.meta(META_PENDING_REPORTS)? {
        for rec in bytes.chunks_exact(PENDING_RECORD_BYTES) {
            let (made, rest) = rec.split_at(8);
            let (until, key) = rest.split_at(8);
            let (Ok(made), Ok(until), Ok(key)) = (
                <[u8; 8]>::try_from(made),
                <[u8; 8]>::try_from(until),
                <[u8; 32]>::try_from(key),
            ) else {
                continue;
            };
            out.push(PendingReport {
                made_at: UnixTime(u64::from_le_bytes(made)),
                expires_at: UnixTime(u64::from_le_bytes(until)),
                key: Zeroizing::new(key),
            });
        }
    }
    out.retain(|p| p.expires_at > now);
    out.sort_by_key(|p| p.made_at);
    Ok(out)
}

/// Stores `pending` (not flushed) in place of the previous list.
pub(super) fn save_pending_reports<S: Store>(
    store: &mut ContactStore<S>,
    pending: &[PendingReport],
) -> Result<(), NodeError> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(pending.len() * PENDING_RECORD_BYTES));
    for p in pending {
        bytes.extend_from_slice(&p.made_at.0.to_le_bytes());
        bytes.extend_from_slice(&p.expires_at.0.to_le_bytes());
        bytes.extend_from_slice(p.key.as_ref());
    }
    if bytes.is_empty() {
        store.remove_meta(META_PENDING_REPORTS)?;
    } else {
        store.set_meta(META_PENDING_REPORTS, &bytes)?;
    }
    if store.meta(META_REPORT_KEY)?.is_some() {
        store.remove_meta(META_REPORT_KEY)?;
    }
    Ok(())
}

/// Makes a one-time report key, keeps it sealed in `store` (flushed) next
/// to the other pending requests, and returns the request code. At most
/// [`MAX_PENDING_REPORT_REQUESTS`] are kept; a new one beyond that replaces
/// the oldest. The running node and `meshtrace report request` on a stopped
/// node both come here.
pub fn create_report_request<S, R>(
    store: &mut ContactStore<S>,
    network_id: &str,
    now: UnixTime,
    rng: &mut R,
) -> Result<NewReportRequest, NodeError>
where
    S: Store,
    R: rand_core::CryptoRng + ?Sized,
{
    let mut pending = pending_reports(store, now)?;
    let mut replaced_made_at = None;
    while pending.len() >= MAX_PENDING_REPORT_REQUESTS {
        replaced_made_at = Some(pending.remove(0).made_at);
    }
    let key = ReportSecretKey::generate(rng);
    let expires_at = now.plus(REPORT_REQUEST_LIFETIME_SECONDS);
    pending.push(PendingReport {
        made_at: now,
        expires_at,
        key: key.to_bytes(),
    });
    save_pending_reports(store, &pending)?;
    store.flush()?;
    Ok(NewReportRequest {
        code: ReportRequest {
            network_id: network_id.to_owned(),
            report_key: key.public(),
        }
        .to_code(),
        expires_at,
        replaced_made_at,
    })
}

/// A refused certificate in one phrase: the protocol's messages name the
/// certificate already; the others get it as a prefix.
pub(super) fn certificate_refused(e: meshtrace_protocol::CertificateError) -> NodeError {
    let text = e.to_string();
    NodeError::Report(if text.contains("certificate") {
        text
    } else {
        format!("certificate: {text}")
    })
}
