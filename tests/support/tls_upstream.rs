//! A loopback TLS server whose certificate no client should trust: a `std::net` listener on
//! `127.0.0.1:0` that runs a real rustls server handshake with the test-only self-signed pair in
//! `tests/fixtures/tls/`, and records how each handshake ended.
//!
//! It never serves HTTP: a proxy that refuses the certificate aborts the handshake, which is
//! what the record shows: a ClientHello arrived, the server sent its certificate, and the client
//! left without finishing. Over TLS 1.2 the server also reads the client's alert (`unknown_ca`).
//! Over TLS 1.3 it does not: the client's alert is queued behind its compatibility
//! `change_cipher_spec`, and rustls's one last write before giving up (through ureq's transport,
//! which writes one buffer per call) sends only the latter, so the server sees the connection
//! close. A handshake that completes means the client trusted the certificate; the server then
//! closes at once.
//!
//! Every connection is handled on its own thread with socket timeouts; dropping the
//! [`TlsUpstream`] wakes the accept loop and joins every thread.

#![expect(clippy::expect_used, reason = "test support fails loudly")]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{AlertDescription, ServerConfig, ServerConnection};

/// The test-only certificate (`tests/fixtures/tls/README.md`).
const CERT_PEM: &[u8] = include_bytes!("../fixtures/tls/untrusted-cert.pem");
/// Its private key.
const KEY_PEM: &[u8] = include_bytes!("../fixtures/tls/untrusted-key.pem");

/// Longest a connection may take to say anything before the server gives up on it.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

/// How one connection's server-side handshake ended.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// When the connection was accepted.
    pub accepted: Instant,
    /// The first bytes were a TLS handshake record holding a ClientHello.
    pub client_hello: bool,
    /// Bytes the server wrote (its hello and certificate flight, when the hello was good).
    pub server_wrote: usize,
    /// `None` when the handshake completed; else the error the server's rustls reported.
    pub error: Option<HandshakeError>,
}

/// Why a server-side handshake did not complete.
#[derive(Debug, Clone, PartialEq)]
pub enum HandshakeError {
    /// rustls refused the exchange; `AlertReceived` carries the client's alert.
    Tls(rustls::Error),
    /// The socket failed or closed first.
    Io(io::ErrorKind),
}

impl Handshake {
    /// The fatal alert the client sent, if that is how the handshake ended.
    pub fn client_alert(&self) -> Option<AlertDescription> {
        match &self.error {
            Some(HandshakeError::Tls(rustls::Error::AlertReceived(alert))) => Some(*alert),
            _ => None,
        }
    }

    /// Whether the client sent a ClientHello, received the server's certificate flight, and
    /// then ended the handshake itself: with one of the alerts RFC 8446 §6.2 gives for a
    /// certificate it will not accept, or by closing the connection.
    pub fn client_aborted_after_the_certificate(&self) -> bool {
        let client_ended = matches!(
            self.error,
            Some(HandshakeError::Io(
                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
            ))
        ) || matches!(
            self.client_alert(),
            Some(
                AlertDescription::UnknownCA
                    | AlertDescription::BadCertificate
                    | AlertDescription::CertificateUnknown
                    | AlertDescription::CertificateExpired
                    | AlertDescription::UnsupportedCertificate
            )
        );
        self.client_hello && self.server_wrote > 0 && client_ended
    }
}

/// Which TLS versions the server offers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Versions {
    /// TLS 1.3 and 1.2 (rustls's defaults; a rustls client picks 1.3).
    Default,
    /// TLS 1.2 only.
    Tls12Only,
}

/// A running TLS server; it stops when dropped.
pub struct TlsUpstream {
    addr: SocketAddr,
    handshakes: Arc<(Mutex<Vec<Handshake>>, Condvar)>,
    stopping: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
}

impl TlsUpstream {
    /// Starts on `127.0.0.1:0`, offering TLS 1.3 and 1.2.
    pub fn start() -> TlsUpstream {
        TlsUpstream::start_with(Versions::Default)
    }

