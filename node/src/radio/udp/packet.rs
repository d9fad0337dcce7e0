//! The packet format of the simulated air (the layout is in the `udp`
//! module's docs): encoding, and a decoder that never panics.

use meshtrace_protocol::MAX_ADVERTISING_DATA_LEN;

use crate::radio::model::Position;

/// First bytes of every packet.
pub const PACKET_MAGIC: [u8; 6] = *b"MTAIR2";
/// Bytes before the payload.
pub const HEADER_LEN: usize = 37;
/// Largest advertising payload a packet carries (the protocol's limit).
pub const MAX_PAYLOAD_LEN: usize = MAX_ADVERTISING_DATA_LEN;
/// Largest packet accepted; anything longer is dropped as oversized.
pub const MAX_PACKET_LEN: usize = HEADER_LEN + MAX_PAYLOAD_LEN;

const OFF_SENDER: usize = 6;
const OFF_X: usize = 14;
const OFF_Y: usize = 22;
const OFF_TX_OFFSET: usize = 30;
const OFF_TX_POWER: usize = 34;
const OFF_LEN: usize = 35;

/// One packet on the simulated air (see the module docs for the layout).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AirPacket {
    /// The sending radio.
    pub sender_id: u64,
    /// The sender's position when it sent the packet.
    pub position: Position,
    /// The sender's TX offset (dB).
    pub tx_offset_db: f32,
    /// The power the sender transmits at (dBm): simulated physics, like the
    /// position. The frame in the payload carries no TX power.
    pub tx_power_dbm: i8,
    /// One advertising payload (AD structures).
    pub payload: Vec<u8>,
}

/// Why a packet was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PacketError {
    /// Fewer bytes than the header.
    #[error("packet of {0} bytes is shorter than the {HEADER_LEN}-byte header")]
    Short(usize),
    /// The packet does not start with [`PACKET_MAGIC`].
    #[error("packet does not start with the udp-sim magic")]
    BadMagic,
    /// The packet or its declared payload exceeds the limits.
    #[error("packet of {0} bytes (or its payload) exceeds the limit")]
    Oversized(usize),
    /// The payload is shorter than its declared length.
    #[error("payload truncated: {declared} bytes declared, {got} present")]
    Truncated {
        /// Declared payload length.
        declared: usize,
        /// Bytes present after the header.
        got: usize,
    },
    /// Bytes follow the payload.
    #[error("{0} bytes after the payload")]
    TrailingBytes(usize),
    /// A position or offset is NaN or infinite.
    #[error("non-finite position or offset")]
    NonFinite,
}

impl AirPacket {
    /// The packet's bytes. Fails when the payload exceeds
    /// [`MAX_PAYLOAD_LEN`] or a number is not finite.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, PacketError> {
        if self.payload.len() > MAX_PAYLOAD_LEN {
            return Err(PacketError::Oversized(HEADER_LEN + self.payload.len()));
        }
        if !(self.position.x.is_finite()
            && self.position.y.is_finite()
            && self.tx_offset_db.is_finite())
        {
            return Err(PacketError::NonFinite);
        }
        let len = u16::try_from(self.payload.len())
            .map_err(|_| PacketError::Oversized(HEADER_LEN + self.payload.len()))?;
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.extend_from_slice(&PACKET_MAGIC);
        out.extend_from_slice(&self.sender_id.to_be_bytes());
        out.extend_from_slice(&self.position.x.to_be_bytes());
        out.extend_from_slice(&self.position.y.to_be_bytes());
        out.extend_from_slice(&self.tx_offset_db.to_be_bytes());
        out.extend_from_slice(&self.tx_power_dbm.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.payload);
        Ok(out)
    }

    /// Parses a packet; never reads past `bytes` and never allocates more
    /// than [`MAX_PAYLOAD_LEN`].
    pub(crate) fn decode(bytes: &[u8]) -> Result<AirPacket, PacketError> {
        if bytes.len() > MAX_PACKET_LEN {
            return Err(PacketError::Oversized(bytes.len()));
        }
        let Some((header, payload)) = bytes.split_at_checked(HEADER_LEN) else {
            return Err(PacketError::Short(bytes.len()));
        };
        if header[..OFF_SENDER] != PACKET_MAGIC {
            return Err(PacketError::BadMagic);
        }
        let be8 = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[at..at + 8]);
            b
        };
        let sender_id = u64::from_be_bytes(be8(OFF_SENDER));
        let x = f64::from_be_bytes(be8(OFF_X));
        let y = f64::from_be_bytes(be8(OFF_Y));
        let tx_offset_db = f32::from_be_bytes([
            header[OFF_TX_OFFSET],
            header[OFF_TX_OFFSET + 1],
            header[OFF_TX_OFFSET + 2],
            header[OFF_TX_OFFSET + 3],
        ]);
        let tx_power_dbm = i8::from_be_bytes([header[OFF_TX_POWER]]);
        let declared = usize::from(u16::from_be_bytes([header[OFF_LEN], header[OFF_LEN + 1]]));
        if declared > MAX_PAYLOAD_LEN {
            return Err(PacketError::Oversized(HEADER_LEN + declared));
        }
        if payload.len() < declared {
            return Err(PacketError::Truncated {
                declared,
                got: payload.len(),
            });
        }
        if payload.len() > declared {
            return Err(PacketError::TrailingBytes(payload.len() - declared));
        }
        if !(x.is_finite() && y.is_finite() && tx_offset_db.is_finite()) {
            return Err(PacketError::NonFinite);
        }
        Ok(AirPacket {
            sender_id,
            position: Position { x, y },
            tx_offset_db,
            tx_power_dbm,
            payload: payload.to_vec(),
        })
    }
}
