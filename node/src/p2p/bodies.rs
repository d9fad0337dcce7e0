//! Where the mesh core finds the bytes of the announcements its pool holds.
//! A mesh beside a node keeps them in the node's store (sled, on disk) and
//! only the most recent few in memory, until the node has surely stored
//! them; a mesh without a node (tests, benchmarks, the simulator) keeps
//! them all in memory.

use std::collections::{HashMap, VecDeque};

use meshtrace_protocol::AnnouncementId;
use tokio::sync::oneshot;

/// Bodies a store-backed mesh keeps in memory: the latest it accepted, so
/// that a peer fetching one it just heard of in gossip is served before
/// the node has written it (≈ 1 MiB at 4 KiB per announcement).
pub const MAX_RECENT_BODIES: usize = 256;

/// Most announcement ids in one [`BodyRequest`] (one fetch's worth).
pub const MAX_BODY_REQUEST_IDS: usize = super::MAX_FETCH_IDS;

/// The mesh asks the node for stored announcement bytes (to answer a
/// peer's fetch). The node answers with the bytes of those it holds, in
/// any order, and drops the rest.
#[derive(Debug)]
pub struct BodyRequest {
    /// The ids wanted (at most [`MAX_BODY_REQUEST_IDS`]).
    pub ids: Vec<AnnouncementId>,
    /// Where the bytes go.
    pub reply: oneshot::Sender<Vec<Vec<u8>>>,
}

/// The core's bodies (see the module docs).
pub(super) enum Bodies {
    /// Every body, in memory (no store beside the mesh).
    Memory(HashMap<AnnouncementId, Vec<u8>>),
    /// The store holds them; the latest [`MAX_RECENT_BODIES`] are also here.
    Store {
        recent: HashMap<AnnouncementId, Vec<u8>>,
        order: VecDeque<AnnouncementId>,
    },
}

impl Bodies {
    /// Keeps a body (a store-backed mesh forgets the oldest recent one).
    pub(super) fn put(&mut self, id: AnnouncementId, bytes: &[u8]) {
        match self {
            Bodies::Memory(m) => {
                m.entry(id).or_insert_with(|| bytes.to_vec());
            }
            Bodies::Store { recent, order } => {
                if recent.contains_key(&id) {
                    return;
                }
                if order.len() >= MAX_RECENT_BODIES
                    && let Some(old) = order.pop_front()
                {
                    recent.remove(&old);
                }
                recent.insert(id, bytes.to_vec());
                order.push_back(id);
            }
        }
    }

    /// A body held in memory.
    pub(super) fn get(&self, id: &AnnouncementId) -> Option<&[u8]> {
        match self {
            Bodies::Memory(m) => m.get(id),
            Bodies::Store { recent, .. } => recent.get(id),
        }
        .map(Vec::as_slice)
    }

    /// Forgets a body (expired or evicted).
    pub(super) fn remove(&mut self, id: &AnnouncementId) {
        match self {
            Bodies::Memory(m) => {
                m.remove(id);
            }
            Bodies::Store { recent, order } => {
                if recent.remove(id).is_some() {
                    order.retain(|x| x != id);
                }
            }
        }
    }

    /// True when the store holds the bodies.
    pub(super) fn in_store(&self) -> bool {
        matches!(self, Bodies::Store { .. })
    }

    /// Bodies held in memory.
    pub(super) fn len(&self) -> usize {
        match self {
            Bodies::Memory(m) => m.len(),
            Bodies::Store { recent, .. } => recent.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_backed_mesh_keeps_only_the_latest_bodies() {
        let mut b = Bodies::Store {
            recent: HashMap::new(),
            order: VecDeque::new(),
        };
        let id = |i: usize| {
            let mut a = [0u8; 32];
            a[..8].copy_from_slice(&(i as u64).to_be_bytes());
            AnnouncementId(a)
        };
        for i in 0..MAX_RECENT_BODIES + 10 {
            b.put(id(i), &[1, 2, 3]);
        }
        assert_eq!(b.len(), MAX_RECENT_BODIES);
        assert!(b.get(&id(9)).is_none(), "the oldest went first");
        assert_eq!(b.get(&id(10)), Some(&[1u8, 2, 3][..]));
        b.remove(&id(10));
        assert!(b.get(&id(10)).is_none());
        assert!(b.in_store());
        let mut m = Bodies::Memory(HashMap::new());
        for i in 0..MAX_RECENT_BODIES + 10 {
            m.put(id(i), &[4]);
        }
        assert_eq!(m.len(), MAX_RECENT_BODIES + 10, "memory keeps them all");
    }
}
