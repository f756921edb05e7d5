//! The `krmx` binary as a child process: JSON-line events on its stdout, JSON-line commands on its
//! stdin. Every read is bounded by a timeout (a hang guard only: no test measures time), and every
//! child is killed when its test ends (pass or fail).

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::child::read_lines;

/// How long any awaited line or exit may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A running `krmx ...` child, killed on drop.
pub struct Krmx {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Read on a thread as it comes, so that a failure can show it while the child still runs.
    stderr: Arc<Mutex<String>>,
}

impl Krmx {
    /// `with_stdin`: a pipe the test writes commands to; otherwise stdin is /dev/null (closed).
    pub fn spawn(args: &[&str], with_stdin: bool) -> Krmx {
        let mut child = Command::new(env!("CARGO_BIN_EXE_krmx"))
            .args(args)
            .stdin(if with_stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start krmx");
        let stdin = child.stdin.take();
        let lines = read_lines(child.stdout.take().unwrap(), None);
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let stderr = stderr.clone();
            let mut pipe = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                let mut buffer = [0u8; 1024];
                while let Ok(n) = pipe.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    stderr.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..n]));
                }
            });
        }
        Krmx { name: format!("krmx {}", args.join(" ")), child, stdin, lines, stderr }
    }

    /// `krmx serve --port PORT ARGS...` (0: any free port), with its listen line read. Returns it
    /// and the port it listens on.
    pub fn serve_on(port: u16, args: &[&str], with_stdin: bool) -> (Krmx, u16) {
        let port_text = port.to_string();
        let mut all = vec!["serve", "--port", &port_text];
        all.extend_from_slice(args);
        let serve = Krmx::spawn(&all, with_stdin);
        let listen = serve.next_line();
        assert_eq!(listen["event"], "listen", "first line: {listen}");
        let port = listen["port"].as_u64().expect("listen line has a port") as u16;
        assert_ne!(port, 0);
        assert_eq!(listen, json!({ "event": "listen", "port": port }));
        (serve, port)
    }

    /// Everything on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn next_text(&self) -> String {
        match self.lines.recv_timeout(TIMEOUT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                panic!("{}: no line on stdout within {TIMEOUT:?}; stderr: {}", self.name, self.stderr())
            }
            Err(RecvTimeoutError::Disconnected) => panic!("{}: stdout ended; stderr: {}", self.name, self.stderr()),
        }
    }

    pub fn next_line(&self) -> Value {
        let line = self.next_text();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{}: stdout line {line:?} is not JSON: {e}", self.name))
    }

    pub fn expect(&self, expected: Value) {
        assert_eq!(self.next_line(), expected, "{}", self.name);
    }

    pub fn expect_all(&self, expected: &[Value]) {
        for line in expected {
            self.expect(line.clone());
        }
    }

    /// An error line; returns its message.
    pub fn expect_error(&self) -> String {
        let line = self.next_line();
        assert_eq!(line["event"], "error", "{}: expected an error line, got {line}", self.name);
        assert_eq!(line.as_object().unwrap().len(), 2, "{line}");
        line["error"].as_str().expect("the error is a string").to_string()
    }

    /// A close line; returns its reason.
    pub fn expect_close(&self) -> String {
        let line = self.next_line();
        assert_eq!(line["event"], "close", "{}: expected a close line, got {line}", self.name);
        assert_eq!(line.as_object().unwrap().len(), 2, "{line}");
        line["reason"].as_str().expect("the reason is a string").to_string()
    }

    /// No line on stdout for `duration`.
    pub fn expect_no_line(&self, duration: Duration) {
        if let Ok(line) = self.lines.recv_timeout(duration) {
            panic!("{}: expected no line for {duration:?}, got {line}", self.name);
        }
    }

    pub fn command(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("this process's stdin is not a pipe");
        writeln!(stdin, "{command}").expect("cannot write to stdin");
        stdin.flush().unwrap();
    }

    pub fn send(&mut self, command: Value) {
        self.command(&command.to_string());
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits for stdout to end and the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        match self.lines.recv_timeout(TIMEOUT) {
            Err(RecvTimeoutError::Disconnected) => {}
            Ok(line) => panic!("{}: expected stdout to end, got {line}", self.name),
            Err(RecvTimeoutError::Timeout) => panic!("{}: stdout did not end within {TIMEOUT:?}", self.name),
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not exit within {TIMEOUT:?}", self.name);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Krmx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JSON line about one user: `{"event":EVENT,"username":USERNAME}`.
pub fn ev(event: &str, username: &str) -> Value {
    json!({ "event": event, "username": username })
}
