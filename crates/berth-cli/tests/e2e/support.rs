//! Shared pieces of the end-to-end tests: the server process, the `berth`
//! client as a user runs it, the peers (skopeo among them), and an OCI image
//! layout built from scratch.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use berth_core::digest::Digest;

/// The password of `admin` in every test server.
pub const ADMIN_PASSWORD: &str = "e2e-admin-password";

/// `admin:<password>`, as skopeo's and podman's `--creds` take it.
pub fn admin_creds() -> String {
    format!("admin:{ADMIN_PASSWORD}")
}

/// A `berth serve` process on a free loopback port.
pub struct Server {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// `http` or `https`.
    pub scheme: String,
    /// The lines it wrote to stderr (its log at `warn`), as they came.
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `berth serve` on `data_dir` and waits until it listens.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// Starts `berth serve` with extra arguments.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        Self::spawn(Command::new(env!("CARGO_BIN_EXE_berth")), data_dir, extra)
    }

    /// Starts `berth serve` with extra arguments and environment variables.
    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &OsStr)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
        command.envs(env.iter().copied());
        Self::spawn(command, data_dir, extra)
    }

    /// Starts `berth serve` with its open-file limit (soft and hard) set to
    /// `nofile`, as `ulimit -n` would before a start.
    pub fn start_with_fd_limit(data_dir: &Path, nofile: u32, extra: &[&str]) -> Self {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={nofile}:{nofile}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_berth"));
        Self::spawn(command, data_dir, extra)
    }

    fn spawn(mut command: Command, data_dir: &Path, extra: &[&str]) -> Self {
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .env("BERTH_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("berth binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split(" listening on ").nth(1) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(url.trim().to_owned());
                    }
                } else if !line.starts_with("  ") {
                    eprintln!("[berth] {line}");
                    kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("berth serve prints its address within 30 s");
        let (scheme, addr) = url.split_once("://").expect("a URL");
        Self {
            child,
            addr: addr.to_owned(),
            scheme: scheme.to_owned(),
            log,
        }
    }

    /// The lines the server wrote to stderr so far, but its start banner.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A bearer token for `admin` with `scope` (space-separated scopes).
    pub fn admin_token(&self, scope: &str) -> String {
        let response = reqwest::blocking::Client::new()
            .get(self.url("/token"))
            .query(&[("service", self.addr.as_str()), ("scope", scope)])
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .expect("token request");
        assert_eq!(response.status(), 200, "admin gets a token");
        let body: serde_json::Value = response.json().expect("token JSON");
        body["token"].as_str().expect("token field").to_owned()
    }

    /// `GET path` with a bearer token for `scope`, as JSON.
    pub fn get_json(&self, path: &str, scope: &str) -> serde_json::Value {
        reqwest::blocking::Client::new()
            .get(self.url(path))
            .bearer_auth(self.admin_token(scope))
            .send()
            .expect("GET")
            .json()
            .expect("JSON body")
    }

    /// `http://127.0.0.1:<port><path>` (`https` when serving TLS).
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// SIGKILL: no chance to flush or clean up, as in a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (through kill(1): the workspace forbids unsafe code), then
    /// waits for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.child.wait().expect("berth exits")
    }

    /// Sends signal `name` (`INT`, `TERM`, `HUP`) through kill(1).
    pub fn signal(&self, name: &str) {
        run(Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]));
    }

    /// The exit status, if the process exits within `limit`.
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `berth` as a user runs it, with docker's, podman's and berth's own files
/// under one test directory, so that no credentials file of the machine is
/// in reach; and no `BERTH_USERNAME`, `BERTH_PASSWORD` or `BERTH_REGISTRY`
/// from the environment but what the test sets with [`Cli::env`].
pub struct Cli {
    home: PathBuf,
    env: Vec<(String, OsString)>,
}

impl Cli {
    /// No credential from the environment: berth has only what `berth login`
    /// stored under `home`.
    pub fn new(home: &Path) -> Self {
        Self {
            home: home.to_owned(),
            env: Vec::new(),
        }
    }

    /// As `user` with `password`, through `BERTH_USERNAME` and `BERTH_PASSWORD`.
    pub fn user(home: &Path, user: &str, password: &str) -> Self {
        Self::new(home)
            .env("BERTH_USERNAME", user)
            .env("BERTH_PASSWORD", password)
    }

    /// As `admin` (the password of every test server), through
    /// `BERTH_USERNAME` and `BERTH_PASSWORD`.
    pub fn admin(home: &Path) -> Self {
        Self::user(home, "admin", ADMIN_PASSWORD)
    }

