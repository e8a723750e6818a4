//! Events and webhooks against a real `berth serve --config FILE`: a push is
//! told to a receiver on 127.0.0.1 (in this process), signed with the
//! endpoint's secret, even when the receiver was down and berth was SIGKILLed
//! in between; a delivery cut by a SIGKILL mid-request is sent again, in the
//! repository's order; failed deliveries are listed and redelivered by
//! `berth admin events`; a bad `[[webhook]]` table stops the start with one
//! line; the start lines name each endpoint and never its secret.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use berth_core::digest::Digest;
use berth_registry::events::signature;
use serde_json::{Value, json};

use crate::support::{Cli, Server, refused_start, start_lines};

/// The signing secret of the endpoint of every test but the refused ones.
const SECRET: &str = "e2e-webhook-secret-0123456789";
/// The endpoint's name in `[[webhook]]`.
const ENDPOINT: &str = "hooks";

/// A request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    /// `POST /hook HTTP/1.1`.
    request_line: String,
    /// Header names in lower case, values trimmed, in the order sent.
    headers: Vec<(String, String)>,
    /// The body, byte for byte.
    body: Vec<u8>,
    /// The status answered; `None` for a request left hanging.
    answered: Option<u16>,
    /// When it was read whole.
    at: Instant,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as the CloudEvents document it is.
    fn event(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    fn subject(&self) -> String {
        self.event()["subject"].as_str().unwrap_or("").to_owned()
    }

    /// Checks what every delivery carries: a `POST` of a CloudEvents JSON
    /// document, whose `berth-signature` verifies with the endpoint's secret
    /// (as a receiver checks it: 300 s of tolerance).
    fn assert_signed(&self) {
        assert_eq!(self.request_line, "POST /hook HTTP/1.1");
        assert_eq!(
            self.header("content-type"),
            Some("application/cloudevents+json")
        );
        let header = self
            .header(signature::HEADER)
            .expect("a berth-signature header");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert_eq!(
            signature::verify(SECRET.as_bytes(), header, &self.body, now, 300),
            Ok(()),
            "the signature {header} verifies over the body as received"
        );
        assert_eq!(
            signature::verify(b"another-secret-0123456789", header, &self.body, now, 300),
            Err(signature::SignatureError::Mismatch),
            "and with no other secret"
        );
    }
}

/// What the receiver's connections share with the test.
#[derive(Default)]
struct Shared {
    /// The status answered to requests not left hanging.
    status: AtomicU16,
    /// How many of the next requests are left hanging: read whole, never
    /// answered, their connections held open.
    hang: AtomicUsize,
    requests: Mutex<Vec<Received>>,
    held: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
}

/// A webhook receiver on 127.0.0.1: records each request and answers with
/// the status the test sets, or leaves it hanging; "down" until
/// [`up`](Self::up) binds its port.
struct Receiver {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Nothing listening: a loopback port that was free (bound, then
    /// released), kept free until [`up`](Self::up).
    fn down(status: u16) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let shared = Arc::new(Shared::default());
        shared.status.store(status, Ordering::SeqCst);
        Self {
            port,
            shared,
            accept: None,
        }
    }

    /// Listening, answering `status`.
    fn started(status: u16) -> Self {
        let mut receiver = Self::down(status);
        receiver.up();
        receiver
    }

