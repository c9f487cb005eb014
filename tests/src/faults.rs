//! Fault injection for the integration tests: [`FaultProxy`], a small
//! HTTP/1.1 proxy in front of DynamoDB Local. Point an SDK client at
//! [`FaultProxy::url`] (or take one from [`FaultProxy::client`]); every
//! request goes through the proxy, which forwards it to the real DynamoDB
//! Local or answers in its stead, as the faults switched on say:
//!
//! * throttling: HTTP 400 `ThrottlingException` or
//!   `ProvisionedThroughputExceededException` (not forwarded);
//! * `InternalServerError`: HTTP 500 (not forwarded);
//! * added latency, with spikes;
//! * dropped connections: the request is read, then the connection is
//!   closed without an answer, either before forwarding (nothing happened)
//!   or after (DynamoDB applied it; the client cannot know). Writes dropped
//!   after forwarding are logged with their keys
//!   ([`FaultProxy::applied_drops`]): a ledger must treat them as unknown
//!   outcomes;
//! * `UnprocessedItems` / `UnprocessedKeys` on `BatchWriteItem` /
//!   `BatchGetItem`: only part of the batch is forwarded and the rest
//!   returned unprocessed, or all of it on the first try of each batch, or
//!   all of it always.
//!
//! Faults are switched at runtime ([`FaultProxy::set`],
//! [`FaultProxy::set_for`]), drawn from a seeded generator, and counted per
//! kind ([`FaultProxy::counts`]). [`FaultProxy::script`] injects one fault
//! into the next requests matching a predicate, for deterministic tests.
//! The proxy also counts the SDK's own retries, from the
//! `amz-sdk-request: attempt=N` header every attempt carries.
//!
//! DynamoDB Local does not check request signatures, so a forwarded batch
//! may be cut down after the SDK signed it.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::Client;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// Which throttling error a throttled request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Throttle {
    /// `ThrottlingException`.
    Throttling,
    /// `ProvisionedThroughputExceededException`.
    ProvisionedThroughput,
    /// Either, at random.
    #[default]
    Mixed,
}

/// What the proxy does to `BatchWriteItem` and `BatchGetItem` calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unprocessed {
    /// Nothing.
    #[default]
    Off,
    /// Every call of more than one request: a random part (at least half,
    /// never all) is forwarded, the rest returned unprocessed; so a batch
    /// of 25 takes at most 6 calls. A call of one request is treated as
    /// [`Unprocessed::FirstTry`].
    Partial,
    /// The first time a set of requests is seen, all of it comes back
    /// unprocessed (nothing forwarded); sent again, it is forwarded.
    FirstTry,
    /// Every call comes back entirely unprocessed; nothing is ever written.
    Always,
}

/// Added latency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Every request waits between `min` and `max` ...
    pub min: Duration,
    pub max: Duration,
    /// ... and with this probability, a spike between `spike_min` and
    /// `spike_max` on top.
    pub spike: f64,
    pub spike_min: Duration,
    pub spike_max: Duration,
}

/// The faults in force. Probabilities are per request and exclusive of
/// each other (one draw decides drop, throttle, server error or forward);
/// latency and unprocessed batches come on top of a forward.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    pub throttle: f64,
    pub throttle_kind: Throttle,
    pub server_error: f64,
    pub drop: f64,
    /// The share of dropped requests forwarded (and so applied) before the
    /// connection is closed.
    pub drop_applied: f64,
    pub latency: Option<Latency>,
    pub unprocessed: Unprocessed,
    /// Only these operations (`X-Amz-Target` names: `BatchWriteItem` ...);
    /// empty: all.
    pub only_ops: Vec<String>,
    /// Never these operations.
    pub skip_ops: Vec<String>,
    /// Only requests signed with these access keys; empty: all.
    pub only_keys: Vec<String>,
}

impl Faults {
    /// No fault at all.
    pub fn none() -> Self {
        Faults::default()
    }

    pub fn throttling(mut self, p: f64, kind: Throttle) -> Self {
        self.throttle = p;
        self.throttle_kind = kind;
        self
    }

