//! Shared pieces of the end-to-end tests: the server process, the peers'
//! paths, and an OCI image layout built from scratch.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

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
}

impl Server {
    /// Starts `berth serve` on `data_dir` and waits until it listens.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// Starts `berth serve` with extra arguments.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
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
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.trim().to_owned());
                    }
                } else if !line.starts_with("  ") {
                    eprintln!("[berth] {line}");
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("berth serve prints its address within 30 s");
        Self { child, addr }
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

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGKILL: no chance to flush or clean up, as in a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (through kill(1): the workspace forbids unsafe code), then
    /// waits for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        run(Command::new("kill").args(["-TERM", &self.child.id().to_string()]));
        self.child.wait().expect("berth exits")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
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