    /// Binds the port and answers from now on.
    fn up(&mut self) {
        assert!(self.accept.is_none(), "the receiver is up already");
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("the receiver's port {} is free: {e}", self.port));
        let shared = self.shared.clone();
        self.accept = Some(std::thread::spawn(move || {
            for stream in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || handle(stream, &shared));
            }
        }));
    }

    /// The URL of the endpoint.
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Answers `status` from now on.
    fn answer(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Leaves the next `n` requests hanging.
    fn hang_next(&self, n: usize) {
        self.shared.hang.store(n, Ordering::SeqCst);
    }

    /// Every request so far, in the order they came.
    fn requests(&self) -> Vec<Received> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The requests once `done` holds of them, polled until `limit`.
    fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        poll(what, limit, || {
            let requests = self.requests();
            done(&requests).then_some(requests)
        })
    }

    /// How many of the hanging requests' connections the client still holds
    /// open (a client that gave up has closed its end).
    fn open_hanging(&self) -> usize {
        let held = self.shared.held.lock().unwrap_or_else(|e| e.into_inner());
        held.iter()
            .filter(|stream| {
                stream.set_nonblocking(true).unwrap();
                let open = match stream.peek(&mut [0u8; 1]) {
                    Ok(0) => false,
                    Ok(_) => true,
                    Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                };
                stream.set_nonblocking(false).unwrap();
                open
            })
            .count()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            // Wakes the accepting thread, which sees the stop.
            let _ = TcpStream::connect(("127.0.0.1", self.port));
            let _ = accept.join();
        }
    }
}

/// Reads one request from `stream`, records it, and answers it or holds it.
fn handle(stream: TcpStream, shared: &Shared) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let Some((request_line, headers, body)) = read_request(&stream) else {
        return;
    };
    let hang = shared
        .hang
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let answered = (!hang).then(|| shared.status.load(Ordering::SeqCst));
    shared
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Received {
            request_line,
            headers,
            body,
            answered,
            at: Instant::now(),
        });
    match answered {
        None => shared
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(stream),
        Some(status) => {
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status} Receiver\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = stream.flush();
        }
    }
}

type Request = (String, Vec<(String, String)>, Vec<u8>);

/// An HTTP/1.1 request with a `content-length` body (what reqwest sends for
/// a body of bytes); `None` if the connection ends first.
fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let request_line = line.trim_end().to_owned();
    if request_line.is_empty() {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .map_or(0, |(_, value)| value.parse::<usize>().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((request_line, headers, body))
}

/// `probe`'s value once it gives one, tried every 100 ms; fails the test
/// saying `what` did not happen within `limit`.
fn poll<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `berth.toml` in `dir`: one `[[webhook]]` to `url`, signed with
/// [`SECRET`], with the `extra` keys.
fn config(dir: &Path, url: &str, extra: &str) -> PathBuf {
    let path = dir.join("berth.toml");
    std::fs::write(
        &path,
        format!(
            "[[webhook]]\nname = \"{ENDPOINT}\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n{extra}"
        ),
    )
    .unwrap();
    path
}

/// `berth serve --config FILE` on `data`.
fn serve(data: &Path, config: &Path) -> Server {
    Server::start_with(data, &["--config", config.to_str().unwrap()])
}

/// `berth` as admin against `server`.
fn admin(server: &Server, home: &Path) -> Cli {
    Cli::admin(home).env("BERTH_REGISTRY", server.url(""))
}

/// `berth push HOST/admin/app:TAG FILE` as admin: the manifest's digest.
fn push(server: &Server, home: &Path, tag: &str) -> String {
    std::fs::create_dir_all(home).unwrap();
    let file = home.join(format!("{tag}.txt"));
    std::fs::write(&file, format!("the file of {tag}\n")).unwrap();
    let pushed = Cli::admin(home).ok_json(
        &[
            "push",
            &format!("{}/admin/app:{tag}", server.addr),
            file.to_str().unwrap(),
            "--output",
            "json",
        ],
        b"",
    );
    pushed["digest"].as_str().unwrap().to_owned()
}

/// Pushes one image's blobs to `admin/app`, then a manifest per tag (each
/// with its own annotation, so its own digest) in a row over HTTP: the
/// tags' events are committed within milliseconds of each other. Their
/// digests, in the order of `tags`.
fn push_tags_in_a_row(server: &Server, tags: &[&str]) -> Vec<String> {
    let client = reqwest::blocking::Client::new();
    let bearer = server.admin_token("repository:admin/app:pull,push");
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = b"a layer's bytes, not really a tarball".to_vec();
    let mut descriptors = Vec::new();
    for (bytes, media_type) in [
        (config.to_vec(), "application/vnd.oci.image.config.v1+json"),
        (layer, "application/vnd.oci.image.layer.v1.tar+gzip"),
    ] {
        let digest = Digest::sha256_of(&bytes);
        let response = client
            .post(server.url(&format!("/v2/admin/app/blobs/uploads/?digest={digest}")))
            .bearer_auth(&bearer)
            .header("content-type", "application/octet-stream")
            .body(bytes.clone())
            .send()
            .unwrap();
        assert_eq!(response.status(), 201, "blob {digest} uploaded");
        descriptors.push(
            json!({"mediaType": media_type, "digest": digest.to_string(), "size": bytes.len()}),
        );
    }
    let mut digests = Vec::new();
    for tag in tags {
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptors[0],
            "layers": [descriptors[1]],
            "annotations": {"e2e.tag": tag},
        })
        .to_string();
        let response = client
            .put(server.url(&format!("/v2/admin/app/manifests/{tag}")))
            .bearer_auth(&bearer)
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
            .unwrap();
        assert_eq!(response.status(), 201, "manifest {tag} pushed");
        digests.push(Digest::sha256_of(manifest.as_bytes()).to_string());
    }
    digests
}

