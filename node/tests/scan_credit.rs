//! Scan-aware crediting through the node, end to end without sockets: two
//! `NodeCore`s on the in-memory air, 1 m apart for 30 minutes, their radios
//! reporting scan windows (phone-like: 4 s every 60 s; PC-like: continuous
//! in 10 s windows) and sightings; a manual clock (plain `UnixTime`s). The
//! exposure each node credits to the contact — summed over the encounters
//! of every rotating ID it heard — is the contact's length within two scan
//! intervals, whatever the scan rate and however many rotations it spans.

use meshtrace_node::protocol::UnixTime;
use meshtrace_node::radio::memory::{DeviceConfig, MemoryAir, MemoryRadio};
use meshtrace_node::radio::model::{DutyCycle, PathLossModel, Position, Trajectory};
use meshtrace_node::radio::{PC_SCAN, PHONE_SCAN, Radio, RadioEvent, ScanTiming};
use meshtrace_node::store::{ContactStore, MasterKey, MemoryStore, StoreConfig};
use meshtrace_node::{NodeCore, NodeEffect, NodeSettings};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const NET: &str = "scan-credit";
/// Start of the scenario: 7 minutes into a 15-minute epoch, so the contact
/// spans three of them (two rotations).
const T0: u64 = 1_800_000_420;
/// The contact's length (seconds).
const CONTACT: u64 = 30 * 60;
/// The nodes' periodic work (key rotation, closing idle encounters).
const TICK: u64 = 60;

struct Node {
    core: NodeCore<MemoryStore>,
    radio: MemoryRadio,
    rng: ChaCha20Rng,
}

impl Node {
    fn new(air: &MemoryAir, x: f64, seed: u64) -> Node {
        let store = ContactStore::with_backend(
            MemoryStore::new(),
            &MasterKey::generate(),
            StoreConfig::default(),
            UnixTime(T0),
        )
        .expect("store");
        let settings = NodeSettings::builder(NET).build().expect("settings");
        let core = NodeCore::new(settings, store, UnixTime(T0)).expect("core");
        let radio = air
            .add_device(DeviceConfig {
                trajectory: Trajectory::fixed(Position { x, y: 0.0 }),
                offsets_db: Some((0.0, 0.0)),
                ..DeviceConfig::default()
            })
            .expect("radio");
        Node {
            core,
            radio,
            rng: ChaCha20Rng::seed_from_u64(seed),
        }
    }

    fn effects(&mut self) {
        while let Some(e) = self.core.poll_effect() {
            if let NodeEffect::Advertise(f) = e {
                self.radio.advertise(f).expect("advertise");
            }
        }
    }

    fn tick(&mut self, now: UnixTime) {
        self.core.handle_tick(now, &mut self.rng);
        self.effects();
    }

    /// Hands the radio's events to the core; returns the windows reported.
    fn hear(&mut self) -> usize {
        let mut windows = 0;
        for ev in self.radio.drain_events() {
            match ev {
                RadioEvent::Scan(w) => {
                    windows += 1;
                    self.core.handle_scan(w);
                }
                RadioEvent::Sighting(s) => self.core.handle_sighting(s.to_sighting()),
                RadioEvent::Failed(e) => panic!("{e}"),
            }
        }
        windows
    }

    /// Seconds credited over every stored encounter, and their number.
    fn credited(&self) -> (u64, usize) {
        let store = self.core.store();
        let secs = store
            .encounters()
            .map(|(_, e)| e.profile.iter().map(|(_, s)| u64::from(*s)).sum::<u64>())
            .sum();
        (secs, store.encounter_count())
    }
}

/// Two nodes 1 m apart for [`CONTACT`] seconds, then apart until their
/// encounters close; returns what each credited and the windows reported.
fn contact(scan: ScanTiming, seed: u64) -> [(u64, usize, usize); 2] {
    let duty = scan.duty(DutyCycle::default());
    let air = MemoryAir::new(PathLossModel::default(), duty, seed).expect("air");
    let mut nodes = [
        Node::new(&air, 0.0, seed + 1),
        Node::new(&air, 1.0, seed + 2),
    ];
    let mut windows = [0usize; 2];
    let end = CONTACT + 20 * 60;
    for t in 0..=end {
        let now = UnixTime(T0 + t);
        if t == CONTACT {
            // B walks away: 30 m is out of range.
            air.set_trajectory(
                nodes[1].radio.id(),
                Trajectory::fixed(Position { x: 30.0, y: 0.0 }),
            );
        }
        if t % TICK == 0 {
            for n in &mut nodes {
                n.tick(now);
            }
        }
        air.step(now.0 * 1000);
        for (n, w) in nodes.iter_mut().zip(&mut windows) {
            *w += n.hear();
        }
    }
    let now = UnixTime(T0 + end);
    let mut out = [(0, 0, 0); 2];
    for (i, n) in nodes.iter_mut().enumerate() {
        n.core.finish(now).expect("finish");
        let (secs, encounters) = n.credited();
        out[i] = (secs, encounters, windows[i]);
    }
    out
}

#[test]
fn a_30_minute_close_contact_is_credited_its_length_at_phone_and_pc_scan_rates() {
    for (scan, seed) in [(PHONE_SCAN, 10), (PC_SCAN, 20)] {
        let interval = scan.interval.as_secs();
        for (who, (secs, encounters, windows)) in ["A", "B"].iter().zip(contact(scan, seed)) {
            // One window per interval over the 50 minutes (the first may be
            // cut short at the start).
            let expected_windows = (CONTACT + 20 * 60) / interval;
            assert!(
                windows as u64 >= expected_windows && windows as u64 <= expected_windows + 1,
                "{scan}: {who} reported {windows} windows, expected {expected_windows}"
            );
            // Three epochs: at least three rotating IDs, one encounter each.
            assert!(
                encounters >= 3,
                "{scan}: {who} stored {encounters} encounters"
            );
            let bound = 2 * interval;
            assert!(
                secs.abs_diff(CONTACT) <= bound,
                "{scan}: {who} credited {secs} s for a {CONTACT} s contact (bound ±{bound} s)"
            );
        }
    }
}
