//! The control socket of `devmgr run`, which `devmgr settle` asks: a Unix stream socket
//! (default [`DEFAULT_SOCKET`], `control.socket` in `devmgr.toml`).
//!
//! - **Bound** by [`ControlSocket::bind`] before the daemon starts anything: the missing parent
//!   directory is created (mode 0755), the socket gets mode 0600 (only its owner, root, may
//!   connect). A socket file left by a daemon that crashed (nothing accepts on it: connecting
//!   is refused) is replaced; a socket another daemon answers on, or a file that is not a
//!   socket, is an error. Dropping the [`ControlSocket`] removes the file, if it is still ours.
//! - **Protocol**: one request line, one answer line, then the daemon closes the connection.
//!   `settle SEQNUM TIMEOUT_MS` asks for [`Observer::settle`]; the answer is `handled SEQNUM`,
//!   `pending DESCRIPTION` (the timeout ran out; [`Pending`]'s text) or `error MESSAGE` (a bad
//!   request). A client that closes the connection (or its writing side) cancels its wait.
//! - **Cost**: a task that sleeps in `accept`; nothing else runs while nobody asks. At most
//!   [`MAX_CONNECTIONS`] connections are served at once (others wait in the backlog); a request
//!   line must arrive within [`REQUEST_TIMEOUT`] and be at most [`MAX_REQUEST`] bytes.

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::handled::Pending;
use crate::subsystem::Observer;

/// Where `devmgr run` listens and `devmgr settle` asks unless the configuration says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/devmgr/control";
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// How long the daemon waits for a request line after accepting a connection.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest request line, in bytes.
pub const MAX_REQUEST: usize = 128;
/// The longest settle a request may ask for (as `devmgr settle --timeout`).
pub const MAX_TIMEOUT: Duration = crate::config::MAX_SETTLE_TIMEOUT;
/// The longest answer line a client reads, in bytes.
const MAX_ANSWER: u64 = 64 * 1024;
/// How long the daemon may take to write its answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// A request to the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Wait until the events up to `seqnum` are handled, at most `timeout`.
    Settle {
        /// The kernel's uevent seqnum when the client was called.
        seqnum: u64,
        /// How long to wait (1 ms to [`MAX_TIMEOUT`]).
        timeout: Duration,
    },
}

impl Request {
    /// The request's line, without its newline.
    pub fn line(&self) -> String {
        match self {
            Request::Settle { seqnum, timeout } => {
                format!("settle {seqnum} {}", timeout.as_millis())
            }
        }
    }

    /// Parses a request line (without its newline).
    pub fn parse(line: &str) -> Result<Request, String> {
        let mut words = line.split(' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("settle"), Some(seqnum), Some(timeout), None) => {
                let seqnum = seqnum
                    .parse()
                    .map_err(|_| format!("settle: bad seqnum {seqnum:?}"))?;
                let timeout = timeout
                    .parse::<u64>()
                    .ok()
                    .map(Duration::from_millis)
                    .filter(|t| (Duration::from_millis(1)..=MAX_TIMEOUT).contains(t))
                    .ok_or_else(|| {
                        format!(
                            "settle: the timeout must be 1 to {} ms, not {timeout:?}",
                            MAX_TIMEOUT.as_millis()
                        )
                    })?;
                Ok(Request::Settle { seqnum, timeout })
            }
            _ => Err(format!(
                "unknown request {:?} (expected: settle SEQNUM TIMEOUT_MS)",
                line.chars().take(40).collect::<String>()
            )),
        }
    }
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The events up to this seqnum are handled.
    Handled(u64),
    /// The timeout ran out; what is pending.
    Pending(String),
    /// The request was refused.
    Error(String),
}

impl Answer {
    /// The answer's line, without its newline (newlines in the text become spaces).
    pub fn line(&self) -> String {
        let one_line = |text: &str| text.replace(['\n', '\r'], " ");
        match self {
            Answer::Handled(seqnum) => format!("handled {seqnum}"),
            Answer::Pending(text) => format!("pending {}", one_line(text)),
            Answer::Error(text) => format!("error {}", one_line(text)),
        }
    }

    /// Parses an answer line (without its newline).
    pub fn parse(line: &str) -> Result<Answer, String> {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "handled" => rest
                .parse()
                .map(Answer::Handled)
                .map_err(|_| format!("bad answer {line:?}")),
            "pending" => Ok(Answer::Pending(rest.to_owned())),
            "error" => Ok(Answer::Error(rest.to_owned())),
            _ => Err(format!(
                "unknown answer {:?}",
                line.chars().take(80).collect::<String>()
            )),
        }
    }
}