    /// Sets `name` to `value` in the environment of every command.
    pub fn env(mut self, name: &str, value: impl AsRef<OsStr>) -> Self {
        self.env.push((name.to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Points `command`'s credential and configuration files (docker's,
    /// podman's, the XDG directories) under the home directory: for a peer
    /// that reads what berth stored there.
    pub fn confine<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command
            .env("HOME", self.home.join("home"))
            .env("DOCKER_CONFIG", self.home.join("docker"))
            .env("REGISTRY_AUTH_FILE", self.home.join("auth.json"))
            .env("XDG_RUNTIME_DIR", self.home.join("run"))
            .env("XDG_CONFIG_HOME", self.home.join("config"))
    }

    /// `berth <args>`, not started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
        command.args(args);
        self.confine(&mut command)
            .env("NO_COLOR", "1")
            .env_remove("BERTH_USERNAME")
            .env_remove("BERTH_PASSWORD")
            .env_remove("BERTH_REGISTRY")
            .envs(self.env.iter().map(|(name, value)| (name, value)));
        command
    }

    /// `berth <args>` on a pseudo-terminal (util-linux `script`), not
    /// started: its stdin, stdout and stderr are the terminal, which
    /// `script` feeds from its own stdin and copies to its stdout. The
    /// environment is that of [`command`](Self::command).
    pub fn pty(&self, args: &[&str]) -> Command {
        let inner = self.command(args);
        let quote = |s: &OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
        let line: Vec<String> = std::iter::once(inner.get_program())
            .chain(inner.get_args())
            .map(quote)
            .collect();
        let mut script = Command::new(peer("script"));
        script.args(["-qec", &line.join(" "), "/dev/null"]);
        for (name, value) in inner.get_envs() {
            match value {
                Some(value) => script.env(name, value),
                None => script.env_remove(name),
            };
        }
        script
    }

    /// Runs `berth <args>` with `stdin`: its output, whatever its exit code.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        feed(&mut self.command(args), stdin)
    }

    /// Runs `berth <args>`, which must succeed (its stderr is shown if it
    /// does not): its output.
    pub fn ok(&self, args: &[&str], stdin: &[u8]) -> Output {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs `berth <args>`, which must succeed: its stdout, as text.
    pub fn ok_text(&self, args: &[&str], stdin: &[u8]) -> String {
        String::from_utf8(self.ok(args, stdin).stdout).expect("stdout is UTF-8")
    }

    /// Runs `berth <args>` (an `--output json`), which must succeed: its
    /// stdout, parsed.
    pub fn ok_json(&self, args: &[&str], stdin: &[u8]) -> serde_json::Value {
        serde_json::from_slice(&self.ok(args, stdin).stdout).expect("stdout is JSON")
    }

    /// Runs `berth <args>`, which must exit 1: its stderr.
    pub fn fails(&self, args: &[&str], stdin: &[u8]) -> String {
        failure(args, &self.run(args, stdin))
    }

    /// Runs `berth <args>`, which must exit 1 with nothing on stdout: its
    /// stderr.
    pub fn fails_with_empty_stdout(&self, args: &[&str], stdin: &[u8]) -> String {
        let out = self.run(args, stdin);
        let stderr = failure(args, &out);
        assert!(out.stdout.is_empty(), "berth {args:?}: {:?}", out.stdout);
        stderr
    }
}

/// The stderr of `berth <args>`, which must have exited 1.
fn failure(args: &[&str], out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "berth {args:?}: stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr.clone()).expect("stderr is UTF-8")
}

/// Runs `command` with `stdin`: its output. The input is written from a
/// thread, since a program may print (and fill a pipe) before it has read
/// everything.
pub fn feed(command: &mut Command, stdin: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("command starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    let bytes = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // A program that exits without reading all of it closes the pipe:
        // what it does then is the test's to check, not a failure here.
        let _ = input.write_all(&bytes);
    });
    let out = child.wait_with_output().expect("command runs");
    writer.join().expect("stdin writer");
    out
}

/// `skopeo`, with no policy file needed: a fresh machine has none, so it
/// accepts anything, as in CI images.
pub fn skopeo() -> Command {
    let mut command = Command::new(peer("skopeo"));
    command.arg("--insecure-policy");
    command
}

/// `skopeo copy oci:<dir>:<tag> docker://<target>` with the admin's credentials.
pub fn skopeo_push(dir: &Path, tag: &str, target: &str) {
    run(skopeo()
        .args(["copy", "--dest-tls-verify=false", "--dest-creds"])
        .arg(admin_creds())
        .arg(format!("oci:{}:{tag}", dir.display()))
        .arg(format!("docker://{target}")));
}

/// `skopeo copy docker://<source> oci:<dir>:<tag>` with the admin's credentials.
pub fn skopeo_pull(source: &str, dir: &Path, tag: &str) {
    run(skopeo()
        .args(["copy", "--src-tls-verify=false", "--src-creds"])
        .arg(admin_creds())
        .arg(format!("docker://{source}"))
        .arg(format!("oci:{}:{tag}", dir.display())));
}

