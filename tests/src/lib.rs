//! Test support for singletable: a DynamoDB client pointed at DynamoDB Local.
//!
//! * With `AWS_ENDPOINT_URL_DYNAMODB` set (as `scripts/test.sh` does), every
//!   [`client()`] talks to that endpoint.
//! * Without it (plain `cargo test -p singletable-tests`), the first call in a
//!   test process installs DynamoDB Local (`scripts/dynamodb-local.sh
//!   install`) and starts one instance for the whole process on a free
//!   loopback port. A small `sh` watchdog kills it once the test process is
//!   gone, so nothing is left running afterwards.
//!
//! Clients are built fresh on every call: each `#[tokio::test]` has its own
//! runtime, and an SDK client's connection pool must not outlive the runtime
//! it was used on. Only the endpoint is shared.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::Client;

pub mod faults;

/// Environment variable naming an already running DynamoDB endpoint.
pub const ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL_DYNAMODB";

/// How long a freshly spawned DynamoDB Local may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The repository root (`tests/..`).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

/// A DynamoDB client for tests: DynamoDB Local, static credentials
/// `local`/`local`, region `us-east-1` unless `AWS_REGION` says otherwise.
///
/// Panics (failing the test) if no DynamoDB Local can be found or started.
pub async fn client() -> Client {
    let endpoint = endpoint().await;
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            "local",
            "local",
            None,
            None,
            "singletable-tests",
        ));
    let region_set = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .any(|v| std::env::var(v).map(|s| !s.is_empty()).unwrap_or(false));
    if !region_set {
        loader = loader.region(Region::new("us-east-1"));
    }
    let config = loader.load().await;
    Client::new(&config)
}

/// A DynamoDB Streams client for the test server.
pub async fn streams_client() -> aws_sdk_dynamodbstreams::Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint().await)
        .credentials_provider(Credentials::new("local", "local", None, None, "singletable-tests"))
        .region(Region::new("us-east-1"))
        .load()
        .await;
    aws_sdk_dynamodbstreams::Client::new(&config)
}

/// Every record of `table`'s stream so far, oldest first in each shard,
/// with the stream's ARN: what the stream tests decode, read through
/// DynamoDB Streams from the test server (TRIM_HORIZON, to the end).
pub async fn stream_records(client: &Client, table: &str) -> (String, Vec<aws_sdk_dynamodbstreams::types::Record>) {
    use aws_sdk_dynamodbstreams::types::ShardIteratorType;
    let streams = streams_client().await;
    let desc = client.describe_table().table_name(table).send().await.unwrap().table.unwrap();
    let arn = desc.latest_stream_arn().expect("the table has a stream").to_string();
    let shards = streams.describe_stream().stream_arn(&arn).send().await.unwrap().stream_description.unwrap().shards.unwrap_or_default();
    let mut records = Vec::new();
    for shard in shards {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard.shard_id().unwrap())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        while let Some(it) = iterator.take() {
            let out = streams.get_records().shard_iterator(it).send().await.unwrap();
            let got = out.records.unwrap_or_default();
            if got.is_empty() {
                break;
            }
            records.extend(got);
            iterator = out.next_shard_iterator;
        }
    }
    (arn, records)
}

/// The DynamoDB endpoint the tests use: `AWS_ENDPOINT_URL_DYNAMODB` if set,
/// else the URL of this process's own DynamoDB Local (started on first use).
pub async fn endpoint() -> String {
    if let Some(url) = env_endpoint() {
        return url;
    }
    if let Some(url) = LOCAL.get() {
        return url.clone();
    }
    // Starting Local blocks for a few seconds; keep it off the async workers.
    tokio::task::spawn_blocking(endpoint_blocking)
        .await
        .expect("starting DynamoDB Local panicked")
}

/// Blocking variant of [`endpoint()`], for synchronous tests.
pub fn endpoint_blocking() -> String {
    if let Some(url) = env_endpoint() {
        return url;
    }
    LOCAL
        .get_or_init(|| match start_local() {
            Ok(url) => url,
            Err(e) => panic!("could not start DynamoDB Local for the tests: {e}"),
        })
        .clone()
}

