//! Connections: the accept loop, in place of `axum::serve`, which cannot time out a client that
//! sends its headers slowly or holds a connection open doing nothing.
//!
//! Each connection gets:
//! - a header time-out: a request line and headers must arrive within `header_timeout_secs` of
//!   the connection's start, or of the first byte of a later request on it (a partial head is
//!   answered `408`, then the connection is closed);
//! - an idle time-out: a keep-alive connection with no request in flight is closed after
//!   `idle_timeout_secs` without a new request; a response the client stops reading is abandoned
//!   after the same time;
//! - a cap on its head ([`MAX_HEAD_BYTES`], `431` above it), which also bounds what a client
//!   sending its head slowly makes the server hold.
//!
//! and is admitted only under two caps: connections in all (`max_connections`, else `503`) and
//! per client address (`max_connections_per_client`, else `429`), both answered with a minimal
//! plain-text response and `Connection: close`, never queued. Behind a proxy
//! (`client_ip_header`), the TCP peer is the proxy, so the per-client cap is applied per
//! forwarded address to requests in flight instead ([`crate::http::limits`]), and the proxy's
//! connections count only against the global cap.
//!
//! The time-outs live in [`Watched`], a wrapper around the socket that knows from the service
//! whether a request is in flight. hyper's own `header_read_timeout` cannot do this: it also runs
//! while a keep-alive connection waits for its next request, so a short header time-out would
//! be a short idle time-out too.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use crate::ops::metrics::Metrics;
use palisade_core::config::HttpConfig;

/// The largest request line plus headers, in bytes (hyper answers `431` above it), so also the
/// most of a head a client that sends it slowly makes the server hold. Palisade's clients send
/// under 2 KiB; nginx's default limit is also 32 KiB.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// hyper's read buffer. It only grows when reads fill it, so slow clients keep it small; a fast
/// upload reads in pieces this large (32 KiB pieces cost a tenth of upload throughput).
const MAX_READ_BUFFER: usize = 256 * 1024;
/// Refused connections being answered at once; beyond this they are closed without an answer.
const MAX_REFUSING: usize = 512;
/// How long a refused connection is kept to deliver its answer before it is closed.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// The address a client is counted by: an IPv4 address, or an IPv6 address's /64 prefix (one
/// host usually holds a whole /64, so counting single IPv6 addresses would cap nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    ClientKey(IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)))
                }
            },
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// How many connections (or requests) each client has open, with a cap.
pub struct PerClient {
    counts: Mutex<HashMap<ClientKey, usize>>,
    max: usize,
}

/// One unit of a client's allowance; given back when dropped.
pub struct ClientSlot {
    owner: Arc<PerClient>,
    key: ClientKey,
}

impl PerClient {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { counts: Mutex::new(HashMap::new()), max })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A slot for `key`, or `None` when the client already holds `max`.
    pub fn acquire(self: &Arc<Self>, key: ClientKey) -> Option<ClientSlot> {
        let mut counts = self.counts.lock();
        let n = counts.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ClientSlot { owner: self.clone(), key })
    }

    #[cfg(test)]
    fn held(&self, key: ClientKey) -> usize {
        self.counts.lock().get(&key).copied().unwrap_or(0)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut counts = self.owner.counts.lock();
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// The global cap on open connections.
struct Global {
    open: AtomicUsize,
    max: usize,
}

struct GlobalSlot(Arc<Global>);

impl Global {
    fn acquire(self: &Arc<Self>) -> Option<GlobalSlot> {
        let mut n = self.open.load(Ordering::Relaxed);
        loop {
            if n >= self.max {
                return None;
            }
            match self.open.compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(GlobalSlot(self.clone())),
                Err(now) => n = now,
            }
        }
    }
}

