//! Batch verification on every core: the protocol's
//! [`VerifiedAnnouncement::verify_batch`] (one thread, no threads of its
//! own) run on contiguous slices of a batch, one scoped thread per core.

use meshtrace_protocol::{AnnouncementError, VerifiedAnnouncement, VerifyContext};

/// Batches smaller than this many announcements per thread are not split
/// further: a thread costs about as much as a few signature checks.
pub const MIN_PER_THREAD: usize = 8;

/// [`VerifiedAnnouncement::verify_batch`] over `items`, the batch split
/// across the machine's cores (`std::thread::available_parallelism`): one
/// result per input, in order, the same results as verifying each alone.
pub fn verify_parallel(
    items: &[&[u8]],
    ctx: &VerifyContext<'_>,
) -> Vec<Result<VerifiedAnnouncement, AnnouncementError>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    verify_on(items, ctx, cores)
}

/// [`verify_parallel`] on at most `threads` threads.
pub fn verify_on(
    items: &[&[u8]],
    ctx: &VerifyContext<'_>,
    threads: usize,
) -> Vec<Result<VerifiedAnnouncement, AnnouncementError>> {
    let threads = threads.clamp(1, items.len().div_ceil(MIN_PER_THREAD).max(1));
    if threads == 1 {
        return VerifiedAnnouncement::verify_batch(items, ctx);
    }
    let per = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = items
            .chunks(per)
            .skip(1)
            .map(|part| s.spawn(move || VerifiedAnnouncement::verify_batch(part, ctx)))
            .collect();
        // The first slice on this thread.
        let mut out = VerifiedAnnouncement::verify_batch(&items[..per.min(items.len())], ctx);
        for p in parts {
            match p.join() {
                Ok(r) => out.extend(r),
                // A panic in the protocol crate is a bug: pass it on.
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshtrace_protocol::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn split_batches_give_the_same_results_in_order() {
        let mut rng = ChaCha20Rng::seed_from_u64(18);
        let issuer = IssuerSecretKey::generate(&mut rng);
        let now = UnixTime(1_800_000_000);
        let mut items = Vec::new();
        for i in 0..37 {
            let key = ReportSecretKey::generate(&mut rng);
            let cert = Certificate::issue(
                &issuer,
                CertificateParams {
                    network_id: "par".into(),
                    report_key: key.public(),
                    valid_from: now.minus(60),
                    valid_until: now.plus(86_400),
                    window_first_day: now.day().minus(2),
                    window_last_day: now.day(),
                    max_tokens: 64,
                },
            )
            .unwrap();
            let mut bytes = build_announcements(&key, &cert, &[], -8, now.minus(30), &mut rng)
                .unwrap()
                .remove(0)
                .bytes;
            if i % 9 == 4 {
                // A broken report signature.
                let last = bytes.len() - 1;
                bytes[last] ^= 1;
            }
            items.push(bytes);
        }
        let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
        let trusted = [issuer.public()];
        let ctx = VerifyContext {
            network_id: "par",
            trusted_issuers: &trusted,
            now,
        };
        let single: Vec<_> = refs
            .iter()
            .map(|b| VerifiedAnnouncement::verify(b, &ctx))
            .collect();
        assert_eq!(single.iter().filter(|r| r.is_err()).count(), 4);
        for threads in [1, 2, 3, 5, 64] {
            assert_eq!(verify_on(&refs, &ctx, threads), single, "{threads} threads");
        }
        assert!(verify_parallel(&[], &ctx).is_empty());
    }
}
