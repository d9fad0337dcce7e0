//! The mesh's request-response messages (stem hop, catch-up sync) as they
//! arrive from a peer: a length-prefixed frame read by `ProstCodec`, then
//! the screening the mesh applies to what it received.
//!
//! Input: one selector byte, then the bytes of the stream. The selector's
//! low two bits pick the direction (stem request, stem response, sync
//! request, sync response, each with the limit the mesh uses); bit 2 says
//! whether the stream is taken as it is (fuzzer-chosen length prefix) or
//! framed here with its exact length.
//!
//! Invariants: never panics; every message type decodes the raw bytes
//! without panicking, and what decodes re-encodes to a message that decodes
//! equal and is no longer; the codec refuses a length prefix over its limit
//! without allocating it, and reading a frame of `n` bytes never holds more
//! than `2n + 64 KiB` of memory (no amplification by many tiny fields); a
//! message the codec returns is the decoding of a frame within the limit,
//! and writing it and reading it back gives it again; the screened digests,
//! response ids and fetch ids respect MAX_SYNC_DAYS, the day window,
//! MAX_IDS_PER_DAY and MAX_FETCH_IDS, each day at most once.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use futures::executor::block_on;
use futures::io::Cursor;
use libfuzzer_sys::fuzz_target;
use meshtrace_node::p2p::*;
use meshtrace_protocol::{Day, RETENTION_DAYS};
use prost::Message;

