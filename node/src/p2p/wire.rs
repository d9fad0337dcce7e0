//! Request-response messages of the mesh: the stem hop and catch-up sync.
//! Protobuf (prost), each message framed by a 4-byte big-endian length.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use prost::Message;

use meshtrace_protocol::{AnnouncementId, Day, MAX_ANNOUNCEMENT_BYTES, RETENTION_DAYS};

use super::MAX_SYNC_DAYS;
use super::pool::DayDigest;

/// Largest stem request or response (one announcement plus framing).
pub const MAX_STEM_MESSAGE: usize = MAX_ANNOUNCEMENT_BYTES + 1024;
/// Largest stem response (an accepted flag; no announcement).
pub const MAX_STEM_RESPONSE: usize = 1024;
/// Largest sync request (a fetch of [`MAX_FETCH_IDS`] ids).
pub const MAX_SYNC_REQUEST: usize = 64 * 1024;
/// Largest sync response.
pub const MAX_SYNC_RESPONSE: usize = 8 * 1024 * 1024;
/// Most ids one fetch asks for.
pub const MAX_FETCH_IDS: usize = 256;
/// Most top-level fields in one received message. A real one has at most
/// [`MAX_FETCH_IDS`] announcements, or one digest per retained day; the
/// limit bounds what decoding costs, since each 2-byte repeated field
/// (an empty digest or announcement) becomes a 24–32-byte value: without
/// it a [`MAX_SYNC_RESPONSE`] frame could hold some 30 times its size.
pub(crate) const MAX_MESSAGE_FIELDS: usize = 1024;
/// Most ids taken from one ids-response (one day).
pub const MAX_IDS_PER_DAY: usize = 100_000;

/// A stem hop: an announcement handed to one peer before it is gossiped.
#[derive(Clone, PartialEq, Message)]
pub struct StemRequest {
    /// Hops left after this one (0 = the receiver publishes to gossip).
    #[prost(uint32, tag = "1")]
    pub hops_left: u32,
    /// The encoded announcement.
    #[prost(bytes = "vec", tag = "2")]
    pub announcement: Vec<u8>,
}

/// The stem receiver's answer.
#[derive(Clone, PartialEq, Message)]
pub struct StemResponse {
    /// True when the announcement was valid and taken over.
    #[prost(bool, tag = "1")]
    pub accepted: bool,
}

/// One day's digest on the wire.
#[derive(Clone, PartialEq, Message)]
pub struct DayDigestMsg {
    /// Last day of the covered windows.
    #[prost(uint32, tag = "1")]
    pub day: u32,
    /// Number of announcements.
    #[prost(uint32, tag = "2")]
    pub count: u32,
    /// XOR of their ids (32 bytes).
    #[prost(bytes = "vec", tag = "3")]
    pub xor: Vec<u8>,
}

/// Catch-up requests.
#[derive(Clone, PartialEq, Message)]
pub struct SyncRequest {
    /// What is asked.
    #[prost(oneof = "sync_request::Kind", tags = "1, 2, 3")]
    pub kind: Option<sync_request::Kind>,
}

/// Kinds of [`SyncRequest`].
pub mod sync_request {
    /// What a sync request asks for.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        /// The peer's per-day digests (the value is ignored; always true).
        #[prost(bool, tag = "1")]
        Digests(bool),
        /// The ids the peer holds for one day.
        #[prost(uint32, tag = "2")]
        Ids(u32),
        /// These announcements (concatenated 32-byte ids).
        #[prost(bytes, tag = "3")]
        Fetch(Vec<u8>),
    }
}

/// Catch-up responses.
#[derive(Clone, PartialEq, Message)]
pub struct SyncResponse {
    /// Per-day digests.
    #[prost(message, repeated, tag = "1")]
    pub digests: Vec<DayDigestMsg>,
    /// Concatenated 32-byte ids (answer to `Ids`).
    #[prost(bytes = "vec", tag = "2")]
    pub ids: Vec<u8>,
    /// Announcements (answer to `Fetch`).
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub announcements: Vec<Vec<u8>>,
    /// Why the request was refused (rate limit, malformed), when it was.
    #[prost(string, tag = "4")]
    pub refused: String,
}

