//! The tokio task around [`NodeCore`]: it feeds the core the radio's
//! sightings, the mesh's announcements, the timer and the handle's
//! commands, and carries out the effects the core queues.

use meshtrace_protocol::UnixTime;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::mpsc;

use super::NodeSettings;
use super::{Command, NODE_CHANNEL, NodeCore, NodeEffect, NodeError, NodeEvent, NodeHandle};
use crate::clock::SharedClock;
use crate::p2p::{P2pEvent, P2pHandle};
use crate::radio::{Radio, RadioEvent};
use crate::store::{ContactStore, Store};

/// What the status shows when the radio's event channel closed.
pub const RADIO_CLOSED: &str =
    "the radio stopped delivering sightings; nothing new is recorded until meshtrace restarts";

struct Node<S: Store, R: Radio> {
    core: NodeCore<S>,
    radio: R,
    p2p: P2pHandle,
    clock: SharedClock,
    rng: StdRng,
    events: mpsc::Sender<NodeEvent>,
    /// False once the radio's event channel closed (it is not polled again).
    radio_open: bool,
    /// False once the mesh's event channel closed.
    mesh_open: bool,
    /// False once the mesh's body-request channel closed.
    bodies_open: bool,
}

/// Starts the node task. Stored epoch keys, announcements and exposures are
/// taken up again; own chunks not yet confirmed sent are handed to the mesh.
pub async fn start<S, R>(
    settings: NodeSettings,
    store: ContactStore<S>,
    radio: R,
    p2p: P2pHandle,
    clock: SharedClock,
) -> Result<NodeHandle, NodeError>
where
    S: Store + 'static,
    R: Radio + 'static,
{
    let (cmd_tx, cmd_rx) = mpsc::channel(NODE_CHANNEL);
    let (ev_tx, ev_rx) = mpsc::channel(NODE_CHANNEL);
    let core = NodeCore::new(settings, store, clock.now())?;
    let mut node = Node {
        core,
        radio,
        p2p,
        clock,
        rng: StdRng::from_rng(&mut rand::rng()),
        events: ev_tx,
        radio_open: true,
        mesh_open: true,
        bodies_open: true,
    };
    let tick = node.core.settings().tick;
    tokio::spawn(async move {
        if node.apply_effects().await {
            node.run(cmd_rx, tick).await;
        }
    });
    Ok(NodeHandle {
        commands: cmd_tx,
        events: ev_rx,
    })
}

impl<S: Store, R: Radio> Node<S, R> {
    fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// Carries out the core's effects; false when the node must stop.
    async fn apply_effects(&mut self) -> bool {
        while let Some(effect) = self.core.poll_effect() {
            match effect {
                NodeEffect::Advertise(frame) => {
                    if let Err(e) = self.radio.advertise(frame) {
                        let now = self.now();
                        self.core.handle_radio_failure(now, e.to_string());
                    }
                }
                NodeEffect::Publish(bytes) => {
                    // Refused or not: the core keeps the chunk as unsent and
                    // hands it over again at the next start.
                    let _ = self.p2p.publish(bytes).await;
                }
                // A radio failure must not block the node on a full channel.
                NodeEffect::Event(ev @ NodeEvent::RadioFailed(_)) => {
                    let _ = self.events.try_send(ev);
                }
                // Waits for room: exposures and stops must reach the daemon.
                NodeEffect::Event(ev) => {
                    let _ = self.events.send(ev).await;
                }
                NodeEffect::Stop => return false,
            }
        }
        !self.core.is_stopped()
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>, tick: std::time::Duration) {
        let mut timer = tokio::time::interval(tick);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = timer.tick() => {
                    let now = self.now();
                    self.core.handle_tick(now, &mut self.rng);
                }
                ev = self.radio.events().recv(), if self.radio_open => match ev {
                    Some(ev) => self.on_radio_event(ev),
                    None => {
                        // Not polled again: a closed channel is always ready.
                        self.radio_open = false;
                        let now = self.now();
                        self.core.handle_radio_failure(now, RADIO_CLOSED.to_owned());
                    }
                },
                ev = self.p2p.events.recv(), if self.mesh_open => match ev {
                    Some(P2pEvent::Announcement { verified, bytes, .. }) => {
                        let now = self.now();
                        self.core.handle_announcement(now, *verified, bytes);
                    }
                    Some(P2pEvent::Sent { id, .. }) => self.core.handle_sent(id),
                    Some(P2pEvent::Listening(_)) => {}
                    None => {
                        self.mesh_open = false;
                        let now = self.now();
                        self.core.handle_mesh_stopped(now);
                    }
                },
                // A peer fetches announcements whose bytes are in the store.
                req = self.p2p.bodies.recv(), if self.bodies_open => match req {
                    Some(req) => {
                        let _ = req.reply.send(self.core.announcement_bodies(&req.ids));
                    }
                    None => self.bodies_open = false,
                },
                cmd = commands.recv() => {
                    let Some(cmd) = cmd else { break };
                    if let Command::Shutdown(reply) = cmd {
                        let now = self.now();
                        let r = self.core.finish(now);
                        let _ = reply.send(r);
                        break;
                    }
                    self.on_command(cmd).await;
                }
            }
            if !self.apply_effects().await {
                break;
            }
        }
    }

    fn on_radio_event(&mut self, ev: RadioEvent) {
        match ev {
            RadioEvent::Sighting(s) => self.core.handle_sighting(s.to_sighting()),
            RadioEvent::Scan(w) => self.core.handle_scan(w),
            RadioEvent::Failed(e) => {
                let now = self.now();
                self.core.handle_radio_failure(now, e.to_string());
            }
        }
    }

    async fn on_command(&mut self, cmd: Command) {
        let now = self.now();
        match cmd {
            Command::Tick(reply) => {
                // What the radio delivered before this tick was asked for
                // is handled first, so that the tick's work (closing
                // encounters, rotating keys) depends on what was heard,
                // not on how the tasks happened to be scheduled: a demo or
                // simulation on a manual clock gives the same figures
                // every run.
                while let Ok(ev) = self.radio.events().try_recv() {
                    self.on_radio_event(ev);
                }
                self.core.handle_tick(now, &mut self.rng);
                // Effects first (the advertisement), then the answer; none
                // when the node stops: the caller learns it stopped.
                if self.apply_effects().await {
                    let _ = reply.send(());
                }
            }
            Command::Status(reply) => {
                let mesh = self.p2p.status().await.ok();
                let _ = reply.send(self.core.status(now, self.radio.stats(), mesh));
            }
            Command::Exposures(reply) => {
                let _ = reply.send(self.core.exposures());
            }
            Command::ReportRequest(reply) => {
                let _ = reply.send(self.core.report_request(now, &mut self.rng));
            }
            Command::ReportPlan(code, reply) => {
                let _ = reply.send(self.core.report(now, &code, false, &mut self.rng));
            }
            Command::ReportSubmit(code, reply) => {
                let r = self.core.report(now, &code, true, &mut self.rng);
                // The chunks go to the mesh before the answer, as before.
                self.apply_effects().await;
                let _ = reply.send(r);
            }
            Command::Shutdown(_) => {}
        }
    }
}