impl Drop for GlobalSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Clone, Copy)]
struct Timeouts {
    header: Duration,
    idle: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, lets requests in
/// flight finish, closes idle connections, and returns when every connection has ended.
/// `cap_per_peer` is false behind a proxy (see the module documentation).
pub async fn run(
    listener: TcpListener,
    app: Router,
    config: &HttpConfig,
    cap_per_peer: bool,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let timeouts = Timeouts { header: config.header_timeout(), idle: config.idle_timeout() };
    let global = Arc::new(Global { open: AtomicUsize::new(0), max: usize::try_from(config.max_connections).unwrap_or(usize::MAX) });
    let per_client = cap_per_peer.then(|| PerClient::new(usize::try_from(config.max_connections_per_client).unwrap_or(usize::MAX)));
    let refusals = Arc::new(Refusals::default());

    // The same shutdown plumbing as axum::serve: the signal drops `signal_rx`, which every
    // connection watches; each connection holds a `close_rx`, so `close_tx.closed()` resolves
    // when the last one has ended.
    let (signal_tx, signal_rx) = watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(signal_rx);
    });
    let (close_tx, close_rx) = watch::channel(());

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            _ = signal_tx.closed() => break,
        };
        // Without TCP_NODELAY a response whose body follows its headers in a second write waits
        // for the client's delayed ACK (~40 ms): every file download would.
        let _ = stream.set_nodelay(true);
        let Some(global_slot) = global.acquire() else {
            refusals.refuse(stream, &metrics, Refusal::Busy(global.max), peer);
            continue;
        };
        let client_slot = match &per_client {
            Some(pc) => match pc.acquire(ClientKey::of(peer.ip())) {
                Some(slot) => Some(slot),
                None => {
                    refusals.refuse(stream, &metrics, Refusal::PerClient(pc.max()), peer);
                    continue;
                }
            },
            None => None,
        };
        let slots = (global_slot, client_slot);
        let connection = serve_connection(stream, peer, app.clone(), timeouts, signal_tx.clone());
        let close_rx = close_rx.clone();
        tokio::spawn(async move {
            connection.await;
            drop(slots);
            drop(close_rx);
        });
    }

    drop(close_rx);
    drop(listener);
    close_tx.closed().await;
}

/// Accept fails with EMFILE/ENFILE when the process is out of file descriptors: wait for some to
/// close rather than spin. Errors about the one connection are nothing to wait for.
async fn accept_error(e: io::Error) {
    if matches!(e.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, app: Router, timeouts: Timeouts, signal: watch::Sender<()>) {
    let state = Arc::new(ConnState::new());
    let io = TokioIo::new(Watched::new(stream, state.clone(), timeouts));
    let service = {
        let state = state.clone();
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let in_flight = state.begin_request();
            let app = app.clone();
            async move {
                let response = tower::ServiceExt::oneshot(app, request.map(axum::body::Body::new)).await.unwrap_or_else(|e| match e {});
                Ok::<_, Infallible>(response.map(|body| Tracked { body, _in_flight: in_flight }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.keep_alive(true).max_buf_size(MAX_READ_BUFFER).max_header_size(MAX_HEAD_BYTES).header_read_timeout(None);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut signalled = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, client.addr = %peer, "connection ended with an error");
                }
                return;
            }
            _ = signal.closed(), if !signalled => {
                signalled = true;
                state.shutting_down.store(true, Ordering::Release);
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// What the socket wrapper needs to know about the connection's requests.
struct ConnState {
    in_flight: AtomicUsize,
    shutting_down: AtomicBool,
    clock: Mutex<Clock>,
    /// The reader, parked without a deadline while a request was in flight: woken when the last
    /// one ends, so that it arms the idle time-out.
    parked_reader: Mutex<Option<Waker>>,
}

struct Clock {
    /// When the head being waited for started: the connection's start, or the first byte of a
    /// later request. `None` between requests, until a byte arrives.
    head_since: Option<Instant>,
    /// Whether any byte of that head has arrived (a partial head is answered 408).
    head_bytes: bool,
    /// When the last request in flight finished.
    idle_since: Instant,
}

impl ConnState {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            in_flight: AtomicUsize::new(0),
            shutting_down: AtomicBool::new(false),
            clock: Mutex::new(Clock { head_since: Some(now), head_bytes: false, idle_since: now }),
            parked_reader: Mutex::new(None),
        }
    }

    fn begin_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let mut clock = self.clock.lock();
        clock.head_since = None;
        clock.head_bytes = false;
        InFlight(self.clone())
    }

    /// Bytes arrived with no request in flight: a new head has started.
    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return;
        }
        let mut clock = self.clock.lock();
        clock.head_since.get_or_insert_with(Instant::now);
        clock.head_bytes = true;
    }

    /// When reading must have produced a head by, and whether that head has started; `None`
    /// while a request is in flight (its body has its own limits).
    fn read_deadline(&self, timeouts: Timeouts) -> Option<(Instant, bool)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let clock = self.clock.lock();
        if self.shutting_down.load(Ordering::Acquire) {
            return Some((Instant::now(), clock.head_bytes));
        }
        Some(match clock.head_since {
            Some(since) => (since + timeouts.header, clock.head_bytes),
            None => (clock.idle_since + timeouts.idle, false),
        })
    }
}