async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("message of {len} bytes exceeds the {max}-byte limit"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    bytes: &[u8],
) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "message too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

/// A protobuf varint at the start of `b`, which it advances.
fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Whether `bytes` is a sequence of at most [`MAX_MESSAGE_FIELDS`]
/// well-formed top-level fields (groups, which these messages never use,
/// are refused).
fn fields_within_limit(mut bytes: &[u8]) -> bool {
    let mut fields = 0usize;
    while !bytes.is_empty() {
        fields += 1;
        if fields > MAX_MESSAGE_FIELDS {
            return false;
        }
        let Some(key) = varint(&mut bytes) else {
            return false;
        };
        let skip = match key & 7 {
            0 => match varint(&mut bytes) {
                Some(_) => 0,
                None => return false,
            },
            1 => 8,
            2 => match varint(&mut bytes).and_then(|l| usize::try_from(l).ok()) {
                Some(l) => l,
                None => return false,
            },
            5 => 4,
            _ => return false,
        };
        let Some(rest) = bytes.get(skip..) else {
            return false;
        };
        bytes = rest;
    }
    true
}

fn decode<M: Message + Default>(bytes: &[u8]) -> std::io::Result<M> {
    let invalid = |e: Box<dyn std::error::Error + Send + Sync>| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    };
    if !fields_within_limit(bytes) {
        return Err(invalid(
            format!("malformed, or more than {MAX_MESSAGE_FIELDS} fields").into(),
        ));
    }
    M::decode(bytes).map_err(|e| invalid(e.into()))
}

/// Length of an announcement id on the wire.
const ID_LEN: usize = 32;

/// Length of a gossip message ([`IdMessage`]): id, last day, size.
pub const ID_MESSAGE_LEN: usize = ID_LEN + 4 + 4;

/// What the gossip topic carries (protocol §14.2): an announcement's id,
/// the last day of its certified window (so an expired one is not fetched)
/// and its size in bytes (so a fetch knows what to expect). Exactly
/// [`ID_MESSAGE_LEN`] bytes: `id ‖ last_day (u32, big-endian) ‖ size (u32,
/// big-endian)`. The body is fetched by id with the sync protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMessage {
    /// The announcement's id (SHA-256 of its bytes).
    pub id: AnnouncementId,
    /// Last day of the certified contact window (its expiry follows).
    pub last_day: Day,
    /// Its encoded size in bytes.
    pub size: u32,
}

/// Why a gossip message is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdMessageError {
    /// Not [`ID_MESSAGE_LEN`] bytes (a version-1 node gossips whole
    /// announcements instead).
    #[error(
        "a gossip message of {0} bytes is not a version-2 announcement id ({ID_MESSAGE_LEN} bytes); \
         a version-1 node sends whole announcements"
    )]
    Length(usize),
    /// A size of zero or above the largest announcement.
    #[error("an announcement id message gives an impossible size of {0} bytes")]
    Size(u32),
}

impl IdMessage {
    /// The 40 bytes on the topic.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ID_MESSAGE_LEN);
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&self.last_day.0.to_be_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        out
    }

    /// Decodes a gossip message; never panics.
    pub fn decode(bytes: &[u8]) -> Result<IdMessage, IdMessageError> {
        let b: &[u8; ID_MESSAGE_LEN] = bytes
            .try_into()
            .map_err(|_| IdMessageError::Length(bytes.len()))?;
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&b[..ID_LEN]);
        let mut day = [0u8; 4];
        day.copy_from_slice(&b[ID_LEN..ID_LEN + 4]);
        let mut size = [0u8; 4];
        size.copy_from_slice(&b[ID_LEN + 4..]);
        let size = u32::from_be_bytes(size);
        if size == 0 || size as usize > MAX_ANNOUNCEMENT_BYTES {
            return Err(IdMessageError::Size(size));
        }
        Ok(IdMessage {
            id: AnnouncementId(id),
            last_day: Day(u32::from_be_bytes(day)),
            size,
        })
    }
}

/// The 32-byte ids in `bytes`, at most `max` of them; trailing bytes that do
/// not make a whole id are ignored.
fn ids_in(bytes: &[u8], max: usize) -> Vec<AnnouncementId> {
    bytes
        .chunks_exact(ID_LEN)
        .take(max)
        .filter_map(|c| c.try_into().ok().map(AnnouncementId))
        .collect()
}

