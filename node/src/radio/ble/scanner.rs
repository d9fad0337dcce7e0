//! The scan task: BlueZ discovery events in, sightings out.

use super::*;

pub(super) type EventStream = Pin<Box<dyn Stream<Item = CentralEvent> + Send>>;

/// The scan task: BlueZ events in, sightings out.
pub(super) struct Scanner {
    pub(super) central: Central,
    pub(super) adapter: String,
    pub(super) decoder: FrameDecoder,
    pub(super) clock: SharedClock,
    pub(super) tx: mpsc::Sender<RadioEvent>,
}

impl Scanner {
    pub(super) async fn run(mut self, mut stream: EventStream, mut stop: oneshot::Receiver<()>) {
        loop {
            let event = tokio::select! {
                _ = &mut stop => break,
                event = stream.next() => event,
            };
            let Some(event) = event else {
                report(
                    &self.tx,
                    RadioError::NoBluetoothService(
                        "the BlueZ event stream ended (D-Bus connection lost or bluetoothd \
                         stopped); no more sightings"
                            .into(),
                    ),
                );
                return;
            };
            self.handle(event).await;
        }
        if let Err(e) = self.central.stop_scan().await {
            tracing::debug!(error = %e, "BLE radio: stopping the scan failed");
        }
    }

    async fn handle(&mut self, event: CentralEvent) {
        match event {
            CentralEvent::ServiceDataAdvertisement { id, service_data } => {
                // The event carries no RSSI: read it from the device.
                let rssi = self.properties(&id).await.and_then(|p| p.rssi);
                self.sightings(&service_data, rssi);
            }
            CentralEvent::DeviceDiscovered(id) | CentralEvent::DeviceUpdated(id) => {
                if let Some(p) = self.properties(&id).await {
                    self.sightings(&p.service_data, p.rssi);
                }
            }
            CentralEvent::StateUpdate(CentralState::PoweredOff) => report(
                &self.tx,
                RadioError::NoAdapter(format!(
                    "Bluetooth adapter {} was powered off",
                    self.adapter
                )),
            ),
            CentralEvent::StateUpdate(CentralState::PoweredOn) => {
                tracing::info!(adapter = %self.adapter, "adapter powered on; restarting the scan");
                let filter = ScanFilter {
                    services: vec![SERVICE_UUID],
                };
                if let Err(e) = self.central.start_scan(filter).await {
                    report(&self.tx, from_btleplug(&e, "restarting the scan"));
                }
            }
            _ => {}
        }
    }

    async fn properties(&self, id: &PeripheralId) -> Option<btleplug::api::PeripheralProperties> {
        // The device may already be gone (BlueZ drops temporary devices).
        let peripheral = self.central.peripheral(id).await.ok()?;
        peripheral.properties().await.ok().flatten()
    }

    fn sightings(&mut self, service_data: &HashMap<Uuid, Vec<u8>>, rssi: Option<i16>) {
        let at = self.clock.now();
        for s in sightings_from_properties(service_data, rssi, at, &mut self.decoder) {
            // Counts only: what was heard stays out of the logs.
            tracing::debug!(adapter = %self.adapter, ?rssi, "BLE radio: sighting delivered by BlueZ");
            self.decoder.deliver(&self.tx, s);
        }
    }
}
