//! From stays to contacts: who is how far from whom, for how long. A
//! segment is one pair at one distance for a stretch of minutes; only pairs
//! in the same room and within radio range make segments.

use super::rng::{Purpose, range, stream};
use super::town::{DAY_MIN, FRONT_SEAT, Layout, Presence, Room, RoomKind, Spot};

/// Two people at a fixed distance from minute `start` to `end`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Segment {
    /// The lower agent id.
    pub(crate) a: u32,
    /// The higher agent id.
    pub(crate) b: u32,
    pub(crate) start: i32,
    pub(crate) end: i32,
    /// Metres.
    pub(crate) dist: f32,
    /// Extra loss (walls), dB.
    pub(crate) wall_db: f32,
    pub(crate) kind: RoomKind,
    /// The room (for the phones' carry positions: one per person, room and
    /// day).
    pub(crate) room: u32,
}

impl Segment {
    pub(crate) fn minutes(&self) -> i32 {
        self.end - self.start
    }

    pub(crate) fn other(&self, me: u32) -> u32 {
        if self.a == me { self.b } else { self.a }
    }

    pub(crate) fn pair_key(&self) -> u64 {
        (u64::from(self.a) << 32) | u64::from(self.b)
    }
}

fn seat_position(layout: &Layout, seat: u16) -> (f32, f32, i32) {
    match *layout {
        Layout::Grid { cols, spacing } => {
            if seat == FRONT_SEAT {
                (f32::from(cols) * spacing / 2.0, -1.5, 0)
            } else {
                let c = seat % cols;
                let r = seat / cols;
                (f32::from(c) * spacing, f32::from(r) * spacing, 0)
            }
        }
        Layout::Beds => {
            let room = i32::from(seat / 2);
            (room as f32 * 4.0 + f32::from(seat % 2), 0.0, room)
        }
        // A fixed spot in a roaming room (a shop counter).
        _ => (1.0 + 2.0 * f32::from(seat), 1.0, 0),
    }
}

struct Placed {
    agent: u32,
    start: i32,
    end: i32,
    x: f32,
    y: f32,
    /// Inner room (bedrooms) for wall losses.
    inner: i32,
}

fn pairs(
    placed: &mut [Placed],
    (room, kind): (u32, RoomKind),
    max_range: f32,
    wall_db: f32,
    out: &mut Vec<Segment>,
) {
    placed.sort_by_key(|p| (p.start, p.agent));
    for i in 0..placed.len() {
        for j in i + 1..placed.len() {
            let (p, q) = (&placed[i], &placed[j]);
            if q.start >= p.end {
                break;
            }
            if p.agent == q.agent {
                continue;
            }
            let (s, e) = (p.start.max(q.start), p.end.min(q.end));
            if s >= e {
                continue;
            }
            let dist = ((p.x - q.x).powi(2) + (p.y - q.y).powi(2)).sqrt();
            if dist > max_range {
                continue;
            }
            let walls = (p.inner - q.inner).abs().min(2) as f32;
            out.push(Segment {
                a: p.agent.min(q.agent),
                b: p.agent.max(q.agent),
                start: s,
                end: e,
                dist,
                wall_db: walls * wall_db,
                kind,
                room,
            });
        }
    }
}

