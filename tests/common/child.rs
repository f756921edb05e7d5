//! Child processes of a test: killed when dropped, their stdout read as lines on a thread so that
//! every wait for a line can time out (std has no read with a timeout on a pipe).

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The lines of `stdout`, read on a thread until it ends (then the channel disconnects). With
/// `echo_as`, each line is also printed as it arrives, prefixed `NAME| `: on failure the test
/// harness shows that chronological transcript.
pub fn read_lines(stdout: impl Read + Send + 'static, echo_as: Option<&'static str>) -> Receiver<String> {
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(name) = echo_as {
                println!("{name}| {line}");
            }
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// A child process that is killed when dropped, so a failing test leaves nothing running. Its
/// stderr is collected on a thread (and echoed, which the test harness shows on failure).
pub struct Process {
    pub name: &'static str,
    pub child: Child,
    stderr: Option<JoinHandle<String>>,
}

impl Process {
    pub fn spawn(name: &'static str, command: &mut Command, stdin: Stdio) -> Result<Process, String> {
        let mut child = command.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                format!("{name} is not installed or not on PATH (this test needs Node.js 20+ and npm)")
            } else {
                format!("cannot start {name}: {e}")
            }
        })?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                println!("{name} stderr| {line}");
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        Ok(Process { name, child, stderr: Some(stderr) })
    }

    pub fn take_stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("stdin is piped")
    }

    pub fn take_stdout(&mut self) -> ChildStdout {
        self.child.stdout.take().expect("stdout is piped")
    }

    /// Waits for the process to exit; polling because std has no wait with a timeout.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Ok(None) => panic!("{} did not exit within {timeout:?}", self.name),
                Err(e) => panic!("cannot wait for {}: {e}", self.name),
            }
        }
    }

    /// Everything the process wrote to stderr; call once it has exited.
    pub fn stderr(&mut self) -> String {
        self.stderr.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The lines of a child's stdout (echoed as they arrive, see [`read_lines`]), each read bounded
/// by a timeout.
pub struct Lines {
    name: &'static str,
    lines: Receiver<String>,
}

impl Lines {
    pub fn new(name: &'static str, stdout: impl Read + Send + 'static) -> Lines {
        Lines { name, lines: read_lines(stdout, Some(name)) }
    }

    /// The next line, or `None` once the child closed its stdout.
    pub fn next(&self, timeout: Duration, waiting_for: &str) -> Option<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                panic!("{}: nothing within {timeout:?} while waiting for {waiting_for}", self.name)
            }
        }
    }

    /// The next line as JSON; the child ending first fails the test.
    pub fn next_json(&self, timeout: Duration, waiting_for: &str) -> Value {
        let line = self
            .next(timeout, waiting_for)
            .unwrap_or_else(|| panic!("{} exited while waiting for {waiting_for}", self.name));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{}: line is not JSON ({e}): {line}", self.name))
    }
}

/// Writes `line` and a newline to a child's stdin, flushed (the child reads it at once).
pub fn write_line(name: &str, stdin: &mut ChildStdin, line: &Value) {
    writeln!(stdin, "{line}").and_then(|()| stdin.flush()).unwrap_or_else(|e| panic!("cannot write to {name}: {e}"));
}