/// Why a control socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another daemon answers on the socket.
    #[error("{0}: another devmgr is running (it answers on this control socket)")]
    InUse(PathBuf),
    /// Something that is not a socket is in the way; it is left alone.
    #[error("{0}: exists and is not a socket (not removed)")]
    NotASocket(PathBuf),
    /// The socket (or its directory) could not be created.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// A bound control socket; dropping it removes the file (if it is still the one bound here).
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the socket file, to remove only our own.
    file: (u64, u64),
}

impl ControlSocket {
    /// Binds `path` (see the module docs: parent directory, mode 0600, stale sockets).
    pub fn bind(path: &Path) -> Result<ControlSocket, BindError> {
        let io = |err| BindError::Io(path.to_path_buf(), err);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.exists()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(io)?;
        }
        let listener = match UnixListener::bind(path) {
            Ok(listener) => listener,
            Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {
                let meta = std::fs::symlink_metadata(path).map_err(io)?;
                if !meta.file_type().is_socket() {
                    return Err(BindError::NotASocket(path.to_path_buf()));
                }
                match UnixStream::connect(path) {
                    Ok(_) => return Err(BindError::InUse(path.to_path_buf())),
                    Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                        tracing::info!(path = %path.display(), "replacing the stale control socket of a devmgr that is gone");
                        std::fs::remove_file(path).map_err(io)?;
                        UnixListener::bind(path).map_err(io)?
                    }
                    Err(err) => return Err(io(err)),
                }
            }
            Err(err) => return Err(io(err)),
        };
        let socket = ControlSocket {
            file: std::fs::symlink_metadata(path)
                .map(|m| (m.dev(), m.ino()))
                .map_err(io)?,
            listener,
            path: path.to_path_buf(),
        };
        // Connecting needs write permission on the file: only the owner may. (Until this
        // call the umask decides; a connection in between could only ask to settle.)
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        Ok(socket)
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers settle requests with [`Observer::settle`] until the future is dropped (which
    /// removes the socket file).
    pub async fn serve(self, observer: Observer) {
        self.serve_with(move |seqnum, timeout| {
            let observer = observer.clone();
            async move { observer.settle(seqnum, timeout).await }
        })
        .await
    }

    /// Answers settle requests with `settle` until the future is dropped (which removes the
    /// socket file). Must run in a tokio runtime.
    pub async fn serve_with<F, Fut>(self, settle: F)
    where
        F: Fn(u64, Duration) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Pending>> + Send + 'static,
    {
        let listener = match self
            .listener
            .try_clone()
            .and_then(|l| {
                l.set_nonblocking(true)?;
                Ok(l)
            })
            .and_then(tokio::net::UnixListener::from_std)
        {
            Ok(listener) => listener,
            Err(err) => {
                tracing::error!(path = %self.path.display(), error = %err, "the control socket cannot be served");
                return;
            }
        };
        let settle = Arc::new(settle);
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        // Keeps `self` (and so the file) until this future is dropped.
        let _socket = self;
        loop {
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "control socket: accept failed");
                    // EMFILE and the like: do not spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let settle = Arc::clone(&settle);
            tokio::spawn(async move {
                connection(stream, move |s, t| settle(s, t)).await;
                drop(slot);
            });
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.file);
        if ours && let Err(err) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %err, "cannot remove the control socket");
        }
    }
}

/// Serves one connection: reads the request, answers it (unless the client went away first).
async fn connection<F, Fut>(stream: tokio::net::UnixStream, settle: F)
where
    F: Fn(u64, Duration) -> Fut,
    Fut: Future<Output = Result<(), Pending>>,
{
    let line = match tokio::time::timeout(REQUEST_TIMEOUT, read_line(&stream)).await {
        Ok(Ok(line)) => line,
        Ok(Err(err)) => {
            let _ = write_line(&stream, &Answer::Error(err).line()).await;
            return;
        }
        Err(_) => return,
    };
    let answer = match Request::parse(&line) {
        Err(err) => Answer::Error(err),
        Ok(Request::Settle { seqnum, timeout }) => {
            tokio::select! {
                settled = settle(seqnum, timeout) => match settled {
                    Ok(()) => Answer::Handled(seqnum),
                    Err(pending) => Answer::Pending(pending.to_string()),
                },
                () = gone(&stream) => {
                    tracing::debug!(seqnum, "settle: the client went away");
                    return;
                }
            }
        }
    };
    let _ = write_line(&stream, &answer.line()).await;
}