/// `berth admin events list --output json` with `filter`: the deliveries.
fn deliveries(cli: &Cli, filter: &[&str]) -> Vec<Value> {
    let mut args = vec!["admin", "events", "list", "--output", "json"];
    args.extend_from_slice(filter);
    cli.ok_json(&args, b"")["deliveries"]
        .as_array()
        .expect("a deliveries array")
        .clone()
}

/// The receiver is down when a tag is pushed; berth tries, fails, and is
/// SIGKILLed with the delivery pending. Restarted on the same data directory
/// and settings, with the receiver up, it delivers the event: signed with
/// the endpoint's secret, the push it tells, and listed as delivered.
#[test]
fn an_event_committed_before_a_kill_9_is_delivered_after_the_restart() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let mut receiver = Receiver::down(200);
    // Retries soon and often: the restarted server tries again within a second.
    let config = config(
        work.path(),
        &receiver.url(),
        "timeout_secs = 1\nretries = 100\nretry_initial_secs = 0.2\nretry_max_secs = 1\n",
    );
    let mut server = serve(data.path(), &config);
    let digest = push(&server, &home, "v1");

    // Pending, attempted at least once (the connection refused), the error kept.
    let cli = admin(&server, &home);
    let pending = poll(
        "the push's delivery is pending with an attempt made",
        Duration::from_secs(30),
        || {
            let pending = deliveries(&cli, &["--pending"]);
            (pending.len() == 1 && pending[0]["attempts"].as_u64() >= Some(1))
                .then(|| pending[0].clone())
        },
    );
    assert_eq!(pending["state"], "pending");
    assert_eq!(pending["endpoint"], ENDPOINT);
    assert_eq!(pending["type"], "berth.manifest.pushed");
    assert_eq!(pending["subject"], "admin/app:v1");
    assert_eq!(pending["repository"], "admin/app");
    assert_eq!(pending["lastStatus"], Value::Null);
    let error = pending["lastError"].as_str().unwrap();
    assert!(error.contains("Connection refused"), "{error}");
    // Never the URL: its path may carry a token.
    assert!(!error.contains(&receiver.url()), "{error}");

    server.kill();
    receiver.up();
    let started = Instant::now();
    let server = serve(data.path(), &config);
    let received = receiver.wait_for(
        "the event is delivered after the restart",
        Duration::from_secs(60),
        |r| !r.is_empty(),
    );
    eprintln!(
        "delivered {} ms after the restart",
        started.elapsed().as_millis()
    );
    assert_eq!(received.len(), 1, "{received:?}");
    let delivery = &received[0];
    assert_eq!(delivery.answered, Some(200));
    delivery.assert_signed();
    let event = delivery.event();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["id"], pending["id"]);
    assert_eq!(event["type"], "berth.manifest.pushed");
    assert_eq!(event["subject"], "admin/app:v1");
    assert_eq!(event["datacontenttype"], "application/json");
    assert_eq!(event["data"]["repository"], "admin/app");
    assert_eq!(event["data"]["tag"], "v1");
    assert_eq!(event["data"]["digest"], digest.as_str());
    assert_eq!(event["data"]["actor"], "admin");
    // Numbered after the refused attempts, which the pending record counted.
    let attempt: u64 = delivery
        .header("berth-delivery-attempt")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        attempt > pending["attempts"].as_u64().unwrap(),
        "attempt {attempt} after {pending}"
    );

    let cli = admin(&server, &home);
    let delivered = poll(
        "the delivery is listed as delivered",
        Duration::from_secs(10),
        || {
            let delivered = deliveries(&cli, &["--delivered"]);
            (delivered.len() == 1).then(|| delivered[0].clone())
        },
    );
    assert_eq!(delivered["state"], "delivered");
    assert_eq!(delivered["event"], pending["event"]);
    assert_eq!(delivered["id"], pending["id"]);
    assert_eq!(delivered["subject"], "admin/app:v1");
    assert_eq!(delivered["attempts"].as_u64(), Some(attempt));
    assert_eq!(delivered["lastStatus"], 200);
    assert_eq!(delivered["lastError"], Value::Null);
    assert_eq!(deliveries(&cli, &["--pending"]), Vec::<Value>::new());
}

