//! Readiness for systemd (`Type=notify` in `deploy/berth.service`):
//! `READY=1` once the server listens.
//!
//! The protocol (sd_notify(3)): one datagram of newline-separated
//! `KEY=value` lines sent to the `AF_UNIX` datagram socket that
//! `$NOTIFY_SOCKET` names: a file system path, or, when it starts with `@`,
//! a name in Linux's abstract namespace (the `@` stands for the leading NUL
//! byte). Without the variable nothing is sent. A few lines with std's
//! `UnixDatagram` instead of libsystemd or a crate.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// The variable systemd sets for a `Type=notify` service.
const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Tells the service manager, if any, that the server is ready, with a
/// status line (`systemctl status` shows it).
pub fn ready(status: &str) {
    let Some(target) = std::env::var_os(NOTIFY_SOCKET) else {
        return;
    };
    let message = format!("READY=1\nSTATUS={}", status.replace('\n', " "));
    if let Err(e) = send(&target, message.as_bytes()) {
        tracing::warn!(
            error = %e,
            socket = %target.to_string_lossy(),
            "cannot tell the service manager that berth is ready (NOTIFY_SOCKET)"
        );
    }
}

/// Sends `message` as one datagram to the socket `target` names.
fn send(target: &OsStr, message: &[u8]) -> io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    let sent = match target.as_bytes().strip_prefix(b"@") {
        Some(name) => send_abstract(&socket, name, message)?,
        None => socket.send_to(message, Path::new(target))?,
    };
    if sent != message.len() {
        return Err(io::Error::other("the notification was truncated"));
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn send_abstract(socket: &UnixDatagram, name: &[u8], message: &[u8]) -> io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    socket.send_to_addr(message, &address)
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &[u8]) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract socket names exist on Linux only",
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn receive(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buffer = [0u8; 512];
        let n = socket.recv(&mut buffer).unwrap();
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    }

    #[test]
    fn a_datagram_reaches_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), b"READY=1").unwrap();
        assert_eq!(receive(&socket), "READY=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_datagram_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("berth-notify-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&address).unwrap();
        send(OsStr::new(&format!("@{name}")), b"READY=1").unwrap();
        assert_eq!(receive(&socket), "READY=1");
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        assert!(send(dir.path().join("none").as_os_str(), b"READY=1").is_err());
    }
}
