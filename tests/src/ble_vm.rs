//! The verdict of `tests/ble-vm/run.sh`: what two `meshtrace run --radio ble`
//! daemons recorded through a real BlueZ stack, and what the HCI trace of
//! the guest's virtual controllers shows about their advertising addresses.
//!
//! The trace is btmon's text output (`btmon -r hci.snoop`). Each HCI event
//! starts with a line like
//!
//! ```text
//! > HCI Event: LE Meta Event (0x3e) plen 43       #72 [hci1] 12.876420
//! ```
//!
//! and its fields follow on indented lines; an advertising report names the
//! advertiser's address (`Address: 2B:4C:…`) and our service data
//! (`Service Data: … (0xfcb7)` followed by `Data[19]: 21…`, or on one line).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use meshtrace_node::protocol::{Decoded, HALF_TAG_LEN, SERVICE_UUID16, decode_service_data};

/// One advertising report carrying our service data, as an HCI trace shows
/// it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdReport {
    /// The controller that received it (`hci0`, `hci1`).
    pub receiver: String,
    /// The advertiser's address as printed (`2B:4C:… (Non-Resolvable)`).
    pub address: String,
    /// Our service data (after the 16-bit UUID).
    pub service_data: Vec<u8>,
}

/// Finds every advertising report with service data under our UUID in
/// btmon's text output.
pub fn parse_btmon(text: &str) -> Vec<AdReport> {
    let uuid = format!("{SERVICE_UUID16:04x}");
    let mut out = Vec::new();
    let mut receiver: Option<String> = None;
    let mut address: Option<String> = None;
    let mut in_our_service_data = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if !line.starts_with(' ') {
            // A new packet: "> HCI Event: … [hci1] 12.3", "< HCI Command: …".
            receiver = if line.starts_with("> HCI Event") {
                bracketed_index(line)
            } else {
                None
            };
            address = None;
            in_our_service_data = false;
            continue;
        }
        if receiver.is_none() {
            continue;
        }
        if let Some(a) = trimmed.strip_prefix("Address: ") {
            address = Some(a.to_owned());
            in_our_service_data = false;
            continue;
        }
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("service data") {
            in_our_service_data = lower.contains(&format!("0x{uuid}"));
            // Some btmon versions print the bytes on the same line.
            if in_our_service_data && let Some(hex) = trailing_hex(trimmed) {
                push(&mut out, &receiver, &address, hex);
                in_our_service_data = false;
            }
            continue;
        }
        if in_our_service_data && lower.starts_with("data") {
            if let Some(hex) = trailing_hex(trimmed) {
                push(&mut out, &receiver, &address, hex);
            }
            in_our_service_data = false;
        }
    }
    out
}

fn push(out: &mut Vec<AdReport>, receiver: &Option<String>, address: &Option<String>, d: Vec<u8>) {
    if let (Some(r), Some(a)) = (receiver, address) {
        out.push(AdReport {
            receiver: r.clone(),
            address: a.clone(),
            service_data: d,
        });
    }
}

/// `[hci1]` in a packet header → `hci1`.
fn bracketed_index(line: &str) -> Option<String> {
    let start = line.find("[hci")?;
    let end = line[start..].find(']')? + start;
    Some(line[start + 1..end].to_owned())
}

/// The hex bytes after the last `:` of a line, if that is all hex.
fn trailing_hex(line: &str) -> Option<Vec<u8>> {
    let tail = line.rsplit(':').next()?.trim();
    if tail.is_empty() || tail.len() % 2 != 0 {
        return None;
    }
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(tail.as_bytes())
        .ok()
}

/// What the trace shows about one receiving controller.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AirView {
    /// Reports with our service data.
    pub reports: usize,
    /// Reports whose service data did not decode as a frame or half.
    pub undecodable: usize,
    /// For each rotating ID heard (by its binding tag), the addresses it
    /// came from.
    pub addresses_by_id: BTreeMap<[u8; HALF_TAG_LEN], BTreeSet<String>>,
}

/// Groups the reports by receiving controller, and each controller's by
/// rotating ID (the legacy halves' binding tag, or the tag computed from a
/// whole frame).
pub fn air_views(reports: &[AdReport]) -> BTreeMap<String, AirView> {
    let mut views: BTreeMap<String, AirView> = BTreeMap::new();
    for r in reports {
        let v = views.entry(r.receiver.clone()).or_default();
        v.reports += 1;
        let tag = match decode_service_data(&r.service_data) {
            Ok(Decoded::Half(h)) => h.tag,
            Ok(Decoded::Full(f)) => meshtrace_node::protocol::half_tag(&f.id),
            Err(_) => {
                v.undecodable += 1;
                continue;
            }
        };
        v.addresses_by_id
            .entry(tag)
            .or_default()
            .insert(r.address.clone());
    }
    views
}

/// Why the address check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressProblem(pub String);