    pub fn server_errors(mut self, p: f64) -> Self {
        self.server_error = p;
        self
    }

    /// Drops `p` of the requests, `applied` of those after forwarding.
    pub fn drops(mut self, p: f64, applied: f64) -> Self {
        self.drop = p;
        self.drop_applied = applied;
        self
    }

    pub fn latency(mut self, min_ms: u64, max_ms: u64, spike: f64, spike_min_ms: u64, spike_max_ms: u64) -> Self {
        self.latency = Some(Latency {
            min: Duration::from_millis(min_ms),
            max: Duration::from_millis(max_ms),
            spike,
            spike_min: Duration::from_millis(spike_min_ms),
            spike_max: Duration::from_millis(spike_max_ms),
        });
        self
    }

    pub fn unprocessed(mut self, mode: Unprocessed) -> Self {
        self.unprocessed = mode;
        self
    }

    pub fn only_ops(mut self, ops: &[&str]) -> Self {
        self.only_ops = ops.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn skip_ops(mut self, ops: &[&str]) -> Self {
        self.skip_ops = ops.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn only_keys(mut self, keys: &[&str]) -> Self {
        self.only_keys = keys.iter().map(|s| s.to_string()).collect();
        self
    }

    fn concerns(&self, op: &str, key: &str) -> bool {
        (self.only_ops.is_empty() || self.only_ops.iter().any(|o| o == op))
            && !self.skip_ops.iter().any(|o| o == op)
            && (self.only_keys.is_empty() || self.only_keys.iter().any(|k| k == key))
    }
}

/// A fault injected on purpose into matching requests ([`FaultProxy::script`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Throttle,
    ServerError,
    /// Close the connection without forwarding.
    DropUnsent,
    /// Forward, then close the connection without answering.
    DropApplied,
}

type Predicate = Arc<dyn Fn(&Value) -> bool + Send + Sync>;

struct Scripted {
    op: String,
    when: Predicate,
    fault: Fault,
    left: usize,
}

/// A write dropped after it was forwarded: applied, unanswered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedWrite {
    pub op: String,
    pub access_key: String,
    /// `(pk, sk)` of every item it wrote (string keys only).
    pub keys: Vec<(String, String)>,
}

/// A request the proxy forwarded and the status of the answer it passed
/// back (kept once [`FaultProxy::keep_journal`] is called).
#[derive(Debug, Clone)]
pub struct Exchange {
    /// When the answer came back.
    pub at: Instant,
    pub op: String,
    pub access_key: String,
    pub status: u16,
    pub body: Value,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    eligible: AtomicU64,
    sdk_retries: AtomicU64,
    max_attempt: AtomicU64,
    throttled: AtomicU64,
    server_errors: AtomicU64,
    dropped_unsent: AtomicU64,
    dropped_applied: AtomicU64,
    delayed: AtomicU64,
    spikes: AtomicU64,
    unprocessed_calls: AtomicU64,
    unprocessed_requests: AtomicU64,
    by_op: Mutex<BTreeMap<String, u64>>,
}

/// A snapshot of what the proxy saw and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Requests received (every attempt of every call).
    pub requests: u64,
    /// Requests that met faults in force (switched on, not expired, of
    /// the operations and keys they concern): what their probabilities
    /// apply to.
    pub eligible: u64,
    /// Attempts the SDK made after a first one (`amz-sdk-request:
    /// attempt=N` with N > 1).
    pub sdk_retries: u64,
    /// The highest attempt number seen.
    pub max_attempt: u64,
    pub throttled: u64,
    pub server_errors: u64,
    pub dropped_unsent: u64,
    pub dropped_applied: u64,
    /// Requests given added latency, and spikes among them.
    pub delayed: u64,
    pub spikes: u64,
    /// Batch calls answered with unprocessed requests, and how many
    /// requests (or keys) came back unprocessed in all.
    pub unprocessed_calls: u64,
    pub unprocessed_requests: u64,
    /// Requests per operation.
    pub by_op: BTreeMap<String, u64>,
}

