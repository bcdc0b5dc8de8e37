//! A peer process a test starts beside the host (an identity provider written by
//! someone else, run from its registry package): started with a command, ready when it
//! prints one line with a known prefix on stdout, its stderr kept in a file for failure
//! messages, its stdin held open (the peer exits when it closes, even if the test is
//! killed) and killed when dropped.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// How long a peer may take to start on a loaded machine.
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A running peer; killed when dropped.
pub struct PeerProcess {
    child: Child,
    _stdin: Option<ChildStdin>,
    stderr_path: PathBuf,
    /// What followed the ready prefix on the ready line.
    pub ready: String,
}

impl PeerProcess {
    /// Runs `command` (its stdio is set here), writing its stderr to `stderr_path`, and
    /// waits for the stdout line starting with `ready_prefix`. `what` names the peer and
    /// how to install it in failure messages.
    pub fn start(mut command: Command, ready_prefix: &str, stderr_path: &Path, what: &str) -> Self {
        let stderr = std::fs::File::create(stderr_path).expect("create the peer's log");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready_tx, ready_rx) = mpsc::channel();
        let prefix = ready_prefix.to_owned();
        std::thread::spawn(move || {
            // Report the ready line, then keep draining so the peer never blocks.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix(&prefix) {
                    let _ = ready_tx.send(rest.trim().to_owned());
                }
            }
        });
        let mut peer = Self {
            child,
            _stdin: stdin,
            stderr_path: stderr_path.to_owned(),
            ready: String::new(),
        };
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => peer.ready = line,
            Err(error) => {
                let _ = peer.child.kill();
                let _ = peer.child.wait();
                let why = match error {
                    mpsc::RecvTimeoutError::Timeout => {
                        format!("did not become ready within {START_TIMEOUT:?}")
                    }
                    mpsc::RecvTimeoutError::Disconnected => "ended before it was ready".to_owned(),
                };
                panic!("{what} {why}; its stderr:\n{}", peer.stderr());
            }
        }
        peer
    }

    /// The peer's stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
