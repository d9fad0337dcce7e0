//! Request-response messages of the mesh: the stem hop and catch-up sync.
//! Protobuf (prost), each message framed by a 4-byte big-endian length.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use prost::Message;

use meshtrace_protocol::MAX_ANNOUNCEMENT_BYTES;

/// Largest stem request or response (one announcement plus framing).
pub const MAX_STEM_MESSAGE: usize = MAX_ANNOUNCEMENT_BYTES + 1024;
/// Largest sync request (a fetch of [`MAX_FETCH_IDS`] ids).
pub const MAX_SYNC_REQUEST: usize = 64 * 1024;
/// Largest sync response.
pub const MAX_SYNC_RESPONSE: usize = 8 * 1024 * 1024;
/// Most ids one fetch asks for.
pub const MAX_FETCH_IDS: usize = 256;
/// Most ids one ids-response lists (per day).
pub(crate) const MAX_IDS_PER_DAY: usize = 100_000;

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

fn decode<M: Message + Default>(bytes: &[u8]) -> std::io::Result<M> {
    M::decode(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
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
