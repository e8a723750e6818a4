//! Password hashing and verification, and htpasswd import.
//!
//! New passwords are hashed with argon2id (the `argon2` crate's default
//! parameters: m = 19 MiB, t = 2, p = 1, a random 16-byte salt, a 32-byte
//! output) into a PHC string (`$argon2id$v=19$...`). Verification also accepts
//! bcrypt hashes (`$2y$`, `$2b$`, `$2a$`), which an htpasswd import keeps as
//! they are, and argon2id hashes with other parameters (imported ones).
//!
//! Both are deliberately slow (~20-60 ms of CPU): async callers must run
//! [`hash_password`] and [`verify_password`] inside
//! `tokio::task::spawn_blocking`, never on the async worker threads, and
//! should bound how many run at once to [`concurrency`].
//!
//! Memory: argon2id fills m KiB of memory per computation. Allocated per
//! check on whichever blocking thread ran it, those 19 MiB stayed in glibc's
//! per-thread arenas after being freed: a fresh server at ~16 MB sat at
//! 130-200 MB after a few dozen checks, and at 1.6 GB after 3,000 with 8 in
//! flight. So every argon2id computation here borrows its memory from one
//! pool of at most [`concurrency`] buffers of 19 MiB (allocated on first use,
//! zeroed after each use, never freed): at most that many computations run
//! at once (another waits for a buffer), and the memory is bounded by
//! [`concurrency`] × 19 MiB (38 MiB on 2 cores), however many checks run.
//! The output is compared in constant time. A hash that needs more memory
//! than a pool buffer (an imported hash with a larger m) gets a buffer of its
//! own for that one check, up to [`MAX_M_COST_KIB`]; above that it never
//! verifies.
//!
//! [`verify_dummy`] does what a check of a wrong password costs, for a user
//! that does not exist or has no password (robots), so that the time of a
//! refusal does not tell whether the user exists.

use std::sync::{Condvar, LazyLock, Mutex, MutexGuard, PoisonError};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;

use super::IdentityError;

/// The bcrypt prefixes accepted (htpasswd `-B` writes `$2y$`).
const BCRYPT_PREFIXES: [&str; 3] = ["$2y$", "$2b$", "$2a$"];

/// The largest argon2id memory cost (KiB) a stored hash may ask for: 256 MiB.
pub const MAX_M_COST_KIB: u32 = 256 * 1024;

/// The most password hash computations that run at once: the number of
/// CPUs, at most 4 (more would only share the same CPUs and hold more
/// memory; a verified password is remembered, so logins are rare).
pub fn concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4))
}

/// Blocks of memory each pool buffer holds: what berth's own hashes need.
fn pool_blocks() -> usize {
    Params::DEFAULT.block_count()
}

/// The argon2id memory pool: buffers of [`pool_blocks`] blocks, at most
/// [`concurrency`] of them.
struct MemoryPool {
    state: Mutex<PoolState>,
    returned: Condvar,
    limit: usize,
}

struct PoolState {
    free: Vec<Vec<Block>>,
    allocated: usize,
}

static POOL: LazyLock<MemoryPool> = LazyLock::new(|| MemoryPool {
    state: Mutex::new(PoolState {
        free: Vec::new(),
        allocated: 0,
    }),
    returned: Condvar::new(),
    limit: concurrency(),
});

/// A pool buffer, lent for one computation; zeroed and given back on drop.
struct Lease {
    buffer: Vec<Block>,
}

