//! Connections: how `cae serve` accepts, times out, caps and closes them.
//!
//! axum's own `serve` sets no timeouts, so a client that sends half a request line, or half
//! a body, keeps its connection (and its buffers) forever, and graceful shutdown waits for it.
//! Here each connection is served by hyper directly, with:
//!
//! - a header-read timeout (hyper's: the request line and headers must arrive in time, on a
//!   new connection and between keep-alive requests);
//! - an idle timeout: a connection that moves no byte either way for that long is closed
//!   (a client that stops reading its answer, or goes quiet mid-body);
//! - a cap on open connections: one over it is answered 503 with a JSON body and closed;
//! - a shutdown deadline: on SIGINT or SIGTERM the listener closes, requests under way may
//!   finish, and connections still open at the deadline are dropped.
//!
//! The body timeout is the handlers' (see `read_body` in the parent module). hyper answers
//! requests it cannot parse (400, 414, 431) itself, with an empty body: [`Guarded`] gives
//! those the JSON body every other refusal has.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Time and count limits of the connections.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectionLimits {
    /// The request line and headers must arrive within this.
    pub header_timeout: Duration,
    /// A request body must arrive whole within this (enforced by the handlers).
    pub body_timeout: Duration,
    /// A connection moving no byte for this long is closed.
    pub idle_timeout: Duration,
    /// Connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// After SIGINT or SIGTERM, connections still open after this are dropped.
    pub shutdown_deadline: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 256,
            shutdown_deadline: Duration::from_secs(10),
        }
    }
}

/// Answer connections from `listener` with `app` until `shutdown` resolves, then finish within
/// the deadline.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors and the like: pause rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            tokio::spawn(refuse_busy(stream));
            continue;
        };
        let io = Guarded::new(stream);
        let activity = Arc::clone(&io.activity);
        let connection = graceful.watch(
            builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(app.clone())),
        );
        let idle = limits.idle_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = connection => {}
                () = activity.stalled(idle) => {}
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(limits.shutdown_deadline, graceful.shutdown()).await;
}

/// One line of JSON as a whole HTTP/1.1 response that closes the connection.
fn json_response(status_line: &str, message: &str, retry: bool) -> Vec<u8> {
    let body = serde_json::json!({ "error": message }).to_string();
    let retry = if retry { "retry-after: 1\r\n" } else { "" };
    format!(
        "{status_line}\r\ncontent-type: application/json\r\n{retry}connection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answer a connection over the cap with 503, then close it gracefully: whatever the client
/// sent is read (bounded) so that the close is no reset that would lose the answer.
async fn refuse_busy(mut stream: TcpStream) {
    let answer = json_response(
        "HTTP/1.1 503 Service Unavailable",
        "busy: too many open connections, retry shortly",
        true,
    );
    let finish = async {
        stream.write_all(&answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left = 1usize << 20;
        while left > 0 {
            let n = stream.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), finish).await;
}

/// When a connection last moved a byte, in milliseconds since it opened.
struct Activity {
    opened: Instant,
    last: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let now = self.opened.elapsed().as_millis() as u64;
        self.last.store(now, Ordering::Relaxed);
    }

    /// Resolves once no byte has moved for `idle`.
    async fn stalled(&self, idle: Duration) {
        loop {
            let since =
                self.opened.elapsed() - Duration::from_millis(self.last.load(Ordering::Relaxed));
            if since >= idle {
                return;
            }
            tokio::time::sleep(idle - since).await;
        }
    }
}

/// A connection's stream that records activity and gives hyper's automatic error answers a
/// JSON body.
pub struct Guarded<IO> {
    inner: IO,
    activity: Arc<Activity>,
    /// A rewritten answer still to send, and how much of it went.
    pending: Vec<u8>,
    sent: usize,
}

impl<IO> Guarded<IO> {
    pub fn new(inner: IO) -> Self {
        Self {
            inner,
            activity: Arc::new(Activity {
                opened: Instant::now(),
                last: AtomicU64::new(0),
            }),
            pending: Vec::new(),
            sent: 0,
        }
    }
}

/// hyper's own answer to a request it could not parse — a status line and headers with
/// `content-length: 0`, and nothing else — as the same status with a JSON body. Every answer
/// of cae's routes has a body, so only hyper's match.
pub fn json_error_answer(head: &[u8]) -> Option<Vec<u8>> {
    // Every write of every answer passes here: look at its first bytes before anything else.
    if !head.starts_with(b"HTTP/1.1 4") || !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    let status_line = text.strip_prefix("HTTP/1.1 4")?.split("\r\n").next()?;
    if !text
        .to_ascii_lowercase()
        .contains("\r\ncontent-length: 0\r\n")
    {
        return None;
    }
    let message = match status_line.get(..2)? {
        "00" => "malformed request: the request line or a header could not be parsed",
        "14" => "the request's URI is too long",
        "31" => "the request's headers are too large",
        _ => "the request could not be read",
    };
    Some(json_response(
        &format!("HTTP/1.1 4{status_line}"),
        message,
        false,
    ))
}

impl<IO: AsyncWrite + Unpin> Guarded<IO> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
            self.activity.touch();
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.activity.touch();
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(answer) = json_error_answer(buf) {
            self.pending = answer;
            // Whatever is left goes out on the flush that follows.
            if let Poll::Ready(Err(e)) = self.poll_pending(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        if n > 0 {
            self.activity.touch();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_empty_error_answers_are_rewritten() {
        let head = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let answer = String::from_utf8(json_error_answer(head).unwrap()).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 414 URI Too Long\r\n"),
            "{answer}"
        );
        let (headers, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(headers.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"], "the request's URI is too long");
        // An answer with a body (every route's), a success, a partial head: untouched.
        for other in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n{\"error\":1}\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
        ] {
            assert!(json_error_answer(other).is_none());
        }
    }
}