impl FaultCounts {
    /// Faults injected, of every kind (latency aside).
    pub fn injected(&self) -> u64 {
        self.throttled + self.server_errors + self.dropped_unsent + self.dropped_applied + self.unprocessed_calls
    }

    /// The counts since `before`.
    pub fn since(&self, before: &FaultCounts) -> FaultCounts {
        let mut by_op = self.by_op.clone();
        for (op, n) in &before.by_op {
            if let Some(v) = by_op.get_mut(op) {
                *v = v.saturating_sub(*n);
            }
        }
        by_op.retain(|_, v| *v > 0);
        FaultCounts {
            requests: self.requests - before.requests,
            eligible: self.eligible - before.eligible,
            sdk_retries: self.sdk_retries - before.sdk_retries,
            max_attempt: self.max_attempt,
            throttled: self.throttled - before.throttled,
            server_errors: self.server_errors - before.server_errors,
            dropped_unsent: self.dropped_unsent - before.dropped_unsent,
            dropped_applied: self.dropped_applied - before.dropped_applied,
            delayed: self.delayed - before.delayed,
            spikes: self.spikes - before.spikes,
            unprocessed_calls: self.unprocessed_calls - before.unprocessed_calls,
            unprocessed_requests: self.unprocessed_requests - before.unprocessed_requests,
            by_op,
        }
    }
}

impl fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests ({} under faults; SDK retries {}, max attempt {}); injected: throttled {}, 500s {}, dropped {} unsent + {} applied, \
             unprocessed {} calls / {} requests; delayed {} (spikes {})",
            self.requests,
            self.eligible,
            self.sdk_retries,
            self.max_attempt,
            self.throttled,
            self.server_errors,
            self.dropped_unsent,
            self.dropped_applied,
            self.unprocessed_calls,
            self.unprocessed_requests,
            self.delayed,
            self.spikes
        )
    }
}

struct Active {
    faults: Faults,
    until: Option<Instant>,
}

struct Inner {
    upstream: String,
    active: Mutex<Active>,
    rng: Mutex<fastrand::Rng>,
    counters: Counters,
    scripted: Mutex<Vec<Scripted>>,
    seen_batches: Mutex<HashSet<u64>>,
    applied_drops: Mutex<Vec<DroppedWrite>>,
    tasks: Mutex<Vec<AbortHandle>>,
    key_attrs: (String, String),
    journal: Mutex<Option<Vec<Exchange>>>,
}

/// The fault-injecting proxy; stops (with every connection) when dropped.
pub struct FaultProxy {
    url: String,
    inner: Arc<Inner>,
}

impl FaultProxy {
    /// A proxy on a free loopback port in front of the tests' DynamoDB
    /// Local ([`crate::endpoint`]), injecting nothing yet; `seed` seeds
    /// every random draw.
    pub async fn start(seed: u64) -> FaultProxy {
        let endpoint = crate::endpoint().await;
        FaultProxy::start_to(&endpoint, seed).await
    }