/// The receiver takes the first delivery and never answers; three tags are
/// pushed to one repository meanwhile; berth is SIGKILLed with that request
/// open. Restarted, it sends the first event again (at the latest once the
/// claim's lease, the endpoint's 1 s timeout plus 30 s, has lapsed), then the
/// two others: every push told, the answered deliveries in push order, the
/// copy of the first event the same document (same CloudEvents `id`).
#[test]
fn a_delivery_cut_by_a_kill_9_mid_request_is_sent_again_in_order() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    // Refusing, but for the first request, which it leaves hanging: any
    // other request before the kill would be refused, and seen.
    let receiver = Receiver::started(503);
    receiver.hang_next(1);
    let config = config(work.path(), &receiver.url(), "timeout_secs = 1\n");
    let mut server = serve(data.path(), &config);
    let tags = ["t1", "t2", "t3"];
    let digests = push_tags_in_a_row(&server, &tags);

    let first = receiver.wait_for(
        "the first delivery reaches the receiver",
        Duration::from_secs(10),
        |r| !r.is_empty(),
    );
    // The kill cuts that request: berth still holds it open (its 1 s timeout
    // has not run out), and has sent nothing else.
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].answered, None);
    assert_eq!(first[0].subject(), "admin/app:t1");
    assert_eq!(receiver.open_hanging(), 1, "berth is still waiting");
    let open_for = first[0].at.elapsed();
    server.kill();
    let killed = Instant::now();
    eprintln!(
        "the first delivery was open {} ms when berth was killed",
        open_for.as_millis()
    );

    receiver.answer(200);
    let server = serve(data.path(), &config);
    let received = receiver.wait_for(
        "every pushed tag's event is delivered after the restart",
        Duration::from_secs(60),
        |r| r.iter().filter(|r| r.answered == Some(200)).count() >= tags.len(),
    );
    eprintln!(
        "the cut delivery was sent again and the chain delivered {} ms after the kill",
        killed.elapsed().as_millis()
    );

    for request in &received {
        request.assert_signed();
        assert_eq!(request.event()["type"], "berth.manifest.pushed");
    }
    let answered: Vec<String> = received
        .iter()
        .filter(|r| r.answered == Some(200))
        .map(Received::subject)
        .collect();
    assert_eq!(
        answered,
        ["admin/app:t1", "admin/app:t2", "admin/app:t3"],
        "the delivered events in push order"
    );
    // The first event came twice (cut, then sent again): the same document.
    let all: Vec<String> = received.iter().map(Received::subject).collect();
    assert_eq!(
        all,
        [
            "admin/app:t1",
            "admin/app:t1",
            "admin/app:t2",
            "admin/app:t3"
        ]
    );
    assert_eq!(received[0].event()["id"], received[1].event()["id"]);
    assert_eq!(received[0].body, received[1].body);
    let ids: Vec<Value> = received[1..]
        .iter()
        .map(|r| r.event()["id"].clone())
        .collect();
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "one id per event: {ids:?}"
    );
    for (request, digest) in received[1..].iter().zip(&digests) {
        assert_eq!(request.event()["data"]["digest"], digest.as_str());
    }

    let home = work.path().join("home");
    let cli = admin(&server, &home);
    let delivered = poll(
        "the three deliveries are listed as delivered",
        Duration::from_secs(10),
        || {
            let delivered = deliveries(&cli, &["--delivered"]);
            (delivered.len() == 3).then_some(delivered)
        },
    );
    let subjects: Vec<&str> = delivered
        .iter()
        .map(|d| d["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        ["admin/app:t3", "admin/app:t2", "admin/app:t1"],
        "newest first"
    );
    assert_eq!(deliveries(&cli, &["--pending"]), Vec::<Value>::new());
    assert_eq!(
        receiver.requests().len(),
        4,
        "nothing sent after the chain ended"
    );
}