impl fmt::Display for AddressProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks one controller's view: at least `min_ids` rotating IDs heard, and
/// no advertising address carried two of them (a rotation changes the
/// address together with the ID).
pub fn check_addresses(receiver: &str, v: &AirView, min_ids: usize) -> Result<(), AddressProblem> {
    if v.addresses_by_id.len() < min_ids {
        return Err(AddressProblem(format!(
            "{receiver} heard {} rotating ID(s) on the air, expected at least {min_ids}",
            v.addresses_by_id.len()
        )));
    }
    let mut owner: BTreeMap<&str, [u8; HALF_TAG_LEN]> = BTreeMap::new();
    for (tag, addresses) in &v.addresses_by_id {
        for a in addresses {
            if let Some(other) = owner.insert(a, *tag) {
                return Err(AddressProblem(format!(
                    "{receiver}: address {a} carried two rotating IDs (tags {} and {}): the \
                     address did not change with the ID",
                    data_encoding::HEXLOWER.encode(&other),
                    data_encoding::HEXLOWER.encode(tag)
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshtrace_node::protocol::{Frame, RotatingId};

    fn half_hex(id_byte: u8, second: bool) -> String {
        let frame = Frame {
            id: RotatingId([id_byte; 32]),
        };
        let (a, b) = frame.encode_legacy();
        data_encoding::HEXLOWER.encode(&if second { b } else { a })
    }

    /// One report as btmon 5.82 printed it in the guest (an extended report
    /// of a legacy PDU), with the receiver, address and data replaced.
    fn report(hci: &str, addr: &str, data: &str) -> String {
        format!(
            "> HCI Event: LE Meta Event (0x3e) plen 54                    #7 [{hci}] 2.801335\n\
             \x20     LE Extended Advertising Report (0x0d)\n\
             \x20       Num reports: 1\n\
             \x20       Entry 0\n\
             \x20         Event type: 0x0010\n\
             \x20           Props: 0x0010\n\
             \x20             Use legacy advertising PDUs\n\
             \x20           Data status: \x1b[0;32mComplete\x1b[0m\n\
             \x20         Legacy PDU Type: ADV_NONCONN_IND (0x0010)\n\
             \x20         Address type: Random (0x01)\n\
             \x20         Address: {addr} (Non-Resolvable)\n\
             \x20         Primary PHY: LE 1M\n\
             \x20         Secondary PHY: LE 1M\n\
             \x20         SID: 0x00\n\
             \x20         TX power: 127 dBm\n\
             \x20         RSSI: not available (0x7f)\n\
             \x20         Periodic advertising interval: 0.00 msec (0x0000)\n\
             \x20         Direct address type: Public (0x00)\n\
             \x20         Direct address: 00:00:00:00:00:00 (OUI 00-00-00)\n\
             \x20         Data length: 0x1b\n\
             \x20       03 03 b7 fc 16 16 b7 fc 11 51 63 29 99 cf 66 eb  .........Qc)..f.\n\
             \x20       17 57 d5 a0 7d dc b1 63 bc 98 ff                 .W..}}..c...     \n\
             \x20       16-bit Service UUIDs (complete): 1 entry\n\
             \x20         Unknown (0xfcb7)\n\
             \x20       Service Data: Unknown (0xfcb7)\n\
             \x20         Data[19]: {data}\n\
             @ MGMT Event: Device Found (0x0012) plen 42            {{0x0001}} [{hci}] 2.802247\n\
             \x20       LE Address: 99:99:99:99:99:99 (Non-Resolvable)\n\
             \x20       Service Data: Unknown (0xfcb7)\n\
             \x20         Data[19]: {data}\n"
        )
    }

    #[test]
    fn reports_are_attributed_to_receiver_address_and_id() {
        let text = [
            report("hci1", "11:11:11:11:11:11", &half_hex(1, false)),
            "< HCI Command: LE Set Extended Adv.. (0x08|0x0037) plen 32  #11 [hci0] 2.799679\n"
                .into(),
            report("hci1", "22:22:22:22:22:22", &half_hex(1, true)),
            report("hci0", "33:33:33:33:33:33", &half_hex(2, false)),
            report("hci1", "44:44:44:44:44:44", &half_hex(3, false)),
        ]
        .concat();
        let reports = parse_btmon(&text);
        assert_eq!(reports.len(), 4);
        assert_eq!(reports[0].receiver, "hci1");
        assert_eq!(reports[0].address, "11:11:11:11:11:11 (Non-Resolvable)");
        let views = air_views(&reports);
        assert_eq!(views["hci1"].addresses_by_id.len(), 2);
        assert_eq!(views["hci0"].addresses_by_id.len(), 1);
        assert!(check_addresses("hci1", &views["hci1"], 2).is_ok());
        assert!(check_addresses("hci0", &views["hci0"], 2).is_err());
    }

    #[test]
    fn an_address_reused_across_ids_is_caught() {
        let text = [
            report("hci1", "11:11:11:11:11:11", &half_hex(1, false)),
            report("hci1", "11:11:11:11:11:11", &half_hex(3, false)),
        ]
        .concat();
        let views = air_views(&parse_btmon(&text));
        let e = check_addresses("hci1", &views["hci1"], 2).unwrap_err();
        assert!(e.0.contains("did not change"), "{e}");
    }

    #[test]
    fn other_service_data_and_commands_are_ignored() {
        // Another service's data, and our own data in the command that sets
        // it (sent, not received).
        let text = report("hci1", "55:55:55:55:55:55", "0102").replace("0xfcb7", "0xfe2c")
            + "< HCI Command: LE Set Extended Adv.. (0x08|0x0037) plen 32  #11 [hci0] 2.799679\n\
               \x20       Handle: 0x01\n\
               \x20       Service Data: Unknown (0xfcb7)\n\
               \x20         Data[19]: 1151632999cf66eb1757d5a07ddcb163bc98ff\n";
        assert!(parse_btmon(&text).is_empty());
    }
}