    /// Starts on `127.0.0.1:0`, offering `versions`.
    pub fn start_with(versions: Versions) -> TlsUpstream {
        let config = Arc::new(server_config(versions));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind TLS upstream");
        let addr = listener.local_addr().expect("TLS upstream address");
        let handshakes = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let accept_thread = thread::Builder::new()
            .name("tls-upstream-accept".into())
            .spawn({
                let handshakes = handshakes.clone();
                let stopping = stopping.clone();
                move || accept_loop(&listener, &config, &handshakes, &stopping)
            })
            .expect("spawn TLS upstream");
        TlsUpstream {
            addr,
            handshakes,
            stopping,
            accept_thread: Some(accept_thread),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` plus `path`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// Waits until at least `count` handshakes have ended, or `bound` passed; returns them.
    pub fn wait_for_handshakes(&self, count: usize, bound: Duration) -> Vec<Handshake> {
        let (list, ended) = &*self.handshakes;
        let deadline = Instant::now() + bound;
        let mut guard = list.lock().unwrap_or_else(PoisonError::into_inner);
        while guard.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            guard = ended
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        guard.clone()
    }
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the blocking accept; the loop then sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
    }
}

/// The test certificate, for a client that is meant to trust it.
pub fn certificate() -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(CERT_PEM).expect("test certificate")
}

/// `versions` on the ring provider (the one ureq uses), no client certificates.
fn server_config(versions: Versions) -> ServerConfig {
    let certs = vec![certificate()];
    let key = PrivateKeyDer::from_pem_slice(KEY_PEM).expect("test key");
    let versions: &[&rustls::SupportedProtocolVersion] = match versions {
        Versions::Default => rustls::DEFAULT_VERSIONS,
        Versions::Tls12Only => &[&rustls::version::TLS12],
    };
    ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate")
}

fn accept_loop(
    listener: &TcpListener,
    config: &Arc<ServerConfig>,
    handshakes: &Arc<(Mutex<Vec<Handshake>>, Condvar)>,
    stopping: &AtomicBool,
) {
    let mut handlers = Vec::new();
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let accepted = Instant::now();
        let config = config.clone();
        let handshakes = handshakes.clone();
        if let Ok(handler) = thread::Builder::new()
            .name("tls-upstream-conn".into())
            .spawn(move || {
                let handshake = serve(stream, config, accepted);
                let (list, ended) = &*handshakes;
                list.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(handshake);
                ended.notify_all();
            })
        {
            handlers.push(handler);
        }
    }
    for handler in handlers {
        let _ = handler.join();
    }
}

fn serve(stream: TcpStream, config: Arc<ServerConfig>, accepted: Instant) -> Handshake {
    let mut socket = RecordingSocket {
        stream,
        first: Vec::new(),
        wrote: 0,
    };
    let error = handshake(&mut socket, config).err();
    Handshake {
        accepted,
        client_hello: is_client_hello(&socket.first),
        server_wrote: socket.wrote,
        error,
    }
}

fn handshake(
    socket: &mut RecordingSocket,
    config: Arc<ServerConfig>,
) -> Result<(), HandshakeError> {
    let io_error = |e: io::Error| HandshakeError::Io(e.kind());
    socket
        .stream
        .set_read_timeout(Some(SOCKET_TIMEOUT))
        .map_err(io_error)?;
    socket
        .stream
        .set_write_timeout(Some(SOCKET_TIMEOUT))
        .map_err(io_error)?;
    let mut connection = ServerConnection::new(config).map_err(HandshakeError::Tls)?;
    while connection.is_handshaking() {
        match connection.complete_io(socket) {
            Ok((0, 0)) => return Err(HandshakeError::Io(io::ErrorKind::UnexpectedEof)),
            Ok(_) => {}
            // complete_io wraps rustls's own error in InvalidData.
            Err(error) => {
                return Err(
                    match error
                        .get_ref()
                        .and_then(|e| e.downcast_ref::<rustls::Error>())
                    {
                        Some(tls) => HandshakeError::Tls(tls.clone()),
                        None => HandshakeError::Io(error.kind()),
                    },
                );
            }
        }
    }
    Ok(())
}

/// A TLS record header (`0x16` handshake, version `0x03 0x0?`, two length bytes) followed by
/// handshake type 1, ClientHello (RFC 8446 §5.1, §4).
fn is_client_hello(first: &[u8]) -> bool {
    first.len() >= 6 && first[0] == 0x16 && first[1] == 0x03 && first[5] == 0x01
}

/// The socket, keeping a copy of the first bytes the client sent and a count of those written.
struct RecordingSocket {
    stream: TcpStream,
    first: Vec<u8>,
    wrote: usize,
}

impl Read for RecordingSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.read(buf)?;
        let keep = n.min(16usize.saturating_sub(self.first.len()));
        self.first.extend_from_slice(&buf[..keep]);
        Ok(n)
    }
}

impl Write for RecordingSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.stream.write(buf)?;
        self.wrote += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}