/// The receiver refuses with 500: the first attempt and its one retry fail,
/// and `berth admin events list --failed` shows the delivery failed after 2
/// attempts with the status. With the receiver answering 200, `redeliver
/// --failed` sends it again (attempts counted afresh) and nothing is left
/// failed.
#[test]
fn failed_deliveries_are_listed_and_redelivered_by_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let receiver = Receiver::started(500);
    let config = config(
        work.path(),
        &receiver.url(),
        "retries = 1\nretry_initial_secs = 0.05\n",
    );
    let server = serve(data.path(), &config);
    let cli = admin(&server, &home);
    push(&server, &home, "v1");

    let table = poll(
        "the delivery is listed as failed",
        Duration::from_secs(30),
        || {
            let out = cli.ok_text(&["admin", "events", "list", "--failed"], b"");
            (out.lines().count() > 1).then_some(out)
        },
    );
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one row:\n{table}");
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "EVENT", "STATE", "ATTEMPTS", "ENDPOINT", "TYPE", "SUBJECT", "CREATED", "NEXT", "LAST",
            "ERROR"
        ]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    let failed = deliveries(&cli, &["--failed"]);
    assert_eq!(failed.len(), 1, "{failed:?}");
    let event = failed[0]["event"].as_i64().unwrap().to_string();
    let created = berth_core::token::format_rfc3339(failed[0]["createdAt"].as_i64().unwrap());
    assert_eq!(
        row,
        [
            event.as_str(),
            "failed",
            "2",
            ENDPOINT,
            "manifest.pushed",
            "admin/app:v1",
            created.as_str(),
            "HTTP",
            "500",
            "Internal",
            "Server",
            "Error"
        ],
        "{table}"
    );
    assert_eq!(failed[0]["lastStatus"], 500);
    assert_eq!(failed[0]["lastError"], "HTTP 500 Internal Server Error");
    let refused = receiver.requests();
    assert_eq!(refused.len(), 2, "the first attempt and one retry");
    let attempts: Vec<Option<&str>> = refused
        .iter()
        .map(|r| r.header("berth-delivery-attempt"))
        .collect();
    assert_eq!(attempts, [Some("1"), Some("2")]);

    receiver.answer(200);
    assert_eq!(
        cli.ok_text(&["admin", "events", "redeliver", "--failed"], b""),
        "1 delivery pending again\n"
    );
    let received = receiver.wait_for(
        "the redelivered event arrives",
        Duration::from_secs(10),
        |r| r.len() == 3,
    );
    let again = &received[2];
    assert_eq!(again.answered, Some(200));
    again.assert_signed();
    assert_eq!(again.body, refused[0].body, "the same document");
    assert_eq!(again.event()["id"], failed[0]["id"]);
    assert_eq!(again.header("berth-delivery-attempt"), Some("1"));

    let delivered = poll(
        "the redelivery is listed as delivered",
        Duration::from_secs(10),
        || {
            let delivered = deliveries(&cli, &["--delivered"]);
            (delivered.len() == 1).then(|| delivered[0].clone())
        },
    );
    assert_eq!(delivered["event"], failed[0]["event"]);
    assert_eq!(delivered["attempts"], 1);
    assert_eq!(delivered["lastStatus"], 200);
    let out = cli.ok(&["admin", "events", "list", "--failed"], b"");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "");
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "no deliveries failed\n"
    );
    assert_eq!(receiver.requests().len(), 3, "nothing sent twice");
}