/// Reads one line (without its newline), at most [`MAX_REQUEST`] bytes.
async fn read_line(stream: &tokio::net::UnixStream) -> Result<String, String> {
    let mut line = Vec::new();
    let mut buf = [0u8; MAX_REQUEST];
    loop {
        stream.readable().await.map_err(|e| e.to_string())?;
        match stream.try_read(&mut buf) {
            Ok(0) => return Err("the request ended without a newline".into()),
            Ok(n) => {
                line.extend_from_slice(buf.get(..n).unwrap_or_default());
                if let Some(end) = line.iter().position(|b| *b == b'\n') {
                    line.truncate(end);
                    return String::from_utf8(line).map_err(|_| "the request is not UTF-8".into());
                }
                if line.len() > MAX_REQUEST {
                    return Err(format!("the request is longer than {MAX_REQUEST} bytes"));
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err.to_string()),
        }
    }
}

/// Returns once the client has closed the connection (or its writing side); anything it sends
/// meanwhile is ignored.
async fn gone(stream: &tokio::net::UnixStream) {
    let mut buf = [0u8; 64];
    loop {
        if stream.readable().await.is_err() {
            return;
        }
        match stream.try_read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

async fn write_line(stream: &tokio::net::UnixStream, line: &str) -> std::io::Result<()> {
    let bytes = format!("{line}\n").into_bytes();
    let write = async {
        let mut written = 0;
        while written < bytes.len() {
            stream.writable().await?;
            match stream.try_write(bytes.get(written..).unwrap_or_default()) {
                Ok(n) => written += n,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    };
    tokio::time::timeout(ANSWER_TIMEOUT, write)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// Why a client could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// No daemon listens: the socket is missing, or nothing accepts on it (stale).
    #[error("no devmgr daemon is running: {path}: {why}")]
    NoDaemon {
        /// The control socket.
        path: PathBuf,
        /// What connecting said.
        why: String,
    },
    /// Connecting, writing or reading failed otherwise (e.g. permission denied).
    #[error("{path}: {err}")]
    Io {
        /// The control socket.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
    /// The daemon closed the connection without answering, or answered nonsense.
    #[error("{path}: {why}")]
    Protocol {
        /// The control socket.
        path: PathBuf,
        /// What was wrong.
        why: String,
    },
}

/// Sends `request` to the daemon at `path` and waits (blocking) for its answer, at most
/// `patience`.
pub fn ask(path: &Path, request: &Request, patience: Duration) -> Result<Answer, AskError> {
    let io = |err| AskError::Io {
        path: path.to_path_buf(),
        err,
    };
    let mut stream = match UnixStream::connect(path) {
        Ok(stream) => stream,
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(AskError::NoDaemon {
                path: path.to_path_buf(),
                why: if err.kind() == std::io::ErrorKind::NotFound {
                    "no control socket".into()
                } else {
                    "nothing answers on the control socket (a devmgr that is gone left it)".into()
                },
            });
        }
        Err(err) => return Err(io(err)),
    };
    stream.set_read_timeout(Some(patience)).map_err(io)?;
    stream.set_write_timeout(Some(patience)).map_err(io)?;
    stream
        .write_all(format!("{}\n", request.line()).as_bytes())
        .map_err(io)?;
    let mut line = String::new();
    let read = BufReader::new(std::io::Read::take(stream, MAX_ANSWER)).read_line(&mut line);
    match read {
        Ok(0) => Err(AskError::Protocol {
            path: path.to_path_buf(),
            why: "the daemon closed the connection without answering (it may have stopped)".into(),
        }),
        Ok(_) => Answer::parse(line.trim_end_matches('\n')).map_err(|why| AskError::Protocol {
            path: path.to_path_buf(),
            why,
        }),
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Err(AskError::Protocol {
                path: path.to_path_buf(),
                why: format!("the daemon did not answer within {patience:?}"),
            })
        }
        Err(err) => Err(io(err)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn requests_and_answers_are_one_line_each_way() {
        let request = Request::Settle {
            seqnum: 288447,
            timeout: Duration::from_millis(1500),
        };
        assert_eq!(request.line(), "settle 288447 1500");
        assert_eq!(Request::parse(&request.line()), Ok(request));
        for bad in [
            "",
            "settle",
            "settle 1",
            "settle x 10",
            "settle 1 0",
            "settle 1 3600001",
            "settle 1 10 extra",
            "settle -1 10",
            "quit",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad:?}");
        }
        for answer in [
            Answer::Handled(7),
            Answer::Pending("events up to seqnum 7 not handled yet: x".into()),
            Answer::Error("bad".into()),
        ] {
            assert_eq!(Answer::parse(&answer.line()), Ok(answer));
        }
        assert_eq!(
            Answer::Pending("a\nb".into()).line(),
            "pending a b",
            "one line whatever the text"
        );
        assert!(Answer::parse("handled x").is_err());
        assert!(Answer::parse("hello").is_err());
    }

    #[test]
    fn the_socket_is_private_a_stale_one_is_replaced_and_it_is_removed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/devmgr/control");
        let socket = ControlSocket::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let parent = std::fs::metadata(path.parent().unwrap()).unwrap();
        assert_eq!(
            parent.permissions().mode() & 0o022,
            0,
            "writable by its owner only"
        );
        // A second daemon on the same path is refused while the first answers.
        assert!(matches!(
            ControlSocket::bind(&path),
            Err(BindError::InUse(_))
        ));
        drop(socket);
        assert!(!path.exists(), "removed when dropped");

        // A crashed daemon leaves its socket file: nothing accepts on it any more.
        let stale = UnixListener::bind(&path).unwrap();
        drop(stale);
        assert!(path.exists());
        let socket = ControlSocket::bind(&path).expect("the stale socket is replaced");
        // The file is not ours any more (a newer daemon replaced it): left alone.
        std::fs::remove_file(&path).unwrap();
        let newer = UnixListener::bind(&path).unwrap();
        drop(socket);
        assert!(path.exists(), "another daemon's socket is not removed");
        drop(newer);

        let file = dir.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(
            ControlSocket::bind(&file),
            Err(BindError::NotASocket(_))
        ));
        assert!(file.exists(), "not removed");
    }

    #[test]
    fn asking_without_a_daemon_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control");
        let request = Request::Settle {
            seqnum: 1,
            timeout: Duration::from_secs(1),
        };
        let err = ask(&path, &request, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, AskError::NoDaemon { .. }), "{err}");
        assert!(err.to_string().contains("no control socket"), "{err}");
        drop(UnixListener::bind(&path).unwrap());
        let err = ask(&path, &request, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, AskError::NoDaemon { .. }), "{err}");
        assert!(err.to_string().contains("nothing answers"), "{err}");
    }

    /// A daemon whose settle ends after `delay` (or never, if `None`), counting the waits that
    /// were cancelled.
    fn serve(
        path: &Path,
        delay: Option<Duration>,
        cancelled: Arc<AtomicUsize>,
    ) -> tokio::task::JoinHandle<()> {
        struct Cancelled(Arc<AtomicUsize>, bool);
        impl Drop for Cancelled {
            fn drop(&mut self) {
                if !self.1 {
                    self.0.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        let socket = ControlSocket::bind(path).unwrap();
        tokio::spawn(socket.serve_with(move |seqnum, timeout| {
            let cancelled = Arc::clone(&cancelled);
            async move {
                let mut guard = Cancelled(cancelled, false);
                let wait = delay.unwrap_or(Duration::MAX);
                let result = match tokio::time::timeout(timeout, tokio::time::sleep(wait)).await {
                    Ok(()) => Ok(()),
                    Err(_) => Err(Pending {
                        seqnum,
                        ..Pending::default()
                    }),
                };
                guard.1 = true;
                result
            }
        }))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_daemon_answers_when_handled_or_when_the_time_is_up_and_drops_waits_of_clients_gone()
     {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control");
        let cancelled = Arc::new(AtomicUsize::new(0));
        let server = serve(
            &path,
            Some(Duration::from_millis(100)),
            Arc::clone(&cancelled),
        );
        let ask_blocking = |request: Request| {
            let path = path.clone();
            tokio::task::spawn_blocking(move || ask(&path, &request, Duration::from_secs(10)))
        };
        let handled = ask_blocking(Request::Settle {
            seqnum: 5,
            timeout: Duration::from_secs(5),
        });
        assert_eq!(handled.await.unwrap().unwrap(), Answer::Handled(5));
        let pending = ask_blocking(Request::Settle {
            seqnum: 6,
            timeout: Duration::from_millis(10),
        });
        match pending.await.unwrap().unwrap() {
            Answer::Pending(text) => assert!(text.starts_with("events up to seqnum 6"), "{text}"),
            other => panic!("{other:?}"),
        }
        // A bad request is refused, with a reason.
        let mut raw = UnixStream::connect(&path).unwrap();
        raw.write_all(b"hello\n").unwrap();
        let mut line = String::new();
        BufReader::new(&raw).read_line(&mut line).unwrap();
        assert!(line.starts_with("error unknown request"), "{line}");
        server.abort();
        let _ = server.await;
        assert!(!path.exists(), "removed when the server ends");
        assert_eq!(cancelled.load(Ordering::SeqCst), 0);

        // A client that goes away cancels its wait.
        let server = serve(&path, None, Arc::clone(&cancelled));
        let mut client = UnixStream::connect(&path).unwrap();
        client.write_all(b"settle 7 60000\n").unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(cancelled.load(Ordering::SeqCst), 0, "still waiting");
        drop(client);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while cancelled.load(Ordering::SeqCst) == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the wait was not cancelled"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server.abort();
        let _ = server.await;
    }
}
