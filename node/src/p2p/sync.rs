//! Catch-up in [`MeshState`]: per-day digests, then ids, then bounded fetch
//! batches; answering peers' requests from the visible pool.

use std::collections::HashSet;

use libp2p::PeerId;
use meshtrace_protocol::{AnnouncementId, Day, Disposition, VerifyContext};

use super::state::{Effect, MeshState, Now, Token};
use super::verify::verify_parallel;
use super::wire::{self, DayDigestMsg, SyncRequest, SyncResponse, sync_request};
use super::{MAX_FETCH_BATCHES, MAX_FETCH_IDS, MAX_FETCH_RESPONSE, MAX_IDS_PER_DAY, Origin};

/// The step a catch-up request belongs to.
pub(super) enum SyncStep {
    Digests,
    Ids,
    Fetch(HashSet<AnnouncementId>),
    /// The body of an id heard in gossip.
    Gossip(AnnouncementId),
}

impl MeshState {
    /// Starts a catch-up round with `with`, or with a random full peer that
    /// speaks the sync protocol.
    pub(crate) fn start_sync(&mut self, _now: Now, with: Option<PeerId>) {
        let peer = match with {
            Some(p) => self.peers.get(&p).is_some_and(|k| k.sync).then_some(p),
            None => self.random_peer(None, true),
        };
        if let Some(p) = peer {
            self.send_sync(p, sync_request::Kind::Digests(true), SyncStep::Digests);
        }
    }

    pub(super) fn send_sync(&mut self, peer: PeerId, kind: sync_request::Kind, step: SyncStep) {
        let token = self.token();
        self.sync_out.insert(token, (peer, step));
        self.push(Effect::SendSync {
            peer,
            token,
            request: SyncRequest { kind: Some(kind) },
        });
    }

    /// A catch-up request from `peer`: the answer to send back (refused
    /// beyond the peer's rate limits). Hidden entries are never served.
    pub fn answer_sync(&mut self, now: Now, peer: PeerId, request: SyncRequest) -> SyncResponse {
        let resp = if self.allow(now, peer, false) {
            self.answer(request)
        } else {
            SyncResponse {
                refused: "rate limited".into(),
                ..Default::default()
            }
        };
        self.window(now, peer).bytes_out += prost::Message::encoded_len(&resp);
        resp
    }

    fn answer(&mut self, request: SyncRequest) -> SyncResponse {
        match request.kind {
            Some(sync_request::Kind::Digests(_)) => SyncResponse {
                digests: self
                    .pool
                    .digests()
                    .into_iter()
                    .map(|d| DayDigestMsg {
                        day: d.day.0,
                        count: d.count,
                        xor: d.xor.to_vec(),
                    })
                    .collect(),
                ..Default::default()
            },
            Some(sync_request::Kind::Ids(day)) => SyncResponse {
                ids: self
                    .pool
                    .ids_of_day(Day(day))
                    .iter()
                    .take(MAX_IDS_PER_DAY)
                    .flat_map(|i| i.0)
                    .collect(),
                ..Default::default()
            },
            Some(sync_request::Kind::Fetch(ids)) => {
                let mut total = 0usize;
                let mut out = Vec::new();
                for id in wire::fetch_ids(&ids) {
                    if !self.pool.is_served(&id) {
                        #[cfg(feature = "test-utils")]
                        if let Some(b) = self.unchecked.get(&id) {
                            total += b.len();
                            out.push(b.clone());
                        }
                        continue;
                    }
                    match self.bodies.get(&id) {
                        Some(b) => {
                            if total + b.len() > MAX_FETCH_RESPONSE {
                                break;
                            }
                            total += b.len();
                            out.push(b.to_vec());
                        }
                        // The driver adds it from the store (up to the
                        // same limit).
                        None if self.bodies.in_store() => self.store_reads.push(id),
                        None => {}
                    }
                }
                SyncResponse {
                    announcements: out,
                    ..Default::default()
                }
            }
            None => SyncResponse {
                refused: "empty request".into(),
                ..Default::default()
            },
        }
    }

    /// Bytes read from the store and added to an answer to `peer` count
    /// against its rate window like the rest of the answer.
    pub(crate) fn served_from_store(&mut self, now: Now, peer: PeerId, bytes: usize) {
        self.window(now, peer).bytes_out += bytes;
    }

    /// A catch-up request we sent failed.
    pub fn handle_sync_failure(&mut self, now: Now, token: Token) {
        if let Some((peer, SyncStep::Gossip(id))) = self.sync_out.remove(&token) {
            self.gossip_body(now, id, peer, None);
        }
    }

    /// The answer to a catch-up request we sent: the next step (ids of the
    /// days that differ, then a bounded number of fetch batches; the next
    /// round continues where this one stopped), or the fetched
    /// announcements.
    pub fn handle_sync_response(&mut self, now: Now, token: Token, response: SyncResponse) {
        let Some((peer, step)) = self.sync_out.remove(&token) else {
            return;
        };
        self.counters.sync_bytes_in += prost::Message::encoded_len(&response) as u64;
        if let SyncStep::Gossip(id) = step {
            let body = response
                .announcements
                .into_iter()
                .find(|b| AnnouncementId::of(b) == id);
            self.gossip_body(now, id, peer, body);
            return;
        }
        if !response.refused.is_empty() {
            return;
        }
        match step {
            SyncStep::Digests => {
                // Only days that can hold unexpired announcements, each
                // once, and a bounded number of them.
                let theirs = wire::screen_digests(&response.digests, now.unix.day());
                let days = self.pool.days_to_reconcile(&theirs);
                if days.is_empty() {
                    self.counters.sync_rounds += 1;
                }
                for day in days {
                    self.send_sync(peer, sync_request::Kind::Ids(day.0), SyncStep::Ids);
                }
            }
            SyncStep::Ids => {
                let ids = wire::response_ids(&response.ids);
                let missing = self.pool.missing(&ids);
                if missing.is_empty() {
                    self.counters.sync_rounds += 1;
                }
                for batch in missing.chunks(MAX_FETCH_IDS).take(MAX_FETCH_BATCHES) {
                    self.send_sync(
                        peer,
                        sync_request::Kind::Fetch(batch.iter().flat_map(|i| i.0).collect()),
                        SyncStep::Fetch(batch.iter().copied().collect()),
                    );
                }
            }
            SyncStep::Fetch(asked) => {
                let mut wanted = Vec::new();
                for bytes in response.announcements {
                    if asked.contains(&AnnouncementId::of(&bytes)) {
                        wanted.push(bytes);
                    } else {
                        // Not what we asked for.
                        self.counters.rejected += 1;
                    }
                }
                // The batch is verified at once, on every core.
                let trusted = self.config.trusted_issuers().keys();
                let ctx = VerifyContext {
                    network_id: self.config.network_id(),
                    trusted_issuers: &trusted,
                    now: now.unix,
                };
                let refs: Vec<&[u8]> = wanted.iter().map(Vec::as_slice).collect();
                let verdicts = verify_parallel(&refs, &ctx);
                for (bytes, verdict) in wanted.into_iter().zip(verdicts) {
                    match verdict {
                        Ok(v) => self.accept_new(now, v, bytes, Origin::Sync(peer)),
                        Err(e) if e.disposition() == Disposition::Reject => {
                            self.counters.rejected += 1
                        }
                        Err(_) => {}
                    }
                }
                self.counters.sync_rounds += 1;
            }
            SyncStep::Gossip(_) => {}
        }
    }
}