/// A request in flight, from its head to the end of its response body.
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.clock.lock().idle_since = Instant::now();
            if let Some(reader) = self.0.parked_reader.lock().take() {
                reader.wake();
            }
        }
    }
}

/// A response body that keeps its request counted as in flight until hyper has taken all of it.
struct Tracked {
    body: axum::body::Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, with the header, idle and stalled-write time-outs. hyper reads whenever it waits
/// for a head (and between requests, to notice a close), so a read that is still pending at the
/// deadline fails the connection; likewise a write the client has not made room for within the
/// idle time-out.
struct Watched {
    inner: TcpStream,
    state: Arc<ConnState>,
    timeouts: Timeouts,
    read_timer: Option<Pin<Box<Sleep>>>,
    write_timer: Option<Pin<Box<Sleep>>>,
    write_stalled_since: Option<Instant>,
}

impl Watched {
    fn new(inner: TcpStream, state: Arc<ConnState>, timeouts: Timeouts) -> Self {
        Self { inner, state, timeouts, read_timer: None, write_timer: None, write_stalled_since: None }
    }

    fn poll_write_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match write(Pin::new(&mut self.inner), cx) {
            Poll::Ready(r) => {
                self.write_stalled_since = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let since = *self.write_stalled_since.get_or_insert_with(Instant::now);
                if expired(&mut self.write_timer, since + self.timeouts.idle, cx) {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading the response")));
                }
                Poll::Pending
            }
        }
    }
}

/// Whether `deadline` has passed; if not, the task is woken when it does.
fn expired(timer: &mut Option<Pin<Box<Sleep>>>, deadline: Instant, cx: &mut Context<'_>) -> bool {
    if deadline <= Instant::now() {
        return true;
    }
    let sleep = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    if sleep.deadline() != deadline {
        sleep.as_mut().reset(deadline);
    }
    sleep.as_mut().poll(cx).is_ready()
}

