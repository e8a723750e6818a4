//! One connection's clocks: the socket wrapper that closes idle, slow-headed
//! and stalled connections, and the body wrappers that tell it when a request
//! is in flight.
//!
//! A connection is in one of three phases, judged at every read of the socket:
//!
//! | phase | when | closed after |
//! |---|---|---|
//! | idle | no request in flight, no byte of a next request received | `idle_timeout` since the last request ended (or since accept) |
//! | head | no request in flight, some bytes of the next request received | `header_read_timeout` since its first byte, however the rest trickles in |
//! | busy | a request is being answered | never for being busy; a request body that stops ([`ProgressBody`]) or a client that stops taking the response (the socket's writes) is cut after `body_timeout` without progress |
//!
//! A request is in flight from the moment hyper hands it to the service until
//! its response body is finished or dropped ([`InFlight`]); HTTP/2 may have
//! several at once.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use super::Limits;

/// Why the server ended a connection (for the metrics and the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CloseReason {
    /// The client closed it, or the exchange ended normally.
    Normal = 0,
    /// No request for `idle_timeout`.
    Idle = 1,
    /// A request head took longer than `header_read_timeout`.
    HeaderTimeout = 2,
    /// A request body made no progress for `body_timeout`.
    BodyTimeout = 3,
    /// The client took none of the response for `body_timeout`.
    SendTimeout = 4,
    /// Closed to make room for a new connection at the connection cap.
    Evicted = 5,
}

impl CloseReason {
    /// Every reason, in label order.
    pub const ALL: [CloseReason; 6] = [
        Self::Normal,
        Self::Idle,
        Self::HeaderTimeout,
        Self::BodyTimeout,
        Self::SendTimeout,
        Self::Evicted,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Idle => "idle_timeout",
            Self::HeaderTimeout => "header_timeout",
            Self::BodyTimeout => "body_timeout",
            Self::SendTimeout => "send_timeout",
            Self::Evicted => "evicted",
        }
    }

    fn from_u8(value: u8) -> Self {
        Self::ALL
            .get(usize::from(value))
            .copied()
            .unwrap_or(Self::Normal)
    }
}

/// Marks "busy" in [`Conn::evictable_since`].
const BUSY: u64 = u64::MAX;

/// What the socket wrapper, the service and the accept loop share about one
/// connection.
pub struct Conn {
    /// The server's clock origin: times below are milliseconds since it.
    epoch: Instant,
    /// Requests being answered now.
    in_flight: AtomicUsize,
    /// Requests started so far: the socket wrapper notices a request that
    /// began and ended between two of its reads.
    started: AtomicU64,
    /// When the last request ended (ms since `epoch`; accept time at first).
    ended_at: AtomicU64,
    /// Since when the connection could be evicted (ms since `epoch`), or
    /// [`BUSY`] while a request is in flight.
    evictable_since: AtomicU64,
    /// Set once a request arrived over HTTP/2 (whose idle connections carry
    /// control frames that are not a request's head).
    http2: std::sync::atomic::AtomicBool,
    /// The reader's waker, woken when the last request ends so that the
    /// idle clock starts even when no byte arrives.
    read_waker: Mutex<Option<Waker>>,
    /// Why the connection was ended by the server, if it was.
    reason: AtomicU8,
    /// Notified to close the connection at once (eviction).
    pub evict: Notify,
}

impl Conn {
    /// A connection accepted now.
    pub fn new(epoch: Instant) -> Self {
        let now = millis_since(epoch, Instant::now());
        Self {
            epoch,
            in_flight: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            ended_at: AtomicU64::new(now),
            evictable_since: AtomicU64::new(now),
            http2: std::sync::atomic::AtomicBool::new(false),
            read_waker: Mutex::new(None),
            reason: AtomicU8::new(CloseReason::Normal as u8),
            evict: Notify::new(),
        }
    }

    /// A request arrived: the connection is busy until its [`InFlight`] drops.
    pub fn begin(self: &Arc<Self>, http2: bool) -> InFlight {
        if http2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.started.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.evictable_since.store(BUSY, Ordering::Release);
        InFlight(Arc::clone(self))
    }