/// The path of a peer program, or a failure that says how to install it.
pub fn peer(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed; run `bash .ci/install-deps` (it installs the test peers)"
            )
        })
}

/// Runs a command and returns its stdout, failing the test with its stderr.
pub fn run(command: &mut Command) -> String {
    let output = command.output().expect("command starts");
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Deterministic pseudo-random bytes (xorshift64*), so no test depends on an RNG crate.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// An OCI image layout on disk with one image (one config, one layer).
pub struct Layout {
    /// The layout directory.
    pub dir: PathBuf,
    /// The image manifest's digest.
    pub manifest: Digest,
    /// Every blob digest (config and layer).
    pub blobs: Vec<Digest>,
}

impl Layout {
    /// Asserts that `dir`, an OCI layout a client pulled this image into,
    /// holds its manifest (by digest: byte for byte) and every blob.
    pub fn assert_pulled_into(&self, dir: &Path) {
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
        assert_eq!(
            index["manifests"][0]["digest"].as_str(),
            Some(self.manifest.to_string().as_str()),
            "the manifest came back byte for byte"
        );
        for blob in &self.blobs {
            let bytes = std::fs::read(dir.join("blobs/sha256").join(blob.hex())).unwrap();
            assert_eq!(&Digest::sha256_of(&bytes), blob);
        }
    }
}

/// `podman` with a storage root of its own under `work` (vfs driver), so
/// that tests do not share podman's state.
pub fn podman(work: &Path) -> Command {
    let mut command = Command::new(peer("podman"));
    command
        .arg("--storage-driver=vfs")
        .arg("--root")
        .arg(work.join("storage"))
        .arg("--runroot")
        .arg(work.join("run"));
    command
}

/// A gzip-compressed tar layer holding one file of `size` random bytes, and its
/// uncompressed digest (the `diff_id` that podman checks when it unpacks).
fn tar_gz_layer(size: usize, seed: u64) -> (Vec<u8>, Digest) {
    let content = random_bytes(size, seed);
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "data.bin", content.as_slice())
        .expect("tar entry");
    let tar = tar.into_inner().expect("tar finished");
    let diff_id = Digest::sha256_of(&tar);
    // Stored (level 0) deflate blocks: valid gzip, and fast in a debug build.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    std::io::Write::write_all(&mut gz, &tar).expect("gzip");
    (gz.finish().expect("gzip finished"), diff_id)
}

/// Writes an OCI image layout with a random layer of `layer_size` bytes, tagged `tag`.
pub fn write_layout(dir: &Path, tag: &str, layer_size: usize, seed: u64) -> Layout {
    let blobs_dir = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs_dir).expect("layout dir");
    let put = |bytes: &[u8]| -> Digest {
        let digest = Digest::sha256_of(bytes);
        std::fs::write(blobs_dir.join(digest.hex()), bytes).expect("blob written");
        digest
    };
    let (layer, diff_id) = tar_gz_layer(layer_size, seed);
    let layer_digest = put(&layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "config": {},
    })
    .to_string();
    let config_digest = put(config.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.to_string(),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer_digest.to_string(),
            "size": layer.len(),
        }],
    })
    .to_string();
    let manifest_digest = put(manifest.as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest.to_string(),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).expect("index written");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout written");
    Layout {
        dir: dir.to_owned(),
        manifest: manifest_digest,
        blobs: vec![config_digest, layer_digest],
    }
}

/// `berth serve` on a free loopback port with `--config config`, the test
/// administrator's password, not started.
fn serve_with_config(data: &Path, config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .arg("--config")
        .arg(config)
        .env("BERTH_ADMIN_PASSWORD", ADMIN_PASSWORD);
    command
}

/// Every line `berth serve` writes to stderr from its start until its banner
/// ends, logging at `debug`; then it is stopped.
pub fn start_lines(data: &Path, config: &Path) -> Vec<String> {
    let mut child = serve_with_config(data, config)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // The banner's last line, as a server with access control ends it.
            if line.contains("berth pull ") {
                let _ = tx.send(());
            }
            lines.push(line);
        }
        lines
    });
    let banner = rx.recv_timeout(Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    let lines = reader.join().unwrap();
    assert!(
        banner.is_ok(),
        "no banner within 30 s:\n{}",
        lines.join("\n")
    );
    lines
}

/// `berth serve --config FILE` that must refuse to start: exit 1 and its
/// stderr.
pub fn refused_start(config: &Path, data: &Path) -> String {
    let mut child = serve_with_config(data, config)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("berth serve with {} is still running", config.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "");
    stderr
}