const HEADER_TIMEOUT_RESPONSE: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 51\r\nconnection: close\r\n\r\nthe request line and headers did not arrive in time\n";

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.state.bytes_read();
                }
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
        let Some((deadline, partial_head)) = this.state.read_deadline(this.timeouts) else {
            *this.state.parked_reader.lock() = Some(cx.waker().clone());
            // The request may have ended between the check and the parking.
            if this.state.in_flight.load(Ordering::Acquire) == 0 {
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        };
        if !expired(&mut this.read_timer, deadline, cx) {
            return Poll::Pending;
        }
        if partial_head && !this.state.shutting_down.load(Ordering::Acquire) {
            // Best effort: nothing else has been written on this connection since the last
            // response, and the answer is far smaller than a socket buffer.
            let _ = this.inner.try_write(HEADER_TIMEOUT_RESPONSE);
        }
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "no complete request head in time, or idle")))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_with(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_with(cx, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[derive(Clone, Copy)]
enum Refusal {
    /// The global cap, with its value.
    Busy(usize),
    /// The per-client cap, with its value.
    PerClient(usize),
}

/// Answers refused connections, and logs refusals at most once a minute so that a flood does
/// not become a flood of log lines.
#[derive(Default)]
struct Refusals {
    answering: Arc<AtomicUsize>,
    last_log: Mutex<Option<Instant>>,
    unlogged: AtomicU64,
}

impl Refusals {
    fn refuse(&self, mut stream: TcpStream, metrics: &Metrics, refusal: Refusal, peer: SocketAddr) {
        let (status, reason, label) = match refusal {
            Refusal::Busy(max) => {
                ("503 Service Unavailable", format!("the server has too many open connections ({max}); try again later"), "max_connections")
            }
            Refusal::PerClient(max) => (
                "429 Too Many Requests",
                format!("too many open connections from your address (the limit is {max}); close some and try again"),
                "max_connections_per_client",
            ),
        };
        metrics.connection_refused(label);
        self.log(label, peer);
        if self.answering.fetch_add(1, Ordering::AcqRel) >= MAX_REFUSING {
            self.answering.fetch_sub(1, Ordering::AcqRel);
            return; // dropping the socket closes it
        }
        let answering = self.answering.clone();
        tokio::spawn(async move {
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reason}\n",
                reason.len() + 1
            );
            let _ = tokio::time::timeout(REFUSAL_LINGER, async {
                stream.write_all(response.as_bytes()).await?;
                stream.shutdown().await?;
                // Read what the client sent until it closes: closing a socket with unread data
                // resets the connection, and the client could lose the answer.
                let mut sink = [0u8; 4096];
                let mut drained = 0usize;
                while drained < MAX_HEAD_BYTES {
                    let n = stream.read(&mut sink).await?;
                    if n == 0 {
                        break;
                    }
                    drained += n;
                }
                Ok::<_, io::Error>(())
            })
            .await;
            answering.fetch_sub(1, Ordering::AcqRel);
        });
    }

    fn log(&self, label: &str, peer: SocketAddr) {
        let now = Instant::now();
        let mut last = self.last_log.lock();
        if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(60)) {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(now);
        let earlier = self.unlogged.swap(0, Ordering::Relaxed);
        tracing::warn!(limit = label, client.addr = %ClientKey::of(peer.ip()), refused_since_last_log = earlier, "connection refused: over the http.{label} cap");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_counted_by_ipv4_address_or_ipv6_prefix() {
        let check = |ip: &str, expected: &str| assert_eq!(ClientKey::of(ip.parse().unwrap()).to_string(), expected, "{ip}");
        check("203.0.113.7", "203.0.113.7");
        check("::ffff:203.0.113.7", "203.0.113.7");
        check("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64");
        check("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64");
        check("::1", "::/64");
        assert_ne!(ClientKey::of("2001:db8:1:2::1".parse().unwrap()), ClientKey::of("2001:db8:1:3::1".parse().unwrap()));
    }

    #[test]
    fn per_client_slots_are_capped_and_given_back() {
        let pc = PerClient::new(2);
        let a = ClientKey::of("192.0.2.1".parse().unwrap());
        let b = ClientKey::of("192.0.2.2".parse().unwrap());
        let first = pc.acquire(a).unwrap();
        let _second = pc.acquire(a).unwrap();
        assert!(pc.acquire(a).is_none(), "a third slot for one client");
        assert!(pc.acquire(b).is_some(), "another client is not affected");
        drop(first);
        assert_eq!(pc.held(a), 1);
        let _third = pc.acquire(a).expect("a slot given back can be taken again");
        assert!(pc.counts.lock().get(&b).is_none(), "clients with nothing open are forgotten");
    }

    #[test]
    fn the_global_cap_holds_under_contention() {
        let global = Arc::new(Global { open: AtomicUsize::new(0), max: 100 });
        let held: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| (0..50).filter_map(|_| global.acquire()).collect::<Vec<_>>())).collect();
            handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(held.len(), 100);
        assert!(global.acquire().is_none());
        drop(held);
        assert_eq!(global.open.load(Ordering::Relaxed), 0);
    }
}