fn env_endpoint() -> Option<String> {
    std::env::var(ENDPOINT_ENV)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The URL of this process's own DynamoDB Local, once started.
static LOCAL: OnceLock<String> = OnceLock::new();

fn start_local() -> Result<String, String> {
    let root = repo_root();
    let script = root.join("scripts").join("dynamodb-local.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("install")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {} install: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} install failed ({}); see the messages above",
            script.display(),
            out.status
        ));
    }
    let jar = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| l.ends_with(".jar"))
        .last()
        .map(PathBuf::from)
        .ok_or_else(|| {
            format!(
                "{} install printed no jar path: {:?}",
                script.display(),
                String::from_utf8_lossy(&out.stdout)
            )
        })?;
    let lib_dir = jar
        .parent()
        .ok_or_else(|| format!("bad jar path {}", jar.display()))?
        .to_path_buf();

    // A free port: bind :0 and let it go. Another process could grab it
    // in between; in that case Java exits and we try another port.
    let mut last_err = String::new();
    for _ in 0..3 {
        let port = free_port().map_err(|e| format!("finding a free port: {e}"))?;
        match spawn_local(&root, &jar, &lib_dir, port) {
            Ok(()) => return Ok(format!("http://127.0.0.1:{port}")),
            Err(e) => last_err = e,
        }
    }
    Err(last_err)
}

fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn spawn_local(root: &Path, jar: &Path, lib_dir: &Path, port: u16) -> Result<(), String> {
    let state = root.join(".dynamodb-local");
    let _ = std::fs::create_dir_all(&state);
    let log = state.join(format!("cargo-test-{}-{port}.log", std::process::id()));

    // The watchdog: start Java, then poll until either the test process
    // (PARENT) or Java is gone; stop Java (TERM, then KILL) and tidy up.
    // Rust statics are never dropped, so this is what ends the server.
    const WATCHDOG: &str = r#"
java -Djava.library.path="$LIB/DynamoDBLocal_lib" -jar "$JAR" -inMemory -sharedDb -port "$PORT" >"$LOG" 2>&1 </dev/null &
JPID=$!
trap 'kill $JPID 2>/dev/null; exit 0' TERM INT HUP
while kill -0 "$PARENT" 2>/dev/null && kill -0 "$JPID" 2>/dev/null; do
    sleep 0.5
done
if kill -0 "$JPID" 2>/dev/null; then
    kill "$JPID" 2>/dev/null
    i=0
    while kill -0 "$JPID" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
    kill -9 "$JPID" 2>/dev/null
    rm -f "$LOG"
fi
wait "$JPID" 2>/dev/null
exit 0
"#;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .env("PARENT", std::process::id().to_string())
        .env("JAR", jar)
        .env("LIB", lib_dir)
        .env("PORT", port.to_string())
        .env("LOG", &log)
        .current_dir(lib_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawning sh for DynamoDB Local: {e}"))?;

    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if answers_http(port) {
            // `child` is deliberately leaked: the watchdog outlives this call.
            std::mem::forget(child);
            return Ok(());
        }
        if exited(&mut child) {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!(
                "DynamoDB Local exited before answering on port {port}; log {}:\n{text}",
                log.display()
            ));
        }
        if Instant::now() >= deadline {
            // TERM the watchdog: its trap stops Java as well.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!(
                "DynamoDB Local did not answer on port {port} within {}s; log {}:\n{text}",
                START_TIMEOUT.as_secs(),
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn exited(child: &mut Child) -> bool {
    matches!(child.try_wait(), Ok(Some(_)))
}

/// True once something speaks HTTP on the port (DynamoDB Local answers a
/// bare `GET /` with 400, which is good enough).
fn answers_http(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 5];
    matches!(stream.read_exact(&mut buf), Ok(())) && &buf == b"HTTP/"
}

/// A table name unique to this call: `prefix` (reduced to the characters
/// DynamoDB allows, `[A-Za-z0-9_.-]`), process id, a process-wide counter
/// and the current time in nanoseconds. At most 255 characters.
pub fn unique_table_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let suffix = format!("-{}-{n}-{nanos}", std::process::id());
    let mut clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        clean.push('t');
    }
    clean.truncate(255 - suffix.len());
    clean + &suffix
}

/// Deletes a table, ignoring every error (missing table, endpoint gone...).
/// Meant for the end of a test; with `-inMemory` Local nothing persists anyway.
pub async fn delete_table(client: &Client, name: &str) {
    let _ = client.delete_table().table_name(name).send().await;
}

/// Every item of `table`, read with a strongly consistent scan (the
/// toolkit's own items included).
pub async fn scan_all(client: &Client, table: &str) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = client.scan().table_name(table).consistent_read(true).set_exclusive_start_key(start).send().await.expect("scan");
        out.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            return out;
        }
    }
}

/// Runs an application write again while DynamoDB Local answers
/// `InternalFailure`: the file-backed Local (scripts/dynamodb-local.sh)
/// does so at times to a write made while a stream is being turned on.
/// For whole puts, deletes and updates whose outcome the caller records
/// only once acknowledged. Panics on any other error.
pub async fn local_retry<T, F, Fut>(mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, singletable::Error>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await {
            Ok(v) => return v,
            Err(e) if attempt < 20 && e.to_string().contains("InternalFailure") => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}