    /// Since when the connection has been idle or reading a head (ms since
    /// the epoch); `None` while a request is in flight.
    pub fn evictable_since(&self) -> Option<u64> {
        let since = self.evictable_since.load(Ordering::Acquire);
        (since != BUSY).then_some(since)
    }

    /// Records why the server ends the connection (the first reason wins).
    pub fn set_reason(&self, reason: CloseReason) {
        let _ = self.reason.compare_exchange(
            CloseReason::Normal as u8,
            reason as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Why the connection ended.
    pub fn reason(&self) -> CloseReason {
        CloseReason::from_u8(self.reason.load(Ordering::Acquire))
    }

    fn end(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            let now = millis_since(self.epoch, Instant::now());
            self.ended_at.store(now, Ordering::Release);
            // A request that began meanwhile has stored BUSY; keep it.
            let _ = self.evictable_since.compare_exchange(
                BUSY,
                now,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            if self.in_flight.load(Ordering::Acquire) > 0 {
                self.evictable_since.store(BUSY, Ordering::Release);
            }
            // HTTP/1: the request ends inside the connection's own task,
            // and hyper reads the socket again before it waits for the next
            // request, which starts the idle clock; waking the task from
            // inside itself would only poll it once more and, with the
            // scheduler handing the wake to another worker, cost a futex
            // call every few requests. HTTP/2 streams end in tasks of their
            // own, so the reader is woken.
            // (tests/api/connections.rs: a keep-alive connection is closed
            // when idle after a response longer than the idle timeout.)
            if !self.http2.load(Ordering::Relaxed) {
                return;
            }
            let waker = self
                .read_waker
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    fn instant(&self, millis: u64) -> Instant {
        self.epoch + Duration::from_millis(millis)
    }
}

fn millis_since(epoch: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(epoch).as_millis()).unwrap_or(BUSY - 1)
}

/// A request in flight; dropping it ends the request (response finished,
/// or the handler's future dropped).
pub struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// The phase the reader last saw (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request; since when.
    Idle(Instant),
    /// Reading a request head; since its first byte.
    Head(Instant),
    /// A request in flight.
    Busy,
}

/// The socket of one connection, with its idle, head and send clocks.
pub struct Watched<S> {
    inner: S,
    conn: Arc<Conn>,
    limits: Limits,
    /// Requests started as of the last read.
    seen_started: u64,
    phase: Phase,
    read_timer: Option<Pin<Box<Sleep>>>,
    /// Since when a write has been waiting for the client to take bytes.
    write_waiting: Option<Instant>,
    write_timer: Option<Pin<Box<Sleep>>>,
}

impl<S> Watched<S> {
    /// Wraps a freshly accepted socket.
    pub fn new(inner: S, conn: Arc<Conn>, limits: Limits) -> Self {
        let accepted = conn.instant(conn.ended_at.load(Ordering::Acquire));
        Self {
            inner,
            conn,
            limits,
            seen_started: 0,
            phase: Phase::Idle(accepted),
            read_timer: None,
            write_waiting: None,
            write_timer: None,
        }
    }

    /// The phase now, from what the service reported since the last read.
    fn current_phase(&mut self) -> Phase {
        let started = self.conn.started.load(Ordering::Acquire);
        let busy = self.conn.in_flight.load(Ordering::Acquire) > 0;
        if busy {
            self.seen_started = started;
            self.phase = Phase::Busy;
        } else if started != self.seen_started || self.phase == Phase::Busy {
            // A request ended since the last read: idle since it ended.
            self.seen_started = started;
            let ended = self
                .conn
                .instant(self.conn.ended_at.load(Ordering::Acquire));
            self.phase = Phase::Idle(ended);
        }
        self.phase
    }

    /// When the read side times out in `phase`, and as what.
    fn read_deadline(&self, phase: Phase) -> Option<(Instant, CloseReason)> {
        match phase {
            Phase::Idle(since) => Some((since + self.limits.idle_timeout, CloseReason::Idle)),
            Phase::Head(since) => Some((
                since + self.limits.header_read_timeout,
                CloseReason::HeaderTimeout,
            )),
            Phase::Busy => None,
        }
    }

    /// Keeps the reader's waker for [`Conn::end`], which wakes it on HTTP/2
    /// only: an HTTP/1 read takes no lock for it. (HTTP/2 is known from the
    /// first request, which begins in this task before its next read.)
    fn remember_waker(&self, cx: &Context<'_>) {
        if !self.conn.http2.load(Ordering::Relaxed) {
            return;
        }
        let mut slot = self
            .conn
            .read_waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
    }

    /// Polls the write timer after a write that could not proceed.
    fn poll_write_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let since = *self.write_waiting.get_or_insert_with(Instant::now);
        let deadline = since + self.limits.body_timeout;
        let timer = self
            .write_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(poll_deadline(timer, deadline, cx));
        self.conn.set_reason(CloseReason::SendTimeout);
        Poll::Ready(timed_out("the client took no response bytes in time"))
    }
}

/// Polls `timer` towards `deadline`, moving the timer only when it must:
/// earlier at once, later only once the timer has fired. A keep-alive
/// connection pushes its idle deadline back with every request; resetting
/// the timer each time would cost a timer-wheel update per request, while a
/// timer left at an older, earlier deadline fires at most once per timeout
/// and is then moved to the real one.
fn poll_deadline(timer: &mut Pin<Box<Sleep>>, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
    if timer.deadline() > deadline {
        timer.as_mut().reset(deadline);
    }
    loop {
        ready!(timer.as_mut().poll(cx));
        if timer.deadline() >= deadline {
            return Poll::Ready(());
        }
        timer.as_mut().reset(deadline);
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_owned())
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let phase = this.current_phase();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before
                    && let Phase::Idle(_) = phase
                {
                    // Control frames of an idle HTTP/2 connection are not a
                    // request head: they only show the client is there.
                    this.phase = if this.conn.http2.load(Ordering::Relaxed) {
                        Phase::Idle(Instant::now())
                    } else {
                        Phase::Head(Instant::now())
                    };
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                this.remember_waker(cx);
                let Some((deadline, reason)) = this.read_deadline(phase) else {
                    return Poll::Pending;
                };
                let timer = this
                    .read_timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                ready!(poll_deadline(timer, deadline, cx));
                this.conn.set_reason(reason);
                Poll::Ready(Err(timed_out(match reason {
                    CloseReason::Idle => "the connection was idle too long",
                    _ => "the request head took too long",
                })))
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Pending => this.poll_write_stall(cx).map(Err),
            ready => {
                this.write_waiting = None;
                ready
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.poll_write_stall(cx).map(Err),
            ready => {
                this.write_waiting = None;
                ready
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.poll_write_stall(cx).map(Err),
            ready => {
                this.write_waiting = None;
                ready
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that fails when the client sends nothing for
/// `body_timeout` while the handler waits for it. The clock runs only while
/// the handler is waiting: a handler busy writing to disk is not the client's
/// delay.
pub struct ProgressBody<B> {
    inner: B,
    timeout: Duration,
    /// Since when the handler has been waiting for the next frame.
    waiting_since: Option<Instant>,
    /// Kept across frames (see [`poll_deadline`]).
    timer: Option<Pin<Box<Sleep>>>,
    conn: Arc<Conn>,
}

impl<B> ProgressBody<B> {
    /// Wraps a request body.
    pub fn new(inner: B, timeout: Duration, conn: Arc<Conn>) -> Self {
        Self {
            inner,
            timeout,
            waiting_since: None,
            timer: None,
            conn,
        }
    }
}

/// The error a stalled request body ends with.
#[derive(Debug, thiserror::Error)]
#[error("the client sent no request body bytes for {0:?}")]
pub struct BodyStalled(Duration);

impl<B> HttpBody for ProgressBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting_since = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let deadline = *this.waiting_since.get_or_insert_with(Instant::now) + this.timeout;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                ready!(poll_deadline(timer, deadline, cx));
                this.waiting_since = None;
                this.conn.set_reason(CloseReason::BodyTimeout);
                Poll::Ready(Some(Err(Box::new(BodyStalled(this.timeout)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request in flight until it is finished.
pub struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl TrackedBody {
    /// Wraps a response body.
    pub fn new(inner: Body, in_flight: InFlight) -> Self {
        Self {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
