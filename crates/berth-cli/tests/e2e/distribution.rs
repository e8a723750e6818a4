//! Stock CNCF distribution 2.8.2 (Debian `docker-registry`) as a peer
//! process: started with berth's tokens or an htpasswd file, killed on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Server, peer};

/// The `service` berth writes in `aud` and distribution requires.
pub const SERVICE: &str = "distribution-test";
/// berth's default `iss`, which distribution must be configured with.
pub const ISSUER: &str = "berth";

/// A `docker-registry serve` process, killed on drop. Its log goes to a file
/// that failed assertions quote.
pub struct Distribution {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    log: PathBuf,
}

/// How distribution authenticates.
pub enum Auth<'a> {
    /// Bearer tokens from `berth`, verified through its root certificate.
    BerthTokens {
        berth: &'a Server,
        root_cert: &'a Path,
    },
    /// Basic against an htpasswd file.
    Htpasswd { file: &'a Path },
}

impl Distribution {
    /// Writes a config under `dir` with `auth` and starts distribution with
    /// it (deletes enabled).
    pub fn start(dir: &Path, auth: Auth<'_>) -> Self {
        let addr = free_addr();
        let storage = dir.join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let auth = match auth {
            Auth::BerthTokens { berth, root_cert } => format!(
                "auth:\n  token:\n    realm: \"{realm}\"\n    service: \"{SERVICE}\"\n    \
                 issuer: \"{ISSUER}\"\n    rootcertbundle: \"{root}\"\n",
                realm = berth.url("/token"),
                root = root_cert.display(),
            ),
            Auth::Htpasswd { file } => format!(
                "auth:\n  htpasswd:\n    realm: basic-realm\n    path: \"{}\"\n",
                file.display()
            ),
        };
        let config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n\
             storage:\n  filesystem:\n    rootdirectory: \"{storage}\"\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n{auth}",
            storage = storage.display(),
        );
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, &config).unwrap();
        let log = dir.join("distribution.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(peer("docker-registry"))
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("docker-registry starts");
        let started = Self { child, addr, log };
        started.wait_ready();
        started
    }

    /// Waits until `/v2/` answers (401: both modes authenticate).
    fn wait_ready(&self) {
        let client = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match client.get(self.url("/v2/")).send() {
                Ok(_) => return,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("distribution does not answer: {e}\nlog:\n{}", self.log()),
            }
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What distribution logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address free a moment ago.
pub fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}