/// The ids a received `Fetch` request asks for: its first
/// [`MAX_FETCH_IDS`] whole 32-byte ids.
pub fn fetch_ids(request: &[u8]) -> Vec<AnnouncementId> {
    ids_in(request, MAX_FETCH_IDS)
}

/// The ids of a received ids-response ([`SyncResponse::ids`]): its first
/// [`MAX_IDS_PER_DAY`] whole 32-byte ids.
pub fn response_ids(ids: &[u8]) -> Vec<AnnouncementId> {
    ids_in(ids, MAX_IDS_PER_DAY)
}

/// The digests of a received digests-response worth comparing with ours,
/// `today` being the local day: only days that can hold unexpired
/// announcements (`today - RETENTION_DAYS - 1 ..= today + 1`) with a 32-byte
/// XOR, each day once (its first such digest), at most [`MAX_SYNC_DAYS`] of
/// them. A peer that lists one day many times gets one ids request for it,
/// not one per listing.
pub fn screen_digests(digests: &[DayDigestMsg], today: Day) -> Vec<DayDigest> {
    let oldest = today.minus(RETENTION_DAYS + 1);
    let mut days = std::collections::HashSet::new();
    digests
        .iter()
        .filter(|d| Day(d.day) >= oldest && Day(d.day) <= today.plus(1))
        .filter_map(|d| {
            Some(DayDigest {
                day: Day(d.day),
                count: d.count,
                xor: d.xor.as_slice().try_into().ok()?,
            })
        })
        .filter(|d| days.insert(d.day))
        .take(MAX_SYNC_DAYS)
        .collect()
}

