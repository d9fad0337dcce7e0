//! The stem phase of [`MeshState`] (Dandelion++): answering stem requests,
//! relaying, the outcome of our own hops, and the fail-safe.

use libp2p::PeerId;
use meshtrace_protocol::AnnouncementId;

use super::state::{Effect, FLUFF_RETRY_DIVISOR, MeshState, Now, StemOut, StemPending, Token};
use super::{Origin, P2pEvent, STEM_MARKER, StemRequest, StemResponse, fluff_probability};

impl MeshState {
    /// A stem request from `peer`: the answer to send back. A valid report
    /// this node does not hold is stored hidden and relayed.
    pub fn handle_stem_request(
        &mut self,
        now: Now,
        peer: PeerId,
        request: StemRequest,
    ) -> StemResponse {
        if self.config.light() || !self.allow(now, peer, true) {
            return StemResponse { accepted: false };
        }
        let verified = self.verify(now, &request.announcement);
        // A loop in the stem, already fluffed, or a variant of a chunk we
        // hold: refuse, so that the sender fluffs at once instead of waiting
        // for its fail-safe timer.
        let Ok(v) = verified else {
            self.counters.rejected += 1;
            return StemResponse { accepted: false };
        };
        if self.pool.contains(&v.id()) || self.pool.slot_taken(&v) {
            return StemResponse { accepted: false };
        }
        let id = v.id();
        let bytes = request.announcement;
        self.accept_new(now, v, bytes.clone(), Origin::Stem(peer));
        self.relay_stem(now, id, bytes, peer);
        StemResponse { accepted: true }
    }

    /// The answer to a stem request we sent.
    pub fn handle_stem_response(&mut self, now: Now, token: Token, accepted: bool) {
        let Some(out) = self.stem_out.remove(&token) else {
            return;
        };
        if !out.own {
            if !accepted && let Some(p) = self.stem_pending.get_mut(&out.id) {
                // The next hop refused: fluff now.
                p.deadline = now.mono;
            }
            return;
        }
        if !accepted {
            self.own_stem_failed(now, out.id);
            return;
        }
        // The Dandelion++ fail-safe covers the reporter too: if no copy
        // comes back through gossip within `stem_timeout` (a hop that sits
        // on it, or one whose gossip nobody accepts), we publish it.
        if let Some(pos) = self.outbox.iter().position(|o| o.id == out.id)
            && let Some(o) = self.outbox.remove(pos)
        {
            self.stem_pending.insert(
                out.id,
                StemPending {
                    bytes: o.bytes,
                    deadline: now.mono + self.config.stem_timeout(),
                },
            );
            self.emit(P2pEvent::Sent {
                id: out.id,
                via_stem: true,
            });
        }
    }

    /// A stem request we sent failed (timeout, connection lost, or the peer
    /// did not take the stream).
    pub fn handle_stem_failure(&mut self, now: Now, token: Token) {
        if let Some(out) = self.stem_out.remove(&token) {
            if out.own {
                self.own_stem_failed(now, out.id);
            } else if let Some(p) = self.stem_pending.get_mut(&out.id) {
                // The next hop failed: fluff now.
                p.deadline = now.mono;
            }
        }
    }

    fn own_stem_failed(&mut self, now: Now, id: AnnouncementId) {
        if let Some(o) = self.outbox.iter_mut().find(|o| o.id == id) {
            o.failures += 1;
            o.next_try = now.mono;
        }
    }

    /// Dandelion++ step of a relay: fluff with probability `1 / stem_hops`,
    /// otherwise forward to a random stem-capable full peer other than the
    /// sender; keep a fail-safe either way.
    fn relay_stem(&mut self, now: Now, id: AnnouncementId, bytes: Vec<u8>, from: PeerId) {
        let fluff = rand::RngExt::random_bool(
            &mut self.rng,
            fluff_probability(self.config.stem_hops()).clamp(0.0, 1.0),
        );
        let next = if fluff {
            None
        } else {
            self.random_peer(Some(from), false)
        };
        if let Some(next) = next {
            let token = self.token();
            self.push(Effect::SendStem {
                peer: next,
                token,
                request: StemRequest {
                    hops_left: STEM_MARKER,
                    announcement: bytes.clone(),
                },
            });
            self.counters.stem_sent += 1;
            self.stem_out.insert(token, StemOut { id, own: false });
            self.stem_pending.insert(
                id,
                StemPending {
                    bytes,
                    deadline: now.mono + self.config.stem_timeout(),
                },
            );
        } else {
            let retry = self.config.stem_timeout() / FLUFF_RETRY_DIVISOR;
            self.fluff(id, bytes, retry);
        }
    }

    /// Publishes a relayed report in gossip; if that fails it goes back to
    /// the pending stems, due again after `retry`.
    fn fluff(&mut self, id: AnnouncementId, bytes: Vec<u8>, retry: std::time::Duration) {
        self.publishing.insert(id, (bytes, retry));
        self.gossip_id(id);
    }

    /// Fail-safe of Dandelion: a stem message we relayed (or our own, once
    /// a hop accepted it) that has not come back through gossip in time is
    /// published by us.
    pub(super) fn stem_failsafe(&mut self, now: Now) {
        if self.config.light() {
            self.stem_pending.clear();
            return;
        }
        let due: Vec<AnnouncementId> = self
            .stem_pending
            .iter()
            .filter(|(_, p)| p.deadline <= now.mono)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(p) = self.stem_pending.remove(&id) {
                let retry = self.config.stem_timeout();
                self.fluff(id, p.bytes, retry);
            }
        }
    }
}
