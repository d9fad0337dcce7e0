//! Byte counts from the transport: every connection's muxer is wrapped so
//! that each substream counts what it reads and writes (after noise and
//! yamux, or QUIC's own framing: the same layer libp2p's bandwidth metrics
//! measured). Both TCP and QUIC connections are counted; relayed circuits
//! run inside a substream of the connection to the relay, so they count
//! there.

use std::io::{self, IoSlice, IoSliceMut};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerBox, StreamMuxerEvent};

/// Bytes received and sent on all connections, shared by the muxers.
#[derive(Clone, Debug, Default)]
pub(crate) struct ByteCounters {
    inbound: Arc<AtomicU64>,
    outbound: Arc<AtomicU64>,
}

impl ByteCounters {
    /// Bytes received so far.
    pub(crate) fn inbound(&self) -> u64 {
        self.inbound.load(Ordering::Relaxed)
    }

    /// Bytes sent so far.
    pub(crate) fn outbound(&self) -> u64 {
        self.outbound.load(Ordering::Relaxed)
    }

    /// Wraps a connection's muxer so its substreams count here.
    pub(crate) fn wrap(&self, muxer: StreamMuxerBox) -> CountingMuxer {
        CountingMuxer {
            inner: muxer,
            counters: self.clone(),
        }
    }
}

/// A muxer whose substreams count their bytes.
pub(crate) struct CountingMuxer {
    inner: StreamMuxerBox,
    counters: ByteCounters,
}

impl StreamMuxer for CountingMuxer {
    type Substream = CountingStream<<StreamMuxerBox as StreamMuxer>::Substream>;
    type Error = io::Error;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        let s = ready!(Pin::new(&mut this.inner).poll_inbound(cx))?;
        Poll::Ready(Ok(CountingStream {
            inner: s,
            counters: this.counters.clone(),
        }))
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        let s = ready!(Pin::new(&mut this.inner).poll_outbound(cx))?;
        Poll::Ready(Ok(CountingStream {
            inner: s,
            counters: this.counters.clone(),
        }))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}

/// A substream that counts what passes through it.
pub(crate) struct CountingStream<S> {
    inner: S,
    counters: ByteCounters,
}

fn count(counter: &AtomicU64, r: &Poll<io::Result<usize>>) {
    if let Poll::Ready(Ok(n)) = r {
        counter.fetch_add(*n as u64, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CountingStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        count(&this.counters.inbound, &r);
        r
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_read_vectored(cx, bufs);
        count(&this.counters.inbound, &r);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountingStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        count(&this.counters.outbound, &r);
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        count(&this.counters.outbound, &r);
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}