impl MemoryPool {
    /// A free buffer, a new one while fewer than `limit` exist, or else the
    /// next one given back.
    fn take(&self) -> Lease {
        let mut state = lock(&self.state);
        loop {
            if let Some(buffer) = state.free.pop() {
                return Lease { buffer };
            }
            if state.allocated < self.limit {
                state.allocated += 1;
                drop(state);
                return Lease {
                    buffer: vec![Block::new(); pool_blocks()],
                };
            }
            state = self
                .returned
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// How many buffers exist (for tests).
    #[cfg(test)]
    fn allocated(&self) -> usize {
        lock(&self.state).allocated
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // The blocks are derived from the password: leave none behind.
        self.buffer.fill(Block::new());
        let buffer = std::mem::take(&mut self.buffer);
        lock(&POOL.state).free.push(buffer);
        POOL.returned.notify_one();
    }
}

/// Locks a mutex, recovering from a poisoned one (the pool holds buffers
/// and a count, which a panicking holder cannot leave inconsistent).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs argon2 for `params` into `out`, with memory from the pool (or, for
/// more blocks than a pool buffer holds, a buffer of its own).
fn argon2_into(
    params: Params,
    version: Version,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let blocks = params.block_count();
    let argon = Argon2::new(Algorithm::Argon2id, version, params);
    if blocks <= pool_blocks() {
        let mut lease = POOL.take();
        argon.hash_password_into_with_memory(password, salt, out, &mut lease.buffer[..blocks])
    } else {
        let _lease = POOL.take();
        let mut own = vec![Block::new(); blocks];
        argon.hash_password_into_with_memory(password, salt, out, &mut own[..])
    }
}

/// Hashes a password with argon2id and a random salt, as a PHC string.
///
/// CPU-heavy: call it from `spawn_blocking` in async code.
pub fn hash_password(password: &str) -> Result<String, IdentityError> {
    let failed = |e: &dyn std::fmt::Display| IdentityError::PasswordHash(e.to_string());
    let mut salt = [0u8; Salt::RECOMMENDED_LENGTH];
    getrandom::fill(&mut salt).map_err(|e| failed(&e))?;
    let params = Params::DEFAULT;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2_into(
        params.clone(),
        Version::V0x13,
        password.as_bytes(),
        &salt,
        &mut out,
    )
    .map_err(|e| failed(&e))?;
    let hash = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
        salt: Some(Salt::new(&salt).map_err(|e| failed(&e))?),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches `hash` (argon2id PHC string or bcrypt). A wrong
/// password, a malformed hash and an unknown scheme all give `false`.
///
/// CPU-heavy: call it from `spawn_blocking` in async code.
pub fn verify_password(hash: &str, password: &str) -> bool {
    if hash.starts_with("$argon2id$") {
        verify_argon2id(hash, password)
    } else if is_bcrypt(hash) {
        bcrypt::verify(password, hash).unwrap_or(false)
    } else {
        false
    }
}

fn verify_argon2id(hash: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    if parsed.algorithm != ARGON2ID_IDENT || params.m_cost() > MAX_M_COST_KIB {
        return false;
    }
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let Some(out) = buffer.get_mut(..expected.len()) else {
        return false;
    };
    if argon2_into(params, version, password.as_bytes(), salt, out).is_err() {
        return false;
    }
    out.ct_eq(expected.as_bytes()).into()
}

/// A hash of a random password with the parameters of berth's own hashes,
/// made once: what an absent password is checked against.
static DUMMY_HASH: LazyLock<Option<String>> = LazyLock::new(|| {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).ok()?;
    hash_password(&hex::encode(secret)).ok()
});

/// Spends what checking `password` against a real argon2id hash costs, for
/// a user that does not exist or has no password; the answer is always no.
///
/// CPU-heavy: call it from `spawn_blocking` in async code.
pub fn verify_dummy(password: &str) {
    if let Some(hash) = DUMMY_HASH.as_deref() {
        // A random password: it never matches.
        let _ = verify_argon2id(hash, password);
    }
}

fn is_bcrypt(hash: &str) -> bool {
    BCRYPT_PREFIXES.iter().any(|p| hash.starts_with(p))
}

/// Reads an htpasswd file: `user:hash` lines, blank lines and `#` comments
/// skipped. Only bcrypt hashes (`htpasswd -B`) are accepted; a line with any
/// other scheme is an error naming the line.
///
/// User names are returned as written; the caller checks them as names.
pub fn parse_htpasswd(text: &str) -> Result<Vec<(String, String)>, IdentityError> {
    let mut users = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let entry = raw.trim();
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        let err = |reason: String| IdentityError::Htpasswd { line, reason };
        let Some((user, hash)) = entry.split_once(':') else {
            return Err(err("expected `user:hash`".to_owned()));
        };
        if user.is_empty() {
            return Err(err("the user name before `:` is empty".to_owned()));
        }
        if is_bcrypt(hash) {
            // Refuse a hash that could never verify, rather than import a dead account.
            if hash.len() != 60 || !hash.is_ascii() {
                return Err(err(format!(
                    "user `{user}`: malformed bcrypt hash (expected 60 characters); \
                     re-hash the password with `htpasswd -B`"
                )));
            }
            users.push((user.to_owned(), hash.to_owned()));
            continue;
        }
        let scheme = if hash.starts_with("$apr1$") {
            "MD5 (`$apr1$`)"
        } else if hash.starts_with("{SHA}") {
            "SHA-1 (`{SHA}`)"
        } else if hash.starts_with('$') {
            "an unsupported `$...$` scheme"
        } else {
            "crypt or plain text"
        };
        return Err(err(format!(
            "user `{user}`: the hash is {scheme}, which berth does not accept; \
             re-hash the password with `htpasswd -B` (bcrypt)"
        )));
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bcrypt hash as `htpasswd -B` writes it (`$2y$`), at cost 4 to keep tests fast.
    fn htpasswd_bcrypt(password: &str) -> String {
        bcrypt::hash_with_result(password, 4)
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY)
    }

    #[test]
    fn our_hashes_and_the_argon2_crates_verify_each_other() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = hash_password("correct horse").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert_eq!(parsed.params.to_string(), "m=19456,t=2,p=1");
        assert_eq!(parsed.salt.unwrap().len(), 16);
        assert_eq!(parsed.hash.unwrap().len(), 32);
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        let theirs = Argon2::default()
            .hash_password(b"correct horse")
            .unwrap()
            .to_string();
        assert!(verify_password(&theirs, "correct horse"));
        assert!(!verify_password(&theirs, "correct horse!"));
        // Other parameters (an imported hash): more memory than a pool
        // buffer, another output length, argon2 version 0x10.
        for (m, t, len, version) in [
            (32 * 1024, 1, 32, Version::V0x13),
            (8 * 1024, 3, 64, Version::V0x13),
            (8 * 1024, 1, 16, Version::V0x10),
        ] {
            let params = Params::new(m, t, 1, Some(len)).unwrap();
            let hash = Argon2::new(Algorithm::Argon2id, version, params)
                .hash_password(b"hunter2")
                .unwrap()
                .to_string();
            assert!(verify_password(&hash, "hunter2"), "{hash}");
            assert!(!verify_password(&hash, "hunter3"), "{hash}");
        }
        // Too much memory asked for: refused unread.
        let huge = ours.replace("m=19456", &format!("m={}", MAX_M_COST_KIB + 1));
        assert!(!verify_password(&huge, "correct horse"));
        // argon2i and argon2d are not argon2id.
        let other = ours.replace("$argon2id$", "$argon2i$");
        assert!(!verify_password(&other, "correct horse"));
    }

