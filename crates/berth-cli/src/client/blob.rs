//! `berth blob get|put|delete`: a blob's bytes, streamed between a registry
//! and a file (or stdin/stdout), never held in memory whole.
//!
//! `get` verifies the bytes against the digest as they arrive and writes a
//! file as `FILE.partial`, renamed only once complete and verified. `put`
//! hashes first (the upload names its digest up front), spooling stdin to a
//! temporary file to do so, then uploads with one `PUT` (chunks as the
//! fallback, or with `--chunk-size`).

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use berth_client::client::{BlobUpload, Pushed, RegistryClient};
use berth_core::{Algorithm, Digest, Digester, Reference};
use clap::{Args, Subcommand};
use serde_json::json;

use super::tags::parse_reference;
use super::{Common, Output, block_on, connect, json_text, print_out};

/// The buffer a file or stdin is hashed through.
const READ_BUFFER: usize = 1024 * 1024;

/// Download, upload or delete a blob.
#[derive(Debug, Subcommand)]
pub enum BlobCommand {
    /// Download a blob to stdout or a file, verified against its digest.
    Get(GetArgs),
    /// Upload a file (or stdin) as a blob; prints its digest.
    Put(PutArgs),
    /// Delete a blob from a repository.
    Delete(DeleteArgs),
}

/// Download a blob, checking its digest as it arrives.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  berth blob get registry.example.com/acme/app@sha256:... -o layer.tar.gz
  berth blob get acme/app@sha256:... | tar -tz

With -o, the bytes go to FILE.partial, renamed to FILE once complete and
verified; on any failure (a digest mismatch included) the partial file is
removed. On stdout, a failure after bytes were written means they must be
discarded (the exit code is 1).

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct GetArgs {
    /// The blob, as [host[:port]/]name@digest.
    #[arg(value_name = "REF@DIGEST", value_parser = digest_given)]
    reference: String,

    /// Write to FILE instead of stdout (`-` is stdout).
    #[arg(short = 'o', long = "output-file", value_name = "FILE")]
    output_file: Option<PathBuf>,

    #[command(flatten)]
    common: Common,
}

/// Upload a blob from a file or stdin.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  berth blob put registry.example.com/acme/app layer.tar.gz
  tar -cz dir | berth blob put acme/app          # stdin
  berth blob put acme/app big.bin --chunk-size 16777216
  berth blob put acme/app@sha256:... layer.tar.gz  # refuses a file with another digest

The file is hashed first (sha256), since an upload names its digest. stdin is
spooled to a temporary file in $TMPDIR (or /tmp) first, removed afterwards. A
blob the repository holds already is not sent again. One PUT is tried first;
chunks are the fallback where a registry or proxy refuses it, or with
--chunk-size. Prints the digest.

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct PutArgs {
    /// The repository, as [host[:port]/]name; a tag is ignored, a digest checked.
    #[arg(value_name = "REF")]
    reference: String,

    /// The file to upload; `-` or none reads stdin.
    #[arg(value_name = "FILE", default_value = "-")]
    file: String,

    /// Upload in chunks of BYTES (the registry's minimum wins if larger).
    ///
    /// Without it, the blob goes in one PUT, and in chunks of 8 MiB only if
    /// that PUT is refused (a proxy's body limit, say).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    chunk_size: Option<u64>,

    /// Output format: the digest alone, or `{"digest", "size", "pushed"}`.
    #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
    output: Output,

    #[command(flatten)]
    common: Common,
}

/// Delete a blob from a repository.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  berth blob delete registry.example.com/acme/app@sha256:...

The blob leaves this repository; manifests that name it become unusable.
Where the registry refuses deletion (405 UNSUPPORTED), the message says what
it offers instead.

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct DeleteArgs {
    /// The blob, as [host[:port]/]name@digest.
    #[arg(value_name = "REF@DIGEST", value_parser = digest_given)]
    reference: String,

    #[command(flatten)]
    common: Common,
}

/// Runs `berth blob ...`.
pub fn run(command: BlobCommand) -> anyhow::Result<()> {
    match command {
        BlobCommand::Get(args) => get(args),
        BlobCommand::Put(args) => put(args),
        BlobCommand::Delete(args) => delete(args),
    }
}

/// The reference and its digest (the value parser made sure there is one).
fn blob_reference(input: &str) -> anyhow::Result<(Reference, Digest)> {
    let reference = parse_reference(input)?;
    let digest = reference
        .digest()
        .cloned()
        .with_context(|| format!("`{input}` names no digest; give name@digest"))?;
    Ok((reference, digest))
}

/// `registry/repo@digest`.
fn shown(reference: &Reference, digest: &Digest) -> String {
    format!(
        "{}/{}@{digest}",
        reference.registry(),
        reference.repository()
    )
}

fn get(args: GetArgs) -> anyhow::Result<()> {
    let (reference, digest) = blob_reference(&args.reference)?;
    let client = connect(reference.registry(), &args.common)?;
    let target = shown(&reference, &digest);
    let file = args.output_file.filter(|p| p.as_os_str() != "-");
    block_on(download(&client, &reference, &digest, file.as_deref()))?
        .with_context(|| format!("cannot get the blob {target}"))
}