/// A `[[webhook]]` with a 5-byte secret, or without a url: `berth serve`
/// exits 1 before it listens, with one line naming the webhook and the key.
#[test]
fn a_bad_webhook_table_is_refused_at_start_in_one_line() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");

    let short = work.path().join("short.toml");
    std::fs::write(
        &short,
        "[[webhook]]\nname = \"ci\"\nurl = \"http://127.0.0.1:9/hook\"\nsecret = \"12345\"\n",
    )
    .unwrap();
    assert_eq!(
        refused_start(&short, &data),
        "berth: webhook \"ci\": secret: at least 16 bytes; e.g. `openssl rand -hex 32` into the file\n"
    );

    let no_url = work.path().join("no-url.toml");
    std::fs::write(
        &no_url,
        format!("[[webhook]]\nname = \"ci\"\nsecret = \"{SECRET}\"\n"),
    )
    .unwrap();
    let line = refused_start(&no_url, &data);
    assert_eq!(
        line,
        "berth: webhook \"ci\": url: missing; give where events are POSTed\n"
    );
    assert!(!line.contains(SECRET));
}

/// The start lines name each endpoint, its URL, actions and repositories;
/// neither the inline secret nor the one read from `secret_file` is written
/// anywhere on stderr, even logging at `debug`.
#[test]
fn the_start_lines_name_each_endpoint_and_never_its_secret() {
    let work = tempfile::tempdir().unwrap();
    let file_secret = "file-secret-fedcba9876543210";
    let secret_file = work.path().join("audit.secret");
    std::fs::write(&secret_file, format!("{file_secret}\n")).unwrap();
    let config = work.path().join("berth.toml");
    std::fs::write(
        &config,
        format!(
            r#"[[webhook]]
name = "ci"
url = "http://127.0.0.1:9/hooks/berth"
secret = "{SECRET}"
repositories = ["admin/**", "acme/app"]
actions = ["push", "delete"]

[[webhook]]
name = "audit"
url = "http://127.0.0.1:9/audit?x=1"
secret_file = "{}"
"#,
            secret_file.display()
        ),
    )
    .unwrap();
    let lines = start_lines(&work.path().join("data"), &config);
    let webhooks: Vec<&str> = lines
        .iter()
        .filter(|line| line.contains("webhook:"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        webhooks,
        [
            "  webhook:    ci -> http://127.0.0.1:9/... (push, delete of admin/**, acme/app)",
            "  webhook:    audit -> http://127.0.0.1:9/... (push, delete, mount of every repository)",
        ],
        "{}",
        lines.join("\n")
    );
    for secret in [SECRET, file_secret] {
        let shown: Vec<&String> = lines.iter().filter(|l| l.contains(secret)).collect();
        assert!(shown.is_empty(), "the secret is printed: {shown:?}");
    }
}