/// Length-prefixed protobuf codec for a request/response pair.
#[derive(Clone, Debug)]
pub struct ProstCodec<Req, Resp> {
    max_request: usize,
    max_response: usize,
    _marker: std::marker::PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> ProstCodec<Req, Resp> {
    /// A codec with these size limits.
    pub fn new(max_request: usize, max_response: usize) -> Self {
        ProstCodec {
            max_request,
            max_response,
            _marker: std::marker::PhantomData,
        }
    }
}

impl<Req, Resp> libp2p::request_response::Codec for ProstCodec<Req, Resp>
where
    Req: Message + Default + Send + 'static,
    Resp: Message + Default + Send + 'static,
{
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Resp;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Req>
    where
        T: AsyncRead + Unpin + Send,
    {
        decode(&read_frame(io, self.max_request).await?)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Resp>
    where
        T: AsyncRead + Unpin + Send,
    {
        decode(&read_frame(io, self.max_response).await?)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Req,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req.encode_to_vec()).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Resp,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res.encode_to_vec()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(day: u32, xor_len: usize) -> DayDigestMsg {
        DayDigestMsg {
            day,
            count: 1,
            xor: vec![7; xor_len],
        }
    }

    #[test]
    fn id_messages_are_exactly_40_bytes_and_round_trip() {
        let m = IdMessage {
            id: AnnouncementId([9; 32]),
            last_day: Day(20_123),
            size: 3_000,
        };
        let bytes = m.encode();
        assert_eq!(bytes.len(), ID_MESSAGE_LEN);
        assert_eq!(&bytes[32..36], &20_123u32.to_be_bytes());
        assert_eq!(&bytes[36..], &3_000u32.to_be_bytes());
        assert_eq!(IdMessage::decode(&bytes), Ok(m));
        for len in [0, 39, 41, 4096] {
            assert_eq!(
                IdMessage::decode(&vec![1; len]),
                Err(IdMessageError::Length(len))
            );
        }
        let mut zero = bytes.clone();
        zero[36..].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(IdMessage::decode(&zero), Err(IdMessageError::Size(0)));
        let mut huge = bytes;
        let too_big = MAX_ANNOUNCEMENT_BYTES as u32 + 1;
        huge[36..].copy_from_slice(&too_big.to_be_bytes());
        assert_eq!(IdMessage::decode(&huge), Err(IdMessageError::Size(too_big)));
    }

    #[test]
    fn ids_are_whole_32_byte_chunks_up_to_the_limit() {
        let mut bytes: Vec<u8> = (0..3u8).flat_map(|i| [i; 32]).collect();
        bytes.extend_from_slice(&[9; 31]);
        let ids = response_ids(&bytes);
        assert_eq!(ids.len(), 3);
        assert_eq!(ids[2], AnnouncementId([2; 32]));
        let many = vec![1u8; 32 * (MAX_FETCH_IDS + 5)];
        assert_eq!(fetch_ids(&many).len(), MAX_FETCH_IDS);
        assert!(fetch_ids(&[0; 31]).is_empty());
    }

    #[test]
    fn digests_outside_the_window_or_malformed_are_dropped() {
        let today = Day(20_000);
        let oldest = today.minus(RETENTION_DAYS + 1).0;
        let got = screen_digests(
            &[
                digest(oldest - 1, 32),
                digest(oldest, 32),
                digest(today.0, 31),
                digest(today.0 + 1, 32),
                digest(today.0 + 2, 32),
            ],
            today,
        );
        let days: Vec<u32> = got.iter().map(|d| d.day.0).collect();
        assert_eq!(days, [oldest, today.0 + 1]);
        let flood: Vec<DayDigestMsg> = (0..100).map(|_| digest(today.0, 32)).collect();
        assert!(screen_digests(&flood, today).len() <= MAX_SYNC_DAYS);
    }

    fn read_sync_response(frame: &[u8]) -> std::io::Result<SyncResponse> {
        use libp2p::request_response::Codec;
        let mut codec = ProstCodec::<SyncRequest, SyncResponse>::new(0, MAX_SYNC_RESPONSE);
        let mut io = futures::io::Cursor::new(frame);
        futures::executor::block_on(
            codec.read_response(&StreamProtocol::new("/meshtrace/t/sync/1"), &mut io),
        )
    }

    fn framed(body: &[u8]) -> Vec<u8> {
        [&(body.len() as u32).to_be_bytes()[..], body].concat()
    }

    /// An invariant of the `wire` fuzz target (reading a frame holds at
    /// most twice its size): a frame of empty digests or announcements
    /// decoded to some 18 times its size, so a MAX_SYNC_RESPONSE frame to
    /// over 100 MB. Messages of too many fields are now refused.
    #[test]
    fn many_tiny_fields_are_refused_before_decoding() {
        for field in [[0x0a, 0x00], [0x1a, 0x00]] {
            let body = field.repeat(MAX_MESSAGE_FIELDS + 1);
            let e = read_sync_response(&framed(&body)).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
            assert!(e.to_string().contains("fields"), "{e}");
            let ok = read_sync_response(&framed(&body[2..])).unwrap();
            assert_eq!(
                ok.digests.len() + ok.announcements.len(),
                MAX_MESSAGE_FIELDS
            );
        }
        // A real fetch response and a real digests response pass.
        let real = SyncResponse {
            announcements: vec![vec![1; 100]; MAX_FETCH_IDS],
            digests: (0..40).map(|d| digest(d, 32)).collect(),
            ids: vec![3; 64],
            refused: String::new(),
        };
        assert_eq!(
            read_sync_response(&framed(&real.encode_to_vec())).unwrap(),
            real
        );
        // Malformed or group-using bodies are refused, never decoded.
        for bad in [
            &[0x0a, 0x05, 0x00][..],
            &[0x0b, 0x0c],
            &[0x80],
            &[0x0d, 1, 2],
        ] {
            assert!(read_sync_response(&framed(bad)).is_err(), "{bad:?}");
        }
    }

    /// Found by the `wire` fuzz target: a response listing one day many
    /// times made the node ask for that day's ids once per listing (up to
    /// MAX_SYNC_DAYS requests), and crowded out the other days.
    #[test]
    fn each_day_is_screened_once() {
        let today = Day(20_000);
        let mut digests = vec![digest(today.0 - 3, 31)];
        digests.extend((0..50).map(|_| digest(today.0, 32)));
        digests.push(digest(today.0 - 3, 32));
        digests.push(digest(today.0 - 1, 32));
        let got = screen_digests(&digests, today);
        let days: Vec<u32> = got.iter().map(|d| d.day.0).collect();
        assert_eq!(days, [today.0, today.0 - 3, today.0 - 1]);
        assert_eq!(got[1].xor, [7; 32]);
    }
}