/// Counts live heap bytes and their peak, to check what a read holds.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let live = LIVE.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; only
// the counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new >= l.size() {
                grew(new - l.size());
            } else {
                LIVE.fetch_sub(l.size() - new, Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f`; returns its result and the most heap it held beyond what was
/// live before.
fn measure<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let r = f();
    (r, PEAK.load(Relaxed).saturating_sub(base))
}

/// The local day the digests are screened against (2026-11-27).
const TODAY: Day = Day(20_784);
/// Memory a read may hold beyond twice the frame length.
const SLACK: usize = 64 * 1024;

fn protocol() -> StreamProtocol {
    StreamProtocol::new("/meshtrace/fuzz/x/1")
}

/// Decodes, re-encodes and decodes again.
fn round_trip<M: Message + Default + PartialEq + Debug>(bytes: &[u8]) -> Option<M> {
    let m = M::decode(bytes).ok()?;
    let again = m.encode_to_vec();
    assert!(again.len() <= bytes.len(), "re-encoding grew: {m:?}");
    assert_eq!(M::decode(&again[..]).expect("own encoding decodes"), m);
    Some(m)
}

/// One read through the codec, and its invariants.
fn read<M, C>(stream: &[u8], limit: usize, codec: &mut C, request: bool) -> Option<M>
where
    M: Message + Default + PartialEq + Debug + Clone,
    C: Codec<Protocol = StreamProtocol, Request = M, Response = M>,
{
    let declared = stream
        .get(..4)
        .map(|p| u32::from_be_bytes(p.try_into().unwrap()) as usize);
    let p = protocol();
    let (got, held) = measure(|| {
        let mut io = Cursor::new(stream);
        if request {
            block_on(codec.read_request(&p, &mut io))
        } else {
            block_on(codec.read_response(&p, &mut io))
        }
    });
    let Some(declared) = declared else {
        assert!(got.is_err(), "no length prefix, yet a message");
        return None;
    };
    if declared > limit {
        assert!(
            got.is_err(),
            "a {declared}-byte frame over the {limit}-byte limit was read"
        );
        assert!(
            held < 4096,
            "refused frame of {declared} bytes, yet {held} bytes allocated"
        );
        return None;
    }
    assert!(
        held <= 2 * declared + SLACK,
        "reading a {declared}-byte frame held {held} bytes"
    );
    let m = got.ok()?;
    let body = stream
        .get(4..4 + declared)
        .expect("a message from a truncated frame");
    assert_eq!(M::decode(body).ok().as_ref(), Some(&m));
    // Written and read back by the same codec: the same message.
    let mut out = Cursor::new(Vec::new());
    if request {
        block_on(codec.write_request(&p, &mut out, m.clone())).expect("write");
    } else {
        block_on(codec.write_response(&p, &mut out, m.clone())).expect("write");
    }
    let written = out.into_inner();
    assert!(written.len() <= 4 + declared);
    let mut io = Cursor::new(&written[..]);
    let back = if request {
        block_on(codec.read_request(&p, &mut io))
    } else {
        block_on(codec.read_response(&p, &mut io))
    };
    assert_eq!(back.expect("own frame reads back"), m);
    Some(m)
}

fn check_ids(ids: &[meshtrace_protocol::AnnouncementId], bytes: &[u8], max: usize) {
    assert_eq!(ids.len(), (bytes.len() / 32).min(max));
    for (id, chunk) in ids.iter().zip(bytes.chunks_exact(32)) {
        assert_eq!(&id.0[..], chunk);
    }
}

fn check_sync_response(r: &SyncResponse) {
    let screened = screen_digests(&r.digests, TODAY);
    assert!(screened.len() <= MAX_SYNC_DAYS);
    let oldest = TODAY.minus(RETENTION_DAYS + 1);
    let mut days = HashSet::new();
    for d in &screened {
        assert!(
            d.day >= oldest && d.day <= TODAY.plus(1),
            "day {:?} outside the window",
            d.day
        );
        assert!(days.insert(d.day), "day {:?} screened twice", d.day);
        assert!(
            r.digests
                .iter()
                .any(|m| m.day == d.day.0 && m.count == d.count && m.xor[..] == d.xor[..]),
            "a screened digest the peer did not send"
        );
    }
    check_ids(&response_ids(&r.ids), &r.ids, MAX_IDS_PER_DAY);
}

fn check_sync_request(r: &SyncRequest) {
    if let Some(sync_request::Kind::Fetch(ids)) = &r.kind {
        check_ids(&fetch_ids(ids), ids, MAX_FETCH_IDS);
    }
}

/// `MESHTRACE_FUZZ_WRITE_SEEDS=DIR` writes one realistic input per message
/// kind as the seed corpus (run once with -runs=1).
fn write_seeds() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(dir) = std::env::var("MESHTRACE_FUZZ_WRITE_SEEDS") else {
            return;
        };
        let ids: Vec<u8> = (0..10u8).flat_map(|i| [i; 32]).collect();
        let digests = (TODAY.0 - 15..=TODAY.0 + 1)
            .map(|day| DayDigestMsg {
                day,
                count: day % 7 + 1,
                xor: vec![day as u8; 32],
            })
            .collect();
        let seeds: Vec<(&str, u8, Vec<u8>)> = vec![
            (
                "stem-request",
                0,
                StemRequest {
                    hops_left: 1,
                    announcement: vec![0xa5; 600],
                }
                .encode_to_vec(),
            ),
            (
                "stem-response",
                1,
                StemResponse { accepted: true }.encode_to_vec(),
            ),
            (
                "sync-digests-request",
                2,
                SyncRequest {
                    kind: Some(sync_request::Kind::Digests(true)),
                }
                .encode_to_vec(),
            ),
            (
                "sync-ids-request",
                2,
                SyncRequest {
                    kind: Some(sync_request::Kind::Ids(TODAY.0)),
                }
                .encode_to_vec(),
            ),
            (
                "sync-fetch-request",
                2,
                SyncRequest {
                    kind: Some(sync_request::Kind::Fetch(ids[..96].to_vec())),
                }
                .encode_to_vec(),
            ),
            (
                "sync-digests-response",
                3,
                SyncResponse {
                    digests,
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            (
                "sync-ids-response",
                3,
                SyncResponse {
                    ids,
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            (
                "sync-fetch-response",
                3,
                SyncResponse {
                    announcements: vec![vec![1; 300], vec![2; 300], vec![3; 300]],
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            (
                "sync-refused",
                3,
                SyncResponse {
                    refused: "rate limited".into(),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            (
                "oversized-prefix",
                4 | 3,
                vec![0xff, 0xff, 0xff, 0xff, 0x0a, 0x00],
            ),
        ];
        for (name, selector, bytes) in seeds {
            let _ = std::fs::write(format!("{dir}/{name}"), [&[selector][..], &bytes].concat());
        }
    });
}

fuzz_target!(|data: &[u8]| {
    write_seeds();
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // Every message type on the raw bytes.
    round_trip::<StemRequest>(rest);
    round_trip::<StemResponse>(rest);
    round_trip::<DayDigestMsg>(rest);
    if let Some(r) = round_trip::<SyncRequest>(rest) {
        check_sync_request(&r);
    }
    if let Some(r) = round_trip::<SyncResponse>(rest) {
        check_sync_response(&r);
    }

    // Through the codec, as the mesh reads them.
    let framed;
    let stream = if selector & 4 != 0 {
        rest
    } else {
        framed = [&(rest.len() as u32).to_be_bytes()[..], rest].concat();
        &framed[..]
    };
    match selector & 3 {
        0 => {
            let mut c = ProstCodec::<StemRequest, StemRequest>::new(MAX_STEM_MESSAGE, 0);
            read::<StemRequest, _>(stream, MAX_STEM_MESSAGE, &mut c, true);
        }
        1 => {
            let mut c = ProstCodec::<StemResponse, StemResponse>::new(0, MAX_STEM_RESPONSE);
            read::<StemResponse, _>(stream, MAX_STEM_RESPONSE, &mut c, false);
        }
        2 => {
            let mut c = ProstCodec::<SyncRequest, SyncRequest>::new(MAX_SYNC_REQUEST, 0);
            if let Some(r) = read::<SyncRequest, _>(stream, MAX_SYNC_REQUEST, &mut c, true) {
                check_sync_request(&r);
            }
        }
        _ => {
            let mut c = ProstCodec::<SyncResponse, SyncResponse>::new(0, MAX_SYNC_RESPONSE);
            if let Some(r) = read::<SyncResponse, _>(stream, MAX_SYNC_RESPONSE, &mut c, false) {
                check_sync_response(&r);
            }
        }
    }
});