/// All segments of one day's stays.
pub(crate) fn segments(
    rooms: &[Room],
    presences: &[Presence],
    seed: u64,
    day: u32,
    max_range: f32,
    wall_db: f32,
) -> Vec<Segment> {
    let mut order: Vec<usize> = (0..presences.len()).collect();
    order.sort_by_key(|&i| {
        let p = &presences[i];
        (p.room, p.start, p.agent)
    });
    let mut out = Vec::new();
    let mut i = 0;
    let mut placed: Vec<Placed> = Vec::new();
    while i < order.len() {
        let room_id = presences[order[i]].room;
        let mut j = i;
        while j < order.len() && presences[order[j]].room == room_id {
            j += 1;
        }
        let group: Vec<&Presence> = order[i..j].iter().map(|&k| &presences[k]).collect();
        i = j;
        let room = &rooms[room_id as usize];
        let mut rng = stream(seed, Purpose::Position, u64::from(room_id), u64::from(day));
        match room.layout {
            Layout::Roaming { w, h, period } => {
                let mut entries: Vec<(i32, u32, usize)> = Vec::new();
                for (k, p) in group.iter().enumerate() {
                    let first = p.start.div_euclid(period);
                    let last = (p.end - 1).div_euclid(period);
                    for blk in first..=last {
                        entries.push((blk, p.agent, k));
                    }
                }
                entries.sort_unstable();
                let mut a = 0;
                while a < entries.len() {
                    let blk = entries[a].0;
                    let mut b = a;
                    while b < entries.len() && entries[b].0 == blk {
                        b += 1;
                    }
                    let (bs, be) = (blk * period, (blk + 1) * period);
                    placed.clear();
                    for &(_, agent, k) in &entries[a..b] {
                        let p = group[k];
                        let (x, y) = match p.spot {
                            Spot::Seat(s) => {
                                let (x, y, _) = seat_position(&room.layout, s);
                                (x, y)
                            }
                            Spot::At(x, y) => (x, y),
                            Spot::Free => (
                                range(&mut rng, 0.0, f64::from(w)) as f32,
                                range(&mut rng, 0.0, f64::from(h)) as f32,
                            ),
                        };
                        placed.push(Placed {
                            agent,
                            start: p.start.max(bs),
                            end: p.end.min(be),
                            x,
                            y,
                            inner: 0,
                        });
                    }
                    pairs(
                        &mut placed,
                        (room_id, room.kind),
                        max_range,
                        wall_db,
                        &mut out,
                    );
                    a = b;
                }
            }
            layout => {
                placed.clear();
                for p in &group {
                    let (x, y, inner) = match (p.spot, layout) {
                        (Spot::At(x, y), _) => (x, y, 0),
                        (Spot::Seat(s), _) => seat_position(&layout, s),
                        (Spot::Free, Layout::Visit { w, h }) => (
                            range(&mut rng, 0.0, f64::from(w)) as f32,
                            range(&mut rng, 0.0, f64::from(h)) as f32,
                            0,
                        ),
                        (Spot::Free, _) => (0.0, 0.0, 0),
                    };
                    placed.push(Placed {
                        agent: p.agent,
                        start: p.start,
                        end: p.end,
                        x,
                        y,
                        inner,
                    });
                }
                pairs(
                    &mut placed,
                    (room_id, room.kind),
                    max_range,
                    wall_db,
                    &mut out,
                );
            }
        }
    }
    out
}

/// For each agent, the (other adopter, epoch) pairs in radio range on one
/// day: the IDs its phone heard.
pub(super) fn heard_epochs(n: usize, segs: &[Segment]) -> Vec<u32> {
    let mut masks: Vec<(u64, u128)> = segs
        .iter()
        .map(|s| {
            let lo = s.start.rem_euclid(DAY_MIN) / 15;
            let hi = (s.end - 1).rem_euclid(DAY_MIN) / 15;
            let mut m = 0u128;
            for e in lo..=hi.max(lo) {
                m |= 1u128 << e.min(127);
            }
            (s.pair_key(), m)
        })
        .collect();
    masks.sort_unstable_by_key(|m| m.0);
    let mut out = vec![0u32; n];
    let mut i = 0;
    while i < masks.len() {
        let key = masks[i].0;
        let mut m = 0u128;
        while i < masks.len() && masks[i].0 == key {
            m |= masks[i].1;
            i += 1;
        }
        let c = m.count_ones();
        out[(key >> 32) as usize] += c;
        out[(key & 0xffff_ffff) as usize] += c;
    }
    out
}