    /// A proxy in front of `endpoint` (`http://host:port`).
    pub async fn start_to(endpoint: &str, seed: u64) -> FaultProxy {
        let upstream = endpoint.trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the fault proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let inner = Arc::new(Inner {
            upstream,
            active: Mutex::new(Active { faults: Faults::none(), until: None }),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            counters: Counters::default(),
            scripted: Mutex::new(Vec::new()),
            seen_batches: Mutex::new(HashSet::new()),
            applied_drops: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
            key_attrs: ("pk".into(), "sk".into()),
            journal: Mutex::new(None),
        });
        let accept = {
            let inner = inner.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    let _ = stream.set_nodelay(true);
                    let task = tokio::spawn(serve(inner.clone(), stream));
                    let mut tasks = inner.tasks.lock().unwrap();
                    tasks.retain(|t| !t.is_finished());
                    tasks.push(task.abort_handle());
                }
            })
        };
        inner.tasks.lock().unwrap().push(accept.abort_handle());
        FaultProxy { url, inner }
    }

    /// From now on, keeps every forwarded request with its answer's
    /// status ([`FaultProxy::journal`]).
    pub fn keep_journal(&self) {
        self.inner.journal.lock().unwrap().get_or_insert_with(Vec::new);
    }

    /// The requests forwarded since [`FaultProxy::keep_journal`].
    pub fn journal(&self) -> Vec<Exchange> {
        self.inner.journal.lock().unwrap().clone().unwrap_or_default()
    }

    /// The URL to point a client at.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A DynamoDB client through the proxy, signing with `access_key`
    /// (letters and digits only; [`Faults::only_keys`] tells clients apart
    /// by it), standard retry mode as the SDK defaults.
    pub async fn client(&self, access_key: &str) -> Client {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.url)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(access_key, "local", None, None, "fault-proxy"))
            .load()
            .await;
        // Set on the service's config, last: `AWS_ENDPOINT_URL_DYNAMODB`
        // (which scripts/test.sh exports) would win over the shared one.
        let config = aws_sdk_dynamodb::config::Builder::from(&config).endpoint_url(&self.url).build();
        Client::from_conf(config)
    }

    /// Switches to `faults` until further notice.
    pub fn set(&self, faults: Faults) {
        *self.inner.active.lock().unwrap() = Active { faults, until: None };
    }

    /// Switches to `faults` for `duration`, then to none.
    pub fn set_for(&self, faults: Faults, duration: Duration) {
        *self.inner.active.lock().unwrap() = Active { faults, until: Some(Instant::now() + duration) };
    }

    /// No more faults (scripted ones stay).
    pub fn clear(&self) {
        self.set(Faults::none());
    }

    /// Whether faults are in force (not expired).
    pub fn active(&self) -> bool {
        let a = self.inner.active.lock().unwrap();
        a.faults != Faults::none() && !matches!(a.until, Some(u) if Instant::now() >= u)
    }

    /// Injects `fault` into the next `times` requests of operation `op`
    /// whose JSON body satisfies `when` (before any random fault).
    pub fn script(&self, op: &str, times: usize, fault: Fault, when: impl Fn(&Value) -> bool + Send + Sync + 'static) {
        self.inner.scripted.lock().unwrap().push(Scripted { op: op.to_string(), when: Arc::new(when), fault, left: times });
    }

    /// Scripted faults not injected yet.
    pub fn scripted_left(&self) -> usize {
        self.inner.scripted.lock().unwrap().iter().map(|s| s.left).sum()
    }

    /// What the proxy saw and did so far.
    pub fn counts(&self) -> FaultCounts {
        let c = &self.inner.counters;
        let l = |a: &AtomicU64| a.load(Ordering::SeqCst);
        FaultCounts {
            requests: l(&c.requests),
            eligible: l(&c.eligible),
            sdk_retries: l(&c.sdk_retries),
            max_attempt: l(&c.max_attempt),
            throttled: l(&c.throttled),
            server_errors: l(&c.server_errors),
            dropped_unsent: l(&c.dropped_unsent),
            dropped_applied: l(&c.dropped_applied),
            delayed: l(&c.delayed),
            spikes: l(&c.spikes),
            unprocessed_calls: l(&c.unprocessed_calls),
            unprocessed_requests: l(&c.unprocessed_requests),
            by_op: c.by_op.lock().unwrap().clone(),
        }
    }

    /// Every write dropped after it was forwarded.
    pub fn applied_drops(&self) -> Vec<DroppedWrite> {
        self.inner.applied_drops.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        for t in self.inner.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP/1.1, just enough of it

/// One request or response: the start line, the header lines, the body.
struct Message {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The bytes to send: the headers but `drop`, with `Content-Length`
    /// set for the body (never chunked).
    fn to_bytes(&self, drop: &[&str]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 512);
        out.extend_from_slice(self.start.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (n, v) in &self.headers {
            if n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding") || drop.iter().any(|d| n.eq_ignore_ascii_case(d)) {
                continue;
            }
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

/// A connection with what was read ahead of the current message.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    fn new(stream: TcpStream) -> Self {
        Conn { stream, buf: Vec::new() }
    }

    /// Reads more; false at end of stream.
    async fn fill(&mut self) -> std::io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    async fn line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if !self.fill().await? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    async fn exact(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// The next message; `None` at a clean end of stream before one.
    /// `response`: a message without a length runs to the end of stream.
    async fn read(&mut self, response: bool) -> std::io::Result<Option<Message>> {
        while find(&self.buf, b"\r\n\r\n").is_none() {
            if !self.fill().await? {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        let start = self.line().await?;
        let mut headers = Vec::new();
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                headers.push((n.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut msg = Message { start, headers, body: Vec::new() };
        let status: u16 = if response { msg.start.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(200) } else { 0 };
        if msg.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            loop {
                let size_line = self.line().await?;
                let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("0").trim(), 16)
                    .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size"))?;
                if size == 0 {
                    // Trailers, then the empty line.
                    while !self.line().await?.is_empty() {}
                    break;
                }
                let data = self.exact(size).await?;
                msg.body.extend_from_slice(&data);
                self.exact(2).await?;
            }
        } else if let Some(len) = msg.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
            msg.body = self.exact(len).await?;
        } else if response && !(status < 200 || status == 204 || status == 304) {
            while self.fill().await? {}
            msg.body = std::mem::take(&mut self.buf);
        }
        Ok(Some(msg))
    }

    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }
}

/// What the proxy does with one request.
enum Action {
    Forward,
    Throttle,
    ServerError,
    Drop { applied: bool },
}

/// Serves one client connection, keep-alive, until it closes or a fault
/// closes it.
async fn serve(inner: Arc<Inner>, stream: TcpStream) {
    let mut down = Conn::new(stream);
    let mut up: Option<Conn> = None;
    loop {
        let request = match down.read(false).await {
            Ok(Some(r)) => r,
            _ => return,
        };
        let close = request.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        match handle(&inner, &mut up, request).await {
            Some(response) => {
                if down.write(&response).await.is_err() || close {
                    return;
                }
            }
            None => {
                // Dropped: close without an answer.
                let _ = down.stream.shutdown().await;
                return;
            }
        }
    }
}

fn op_of(request: &Message) -> String {
    request.header("x-amz-target").and_then(|t| t.rsplit('.').next()).unwrap_or("?").to_string()
}

fn access_key_of(request: &Message) -> String {
    request
        .header("authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').next())
        .unwrap_or("")
        .to_string()
}

fn attempt_of(request: &Message) -> u64 {
    request
        .header("amz-sdk-request")
        .and_then(|v| v.split(';').find_map(|p| p.trim().strip_prefix("attempt=")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(1)
}

fn error_response(status: &str, code: &str, message: &str, id: u64) -> Vec<u8> {
    let body = json!({ "__type": format!("com.amazonaws.dynamodb.v20120810#{code}"), "message": message }).to_string();
    Message {
        start: format!("HTTP/1.1 {status}"),
        headers: vec![
            ("Server".into(), "fault-proxy".into()),
            ("Content-Type".into(), "application/x-amz-json-1.0".into()),
            ("x-amzn-RequestId".into(), format!("FAULT{id:08}")),
        ],
        body: body.into_bytes(),
    }
    .to_bytes(&[])
}

fn json_response(body: &Value, id: u64) -> Vec<u8> {
    Message {
        start: "HTTP/1.1 200 OK".into(),
        headers: vec![
            ("Server".into(), "fault-proxy".into()),
            ("Content-Type".into(), "application/x-amz-json-1.0".into()),
            ("x-amzn-RequestId".into(), format!("FAULT{id:08}")),
        ],
        body: body.to_string().into_bytes(),
    }
    .to_bytes(&[])
}

impl Inner {
    fn bump(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::SeqCst);
    }

    /// The faults that apply to this request, if any.
    fn faults_for(&self, op: &str, key: &str) -> Option<Faults> {
        let mut a = self.active.lock().unwrap();
        if a.until.is_some_and(|u| Instant::now() >= u) {
            *a = Active { faults: Faults::none(), until: None };
        }
        (a.faults != Faults::none() && a.faults.concerns(op, key)).then(|| a.faults.clone())
    }

    fn scripted_fault(&self, op: &str, body: &Value) -> Option<Fault> {
        let mut scripted = self.scripted.lock().unwrap();
        let s = scripted.iter_mut().find(|s| s.left > 0 && s.op == op && (s.when)(body))?;
        s.left -= 1;
        Some(s.fault)
    }

    fn keys_of_write(&self, op: &str, body: &Value) -> Vec<(String, String)> {
        let (pk, sk) = &self.key_attrs;
        let key = |m: &Value| -> Option<(String, String)> {
            Some((m.get(pk)?.get("S")?.as_str()?.to_string(), m.get(sk)?.get("S")?.as_str()?.to_string()))
        };
        let mut out = Vec::new();
        match op {
            "PutItem" => out.extend(key(&body["Item"])),
            "UpdateItem" | "DeleteItem" => out.extend(key(&body["Key"])),
            "BatchWriteItem" => {
                if let Some(tables) = body["RequestItems"].as_object() {
                    for reqs in tables.values() {
                        for r in reqs.as_array().into_iter().flatten() {
                            out.extend(key(&r["PutRequest"]["Item"]).or_else(|| key(&r["DeleteRequest"]["Key"])));
                        }
                    }
                }
            }
            "TransactWriteItems" => {
                for a in body["TransactItems"].as_array().into_iter().flatten() {
                    out.extend(key(&a["Put"]["Item"]).or_else(|| key(&a["Update"]["Key"])).or_else(|| key(&a["Delete"]["Key"])));
                }
            }
            _ => {}
        }
        out
    }
}

/// Handles one request: `Some(bytes)` to answer, `None` to drop the
/// connection.
async fn handle(inner: &Arc<Inner>, up: &mut Option<Conn>, request: Message) -> Option<Vec<u8>> {
    let c = &inner.counters;
    let id = c.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let op = op_of(&request);
    let key = access_key_of(&request);
    let attempt = attempt_of(&request);
    *c.by_op.lock().unwrap().entry(op.clone()).or_default() += 1;
    if attempt > 1 {
        inner.bump(&c.sdk_retries);
    }
    c.max_attempt.fetch_max(attempt, Ordering::SeqCst);
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);

    let faults = inner.faults_for(&op, &key);
    if faults.is_some() {
        inner.bump(&c.eligible);
    }
    let action = match inner.scripted_fault(&op, &body) {
        Some(Fault::Throttle) => Action::Throttle,
        Some(Fault::ServerError) => Action::ServerError,
        Some(Fault::DropUnsent) => Action::Drop { applied: false },
        Some(Fault::DropApplied) => Action::Drop { applied: true },
        None => match &faults {
            Some(f) => {
                let mut rng = inner.rng.lock().unwrap();
                let r = rng.f64();
                if r < f.drop {
                    Action::Drop { applied: rng.f64() < f.drop_applied }
                } else if r < f.drop + f.throttle {
                    Action::Throttle
                } else if r < f.drop + f.throttle + f.server_error {
                    Action::ServerError
                } else {
                    Action::Forward
                }
            }
            None => Action::Forward,
        },
    };

    // Latency, whatever comes next.
    if let Some(l) = faults.as_ref().and_then(|f| f.latency) {
        let delay = {
            let mut rng = inner.rng.lock().unwrap();
            let span = |a: Duration, b: Duration, rng: &mut fastrand::Rng| {
                let (a, b) = (a.as_micros() as u64, b.as_micros().max(a.as_micros()) as u64);
                Duration::from_micros(rng.u64(a..=b))
            };
            let mut d = span(l.min, l.max, &mut rng);
            if rng.f64() < l.spike {
                d += span(l.spike_min, l.spike_max, &mut rng);
                inner.bump(&c.spikes);
            }
            d
        };
        if !delay.is_zero() {
            inner.bump(&c.delayed);
            tokio::time::sleep(delay).await;
        }
    }

    match action {
        Action::Throttle => {
            inner.bump(&c.throttled);
            let kind = faults.as_ref().map_or(Throttle::Throttling, |f| f.throttle_kind);
            let pte = match kind {
                Throttle::Throttling => false,
                Throttle::ProvisionedThroughput => true,
                Throttle::Mixed => inner.rng.lock().unwrap().bool(),
            };
            Some(if pte {
                error_response(
                    "400 Bad Request",
                    "ProvisionedThroughputExceededException",
                    "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API. (injected)",
                    id,
                )
            } else {
                error_response("400 Bad Request", "ThrottlingException", "Rate of requests exceeds the allowed throughput. (injected)", id)
            })
        }
        Action::ServerError => {
            inner.bump(&c.server_errors);
            Some(error_response("500 Internal Server Error", "InternalServerError", "Internal server error (injected)", id))
        }
        Action::Drop { applied: false } => {
            inner.bump(&c.dropped_unsent);
            None
        }
        Action::Drop { applied: true } => {
            inner.bump(&c.dropped_applied);
            // Forwarded whole: applied as sent, the answer thrown away.
            let _ = forward(inner, up, &request).await;
            let keys = inner.keys_of_write(&op, &body);
            if !keys.is_empty() {
                inner.applied_drops.lock().unwrap().push(DroppedWrite { op, access_key: key, keys });
            }
            None
        }
        Action::Forward => {
            let mode = faults.as_ref().map_or(Unprocessed::Off, |f| f.unprocessed);
            let journal = inner.journal.lock().unwrap().is_some().then(|| body.clone());
            let answer = match (op.as_str(), mode) {
                (_, Unprocessed::Off) => forward(inner, up, &request).await,
                ("BatchWriteItem", _) => batch(inner, up, request, body, mode, id, "RequestItems", "UnprocessedItems").await,
                ("BatchGetItem", _) => batch(inner, up, request, body, mode, id, "RequestItems", "UnprocessedKeys").await,
                _ => forward(inner, up, &request).await,
            };
            if let (Some(body), Some(bytes)) = (journal, answer.as_ref()) {
                // "HTTP/1.1 200 OK": the status is the second word.
                let status = std::str::from_utf8(&bytes[..bytes.len().min(16)])
                    .ok()
                    .and_then(|line| line.split(' ').nth(1))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let exchange = Exchange { at: Instant::now(), op, access_key: key, status, body };
                if let Some(journal) = inner.journal.lock().unwrap().as_mut() {
                    journal.push(exchange);
                }
            }
            answer
        }
    }
}

/// Sends `request` upstream and returns the raw answer (re-framed), or a
/// 500 if DynamoDB Local cannot be reached. An idle upstream connection
/// closed under us is reopened once, if nothing of an answer was read.
async fn forward(inner: &Inner, up: &mut Option<Conn>, request: &Message) -> Option<Vec<u8>> {
    forward_message(inner, up, request).await.map(|m| m.to_bytes(&[])).or_else(|| {
        Some(error_response("500 Internal Server Error", "InternalServerError", "the fault proxy could not reach DynamoDB Local", 0))
    })
}

async fn forward_message(inner: &Inner, up: &mut Option<Conn>, request: &Message) -> Option<Message> {
    let bytes = request.to_bytes(&[]);
    for _ in 0..2 {
        if up.is_none() {
            let stream = TcpStream::connect(&inner.upstream).await.ok()?;
            let _ = stream.set_nodelay(true);
            *up = Some(Conn::new(stream));
        }
        let conn = up.as_mut().expect("connected");
        if conn.write(&bytes).await.is_err() {
            *up = None;
            continue;
        }
        match conn.read(true).await {
            Ok(Some(response)) => {
                if response.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
                    *up = None;
                }
                return Some(response);
            }
            Ok(None) => {
                // Closed before answering: an idle connection the server
                // had let go of. Try once more on a new one.
                *up = None;
                continue;
            }
            Err(_) => {
                *up = None;
                return None;
            }
        }
    }
    None
}

/// A stable identity of a set of batch requests (their JSON, sorted).
fn batch_id(requests: &[Value]) -> u64 {
    let mut texts: Vec<String> = requests.iter().map(Value::to_string).collect();
    texts.sort();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    texts.hash(&mut h);
    h.finish()
}

/// `BatchWriteItem` / `BatchGetItem` with part (or all) of the requests
/// returned unprocessed.
#[allow(clippy::too_many_arguments)]
async fn batch(
    inner: &Inner,
    up: &mut Option<Conn>,
    mut request: Message,
    mut body: Value,
    mode: Unprocessed,
    id: u64,
    in_key: &str,
    out_key: &str,
) -> Option<Vec<u8>> {
    let gets = out_key == "UnprocessedKeys";
    let Some(tables) = body[in_key].as_object_mut() else { return forward(inner, up, &request).await };
    // Per table: (requests forwarded, requests held back).
    let mut held: Map<String, Value> = Map::new();
    let mut forwarded_any = false;
    for (table, entry) in tables.iter_mut() {
        let list = if gets { entry.get_mut("Keys") } else { Some(&mut *entry) };
        let Some(Value::Array(list)) = list else { continue };
        let all = std::mem::take(list);
        let hold_all = match mode {
            Unprocessed::Off => false,
            Unprocessed::Always => true,
            Unprocessed::FirstTry => inner.seen_batches.lock().unwrap().insert(batch_id(&all)),
            Unprocessed::Partial if all.len() < 2 => inner.seen_batches.lock().unwrap().insert(batch_id(&all)),
            Unprocessed::Partial => false,
        };
        let (keep, back): (Vec<Value>, Vec<Value>) = if hold_all {
            (Vec::new(), all)
        } else if mode == Unprocessed::Partial && all.len() >= 2 {
            let mut rng = inner.rng.lock().unwrap();
            let n_keep = rng.usize(all.len().div_ceil(2)..all.len());
            let mut idx: Vec<usize> = (0..all.len()).collect();
            rng.shuffle(&mut idx);
            let keep_set: HashSet<usize> = idx[..n_keep].iter().copied().collect();
            let mut keep = Vec::new();
            let mut back = Vec::new();
            for (i, r) in all.into_iter().enumerate() {
                if keep_set.contains(&i) {
                    keep.push(r)
                } else {
                    back.push(r)
                }
            }
            (keep, back)
        } else {
            (all, Vec::new())
        };
        forwarded_any |= !keep.is_empty();
        *list = keep;
        if !back.is_empty() {
            let returned = if gets {
                let mut e = entry.clone();
                e["Keys"] = Value::Array(back);
                e
            } else {
                Value::Array(back)
            };
            held.insert(table.clone(), returned);
        }
    }
    // Tables left without requests are not sent.
    tables.retain(|_, e| {
        let list = if gets { e.get("Keys") } else { Some(&*e) };
        list.and_then(Value::as_array).is_some_and(|l| !l.is_empty())
    });
    let held_count: usize = held.values().map(|v| if gets { v["Keys"].as_array().map_or(0, Vec::len) } else { v.as_array().map_or(0, Vec::len) }).sum();
    if held_count > 0 {
        inner.bump(&inner.counters.unprocessed_calls);
        inner.counters.unprocessed_requests.fetch_add(held_count as u64, Ordering::SeqCst);
    }
    let mut answer = if forwarded_any {
        request.body = body.to_string().into_bytes();
        let response = forward_message(inner, up, &request).await?;
        let ok = response.start.split_whitespace().nth(1) == Some("200");
        if !ok || held.is_empty() {
            return Some(response.to_bytes(&[]));
        }
        serde_json::from_slice::<Value>(&response.body).unwrap_or_else(|_| json!({}))
    } else if gets {
        json!({ "Responses": {} })
    } else {
        json!({})
    };
    // Merge what was held back into what DynamoDB left unprocessed.
    if !answer[out_key].is_object() {
        answer[out_key] = json!({});
    }
    let out = answer[out_key].as_object_mut().expect("an object");
    for (table, back) in held {
        match out.get_mut(&table) {
            Some(existing) if gets => {
                let keys = existing["Keys"].as_array_mut().expect("keys");
                keys.extend(back["Keys"].as_array().cloned().unwrap_or_default());
            }
            Some(Value::Array(existing)) => existing.extend(back.as_array().cloned().unwrap_or_default()),
            _ => {
                out.insert(table, back);
            }
        }
    }
    Some(json_response(&answer, id))
}