async fn download(
    client: &RegistryClient,
    reference: &Reference,
    digest: &Digest,
    file: Option<&Path>,
) -> anyhow::Result<()> {
    let mut stream = client.get_blob(reference.repository(), digest).await?;
    let Some(path) = file else {
        let mut out = std::io::stdout().lock();
        while let Some(chunk) = stream.next_chunk().await {
            let chunk =
                chunk.context("the bytes written to stdout are not the blob; discard them")?;
            match out.write_all(&chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
                other => other.context("cannot write to stdout")?,
            }
        }
        return match out.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
            other => other.context("cannot write to stdout"),
        };
    };
    let partial = partial_path(path);
    let mut out =
        File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let written = async {
        while let Some(chunk) = stream.next_chunk().await {
            out.write_all(&chunk?)
                .with_context(|| format!("cannot write {}", partial.display()))?;
        }
        out.sync_all()
            .with_context(|| format!("cannot write {}", partial.display()))?;
        std::fs::rename(&partial, path)
            .with_context(|| format!("cannot rename {} to {}", partial.display(), path.display()))
    }
    .await;
    if written.is_err() {
        // Best effort: the error that matters is the one returned.
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// `FILE.partial`, beside `FILE`.
fn partial_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".partial");
    PathBuf::from(name)
}

fn put(args: PutArgs) -> anyhow::Result<()> {
    let reference = parse_reference(&args.reference)?;
    let (path, source, spool) = if args.file == "-" {
        let spool = Spool::from_stdin()?;
        (spool.path.clone(), "stdin".to_owned(), Some(spool))
    } else {
        let path = PathBuf::from(&args.file);
        let source = path.display().to_string();
        (path, source, None)
    };
    let (digest, size) = match &spool {
        Some(spool) => (spool.digest.clone(), spool.size),
        None => hash_file(&path)?,
    };
    if let Some(asked) = reference.digest()
        && *asked != digest
    {
        bail!(
            "{source} has digest {digest}, not {asked}; nothing uploaded: check the file, or drop the digest from REF"
        );
    }
    let options = super::upload_options(args.chunk_size);
    let repo = reference.repository();
    let target = shown(&reference, &digest);
    let client = connect(reference.registry(), &args.common)?;
    let blob = BlobUpload::from_file(path, digest.clone(), size);
    let pushed = block_on(client.push_blob(repo, &blob, &options, None))?
        .with_context(|| format!("cannot upload {source} as {target}"))?;
    match args.output {
        Output::Text => print_out(&format!("{digest}\n")),
        Output::Json => print_out(&json_text(&json!({
            "digest": digest.to_string(),
            "size": size,
            "pushed": match pushed {
                Pushed::Monolithic => "uploaded",
                Pushed::Existed => "existed",
                Pushed::Mounted => "mounted",
                Pushed::Chunked { .. } => "chunked",
            },
        }))),
    }
}

/// The sha256 and size of the file at `path`, read in pieces.
fn hash_file(path: &Path) -> anyhow::Result<(Digest, u64)> {
    let mut file = File::open(path)
        .with_context(|| format!("cannot open the file to upload, {}", path.display()))?;
    hash_copy(&mut file, None).with_context(|| format!("cannot read {}", path.display()))
}

/// Hashes everything `reader` gives, copying it to `copy` when given.
fn hash_copy(reader: &mut dyn Read, mut copy: Option<&mut File>) -> std::io::Result<(Digest, u64)> {
    let mut digester = Digester::new(Algorithm::Sha256);
    let mut buffer = vec![0u8; READ_BUFFER];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let piece = buffer.get(..n).unwrap_or_default();
        digester.update(piece);
        if let Some(file) = copy.as_deref_mut() {
            file.write_all(piece)?;
        }
    }
    let size = digester.bytes_hashed();
    Ok((digester.finalize(), size))
}

/// stdin copied to a file in the temporary directory, with its digest; the
/// file is removed when the spool is dropped.
struct Spool {
    path: PathBuf,
    digest: Digest,
    size: u64,
}

impl Spool {
    fn from_stdin() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let path = dir.join(format!(
            ".berth-blob-{}-{nanos:09}.spool",
            std::process::id()
        ));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| {
                format!(
                    "cannot create a spool file in {} (stdin is spooled to learn its digest); \
                     set TMPDIR to a writable directory, or give a FILE",
                    dir.display()
                )
            })?;
        // From here on, dropping `spool` removes the file.
        let mut spool = Self {
            path,
            digest: Digest::sha256_of(b""),
            size: 0,
        };
        let (digest, size) = hash_copy(&mut std::io::stdin().lock(), Some(&mut file))
            .and_then(|hashed| file.sync_all().map(|()| hashed))
            .with_context(|| format!("cannot spool stdin to {}", spool.path.display()))?;
        spool.digest = digest;
        spool.size = size;
        Ok(spool)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        // Best effort: a leftover file in the temporary directory is harmless.
        let _ = std::fs::remove_file(&self.path);
    }
}

fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let (reference, digest) = blob_reference(&args.reference)?;
    let client = connect(reference.registry(), &args.common)?;
    let target = shown(&reference, &digest);
    block_on(client.delete_blob(reference.repository(), &digest))?
        .with_context(|| format!("cannot delete the blob {target}"))?;
    print_out(&format!("deleted {target}\n"))
}

/// A REF with a digest: blobs have no tags.
fn digest_given(input: &str) -> Result<String, String> {
    if input.contains('@') {
        Ok(input.to_owned())
    } else {
        Err("give the blob as name@digest, such as acme/app@sha256:<64 hex digits>".to_owned())
    }
}
