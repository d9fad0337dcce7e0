//! What BlueZ's and btleplug's errors mean for the user: each becomes a
//! [`RadioError`] whose text says what to check.

use super::RadioError;

/// Maps a bluer (BlueZ) error; `what` names the operation.
pub(super) fn from_bluer(e: &bluer::Error, what: &str) -> RadioError {
    use bluer::{ErrorKind as K, InternalErrorKind as I};
    let text = e.to_string();
    match &e.kind {
        K::NotAuthorized
        | K::NotPermitted
        | K::AuthenticationRejected
        | K::AuthenticationFailed => {
            RadioError::PermissionDenied(format!("BlueZ refused access while {what}: {text}"))
        }
        K::Internal(I::DBusConnectionLost | I::Io(_) | I::JoinError) => {
            RadioError::NoBluetoothService(format!(
                "cannot reach BlueZ over the D-Bus system bus while {what}: {text} — is the \
                 system D-Bus and bluetoothd running?"
            ))
        }
        K::NotFound | K::DoesNotExist | K::InvalidName(_) => {
            RadioError::NoAdapter(format!("BlueZ reported {text} while {what}"))
        }
        K::NotReady => RadioError::NoAdapter(format!(
            "the Bluetooth adapter is not ready (powered off?) while {what}: {text}"
        )),
        _ => classify_dbus_text(&text, what),
    }
}

/// Maps a btleplug error, whose D-Bus details survive only in its text.
pub(super) fn from_btleplug(e: &btleplug::Error, what: &str) -> RadioError {
    match e {
        btleplug::Error::PermissionDenied => RadioError::PermissionDenied(format!(
            "BlueZ refused the scanner (btleplug) access while {what}"
        )),
        btleplug::Error::NoAdapterAvailable => RadioError::NoAdapter(format!(
            "the scanner (btleplug) found no Bluetooth adapter while {what}"
        )),
        // The Debug form keeps the D-Bus error name (e.g.
        // org.freedesktop.DBus.Error.ServiceUnknown) that Display drops.
        other => classify_dbus_text(&format!("{other} [{other:?}]"), what),
    }
}

/// Classifies a D-Bus error by its name and message.
fn classify_dbus_text(text: &str, what: &str) -> RadioError {
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    if has(&[
        "AccessDenied",
        "Permission denied",
        "NotPermitted",
        "NotAuthorized",
        "AuthFailed",
    ]) {
        RadioError::PermissionDenied(format!(
            "the system D-Bus policy does not let this user use BlueZ (while {what}): {text} — run as \
             a user allowed by /etc/dbus-1/system.d/bluetooth.conf (e.g. in the `bluetooth` \
             group)"
        ))
    } else if has(&[
        "ServiceUnknown",
        "NameHasNoOwner",
        "org.bluez was not provided",
    ]) {
        RadioError::NoBluetoothService(format!(
            "BlueZ (org.bluez) is not on the D-Bus system bus (while {what}): {text} — is bluetoothd \
             running?"
        ))
    } else if has(&[
        "FileNotFound",
        "NoServer",
        "Disconnected",
        "system_bus_socket",
        "NoReply",
        "Timeout",
        "TimedOut",
        "connection lost",
    ]) {
        RadioError::NoBluetoothService(format!(
            "cannot reach BlueZ over the D-Bus system bus while {what}: {text} — is the system D-Bus \
             (dbus-daemon) running, and bluetoothd?"
        ))
    } else if has(&[
        "No Bluetooth adapters",
        "NoAdapter",
        "DoesNotExist",
        "UnknownObject",
    ]) {
        RadioError::NoAdapter(format!("BlueZ reported {text} while {what}"))
    } else {
        RadioError::Other(format!("BlueZ error while {what}: {text}"))
    }
}

/// Whether BlueZ refused an advertisement because of its content (too long,
/// unsupported), rather than for lack of instances, access or a daemon.
pub(super) fn payload_refused(e: &bluer::Error) -> bool {
    use bluer::ErrorKind as K;
    match e.kind {
        K::InvalidArguments | K::InvalidLength | K::NotSupported => true,
        K::Failed => !e.message.contains("Maximum"),
        _ => false,
    }
}