    #[test]
    fn checks_never_hold_more_than_the_pool_however_many_run() {
        let threads: Vec<_> = (0..8)
            .map(|i| {
                std::thread::spawn(move || {
                    let hash = hash_password(&format!("pw{i}")).unwrap();
                    assert!(verify_password(&hash, &format!("pw{i}")));
                    assert!(!verify_password(&hash, "wrong"));
                    verify_dummy("wrong");
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!((1..=concurrency()).contains(&POOL.allocated()));
    }

    #[test]
    fn argon2id_round_trip() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horse "));
        assert!(!verify_password(&hash, ""));
        // A random salt: the same password hashes differently each time.
        assert_ne!(hash, hash_password("correct horse").unwrap());
    }

    #[test]
    fn bcrypt_hashes_verify() {
        let hash = htpasswd_bcrypt("hunter2");
        assert!(verify_password(&hash, "hunter2"));
        assert!(!verify_password(&hash, "hunter3"));
        for prefix in ["$2b$", "$2a$"] {
            let other = format!("{prefix}{}", &hash[4..]);
            assert!(verify_password(&other, "hunter2"), "{other}");
        }
    }

    #[test]
    fn malformed_hashes_are_false() {
        for hash in [
            "",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$!!!",
            "$2y$04$short",
            "$2y$xx$G4VWNlEEB5JEEyOChkY6ruSwRGz9X5Sgim1yMP9.0AqxQHmxZ3lU.",
            "$2y$04$é4VWNlEEB5JEEyOChkY6ruSwRGz9X5Sgim1yMP9.0AqxQHmxZ3lU",
            "$2x$04$G4VWNlEEB5JEEyOChkY6ruSwRGz9X5Sgim1yMP9.0AqxQHmxZ3lU.",
            "$apr1$abc$def",
            "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
            "plaintext",
        ] {
            assert!(!verify_password(hash, "hunter2"), "{hash}");
        }
    }

    #[test]
    fn htpasswd_import() {
        let alice = htpasswd_bcrypt("hunter2");
        let bob = htpasswd_bcrypt("pw");
        assert!(alice.starts_with("$2y$04$"), "{alice}");
        let text = format!("# users\n\nalice:{alice}\n  bob:{bob}  \n# end\n");
        let users = parse_htpasswd(&text).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0], ("alice".to_owned(), alice));
        assert_eq!(users[1].0, "bob");
        assert!(verify_password(&users[0].1, "hunter2"));
        assert!(verify_password(&users[1].1, "pw"));
        assert!(!verify_password(&users[1].1, "hunter2"));
        assert!(parse_htpasswd("").unwrap().is_empty());
    }

    #[test]
    fn htpasswd_refuses_other_schemes_naming_the_line() {
        for (text, line, needle) in [
            ("alice:$apr1$x$y\n", 1, "MD5"),
            ("# c\nbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", 2, "SHA-1"),
            ("\n\ncarol:abJnggxhB/yWI\n", 3, "crypt"),
            ("erin:$2y$04$short\n", 1, "malformed"),
        ] {
            let err = parse_htpasswd(text).unwrap_err();
            let message = err.to_string();
            assert!(
                matches!(err, IdentityError::Htpasswd { line: l, .. } if l == line),
                "{text:?}: {message}"
            );
            assert!(message.contains(needle), "{message}");
            assert!(message.contains(&format!("line {line}")), "{message}");
            assert!(message.contains("htpasswd -B"), "{message}");
        }
        for (text, needle) in [("dave\n", "user:hash"), (":$2y$04$x\n", "empty")] {
            let message = parse_htpasswd(text).unwrap_err().to_string();
            assert!(message.contains(needle), "{message}");
        }
    }
}
