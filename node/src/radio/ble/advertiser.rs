//! The advertising task: registers the current frame with BlueZ (see the
//! `ble` module's docs for the BlueZ facts it relies on).

use super::errors::{from_bluer, payload_refused};
use super::*;

/// The advertising task: registers the current frame with BlueZ.
pub(super) struct Advertiser {
    pub(super) _session: bluer::Session,
    pub(super) adapter: bluer::Adapter,
    pub(super) carrier: Carrier,
    /// The carrier was chosen automatically (may fall back to legacy).
    pub(super) auto: bool,
    pub(super) interval: Duration,
    /// The TX power requested from the controller, when it can set one.
    pub(super) tx_power: Option<i16>,
    pub(super) handles: Vec<bluer::adv::AdvertisementHandle>,
    pub(super) counters: Arc<RadioCounters>,
    pub(super) tx: mpsc::Sender<RadioEvent>,
}

impl Advertiser {
    pub(super) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        while let Some(mut command) = commands.recv().await {
            // Only the newest frame matters.
            while let Ok(next) = commands.try_recv() {
                command = next;
            }
            let Command::Advertise(frame) = command;
            if let Err(e) = self.rotate(&frame).await {
                report(&self.tx, e);
            }
        }
        // The radio was dropped: dropping the handles unregisters them.
        self.handles.clear();
    }

    async fn rotate(&mut self, frame: &Frame) -> Result<(), RadioError> {
        self.release().await;
        let tx_power = self.tx_power;
        let ads = advertisements(frame, self.carrier, self.interval, tx_power);
        let result = match self.register_all(ads).await {
            Err(e) if self.auto && self.carrier == Carrier::Extended && payload_refused(&e) => {
                tracing::warn!(
                    error = %e,
                    "BlueZ refused the extended advertisement; falling back to the legacy carrier"
                );
                self.carrier = Carrier::Legacy;
                self.release().await;
                let ads = advertisements(frame, Carrier::Legacy, self.interval, tx_power);
                self.register_all(ads).await
            }
            other => other,
        };
        if result.is_ok() {
            tracing::debug!(
                adapter = %self.adapter.name(),
                carrier = ?self.carrier,
                advertisements = self.handles.len(),
                "BLE radio: new rotating ID registered with BlueZ"
            );
        }
        result.map_err(|e| match from_bluer(&e, "registering an advertisement") {
            RadioError::Other(m) => RadioError::Other(format!(
                "{m} (adapter {}, {:?} carrier)",
                self.adapter.name(),
                self.carrier
            )),
            other => other,
        })
    }

    /// Drops the current advertisements and waits (bounded) until BlueZ has
    /// released their instances.
    async fn release(&mut self) {
        let dropped = self.handles.len();
        if dropped == 0 {
            return;
        }
        let before = self.adapter.active_advertising_instances().await.ok();
        self.handles.clear();
        let Some(before) = before else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        };
        let target = usize::from(before).saturating_sub(dropped);
        let wait = async {
            loop {
                match self.adapter.active_advertising_instances().await {
                    Ok(n) if usize::from(n) <= target => break,
                    Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    Err(_) => break,
                }
            }
        };
        if tokio::time::timeout(UNREGISTER_WAIT, wait).await.is_err() {
            tracing::debug!("BLE radio: BlueZ is slow to release advertising instances");
        }
    }

    async fn register_all(
        &mut self,
        ads: Vec<bluer::adv::Advertisement>,
    ) -> Result<(), bluer::Error> {
        for ad in ads {
            let handle = self.register(ad).await?;
            self.handles.push(handle);
            self.counters.count_advertised();
        }
        Ok(())
    }

    /// Registers one advertisement, retrying transient refusals (such as
    /// "Maximum advertisements reached" while BlueZ releases old ones).
    async fn register(
        &self,
        ad: bluer::adv::Advertisement,
    ) -> Result<bluer::adv::AdvertisementHandle, bluer::Error> {
        use bluer::ErrorKind as K;
        let mut attempt = 1;
        loop {
            match self.adapter.advertise(ad.clone()).await {
                Ok(handle) => return Ok(handle),
                Err(e) => {
                    let permanent = matches!(
                        e.kind,
                        K::InvalidArguments
                            | K::InvalidLength
                            | K::NotSupported
                            | K::NotAuthorized
                            | K::NotPermitted
                    );
                    if permanent || attempt >= REGISTER_ATTEMPTS {
                        return Err(e);
                    }
                    tracing::debug!(error = %e, attempt, "BLE radio: advertisement refused; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    attempt += 1;
                }
            }
        }
    }
}
