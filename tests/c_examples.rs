//! The C examples (examples-c/) as a newcomer runs them, built by their own Makefile with
//! AddressSanitizer (leak detection on) and UndefinedBehaviorSanitizer: a chat between two
//! chat_client processes through chat_server, three game_loop processes keeping a counter in sync,
//! and a clean stop of the server on SIGTERM. Also `make install` and a program built against the
//! installed library with pkg-config.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::c_build::{library_dir, manifest_dir, run, sanitized, STRICT};
use common::child::read_lines;

/// A guard against a hang only; nothing here takes more than a few seconds.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh directory under the target's temporary directory.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `make -C examples-c ...` with the library of this build.
fn make(args: &[&str]) -> Command {
    let mut command = Command::new("make");
    command.arg("-s").arg("-C").arg(manifest_dir().join("examples-c"));
    command.arg(format!("KRMX_LIB_DIR={}", library_dir().display()));
    command.args(args);
    command
}

/// One running example: its stdout as lines (read on a thread, so every wait has a timeout), its
/// stdin (when piped) and its whole stderr at the end.
struct Example {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Example {
    fn start(bin: &Path, program: &str, args: &[&str]) -> Example {
        let mut child = sanitized(Command::new(bin.join(program)).args(args))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let lines = read_lines(child.stdout.take().unwrap(), None);
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let name = format!("{program} {}", args.join(" "));
        Example { name, stdin: child.stdin.take(), child, lines, seen: Vec::new(), stderr: Some(stderr) }
    }

    /// The next line of stdout.
    fn next(&mut self) -> String {
        match self.lines.recv_timeout(TIMEOUT) {
            Ok(line) => {
                self.seen.push(line.clone());
                line
            }
            Err(_) => panic!("{}: no more output; so far:\n{}", self.name, self.seen.join("\n")),
        }
    }

    /// Skips lines until `expected` comes.
    fn wait_for(&mut self, expected: &str) {
        while self.next() != expected {}
    }

    /// The next lines must be exactly these.
    fn expect_lines(&mut self, expected: &[&str]) {
        for line in expected {
            let got = self.next();
            assert_eq!(&got, line, "{}: so far:\n{}", self.name, self.seen.join("\n"));
        }
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is closed");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Ends stdin (as Ctrl-D does).
    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the exit; the status must be success and stderr free of sanitizer reports.
    /// Returns the rest of stdout.
    fn expect_clean_exit(&mut self) -> Vec<String> {
        self.stdin = None;
        let deadline = Instant::now() + TIMEOUT;
        let status: ExitStatus = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "{} did not exit; output:\n{}", self.name, self.seen.join("\n"));
            std::thread::sleep(Duration::from_millis(20));
        };
        let rest: Vec<String> = self.lines.iter().collect();
        self.seen.extend(rest.iter().cloned());
        let stderr = self.stderr.take().unwrap().join().unwrap();
        assert!(
            status.success(),
            "{} exited with {status}:\n{}\n{stderr}",
            self.name,
            self.seen.join("\n")
        );
        for report in ["AddressSanitizer", "LeakSanitizer", "runtime error"] {
            assert!(!stderr.contains(report), "{}: {report}:\n{stderr}", self.name);
        }
        rest
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_c_examples_chat_and_keep_a_counter_in_sync_clean_under_sanitizers() {
    let bin = fresh_dir("c_examples_bin");
    run(&mut make(&["SANITIZE=1", &format!("OUT={}", bin.display())]));

    // Port 0: the server picks a free port and says which.
    let mut server = Example::start(&bin, "chat_server", &["0"]);
    let listening = server.next();
    let port = listening.strip_prefix("listening on port ").unwrap_or_else(|| panic!("{listening}"));
    let url = format!("ws://127.0.0.1:{port}");

    let mut alice = Example::start(&bin, "chat_client", &[&url, "alice"]);
    alice.wait_for("linked as alice");
    alice.expect_lines(&["* alice joined", "* alice is online"]);
    server.expect_lines(&["alice joined", "alice linked"]);
    let mut bob = Example::start(&bin, "chat_client", &[&url, "bob"]);
    bob.wait_for("linked as bob");
    bob.expect_lines(&["* alice joined", "* alice is online", "* bob joined", "* bob is online"]);
    alice.expect_lines(&["* bob joined", "* bob is online"]);
    server.expect_lines(&["bob joined", "bob linked"]);

    // Quotes, a backslash and UTF-8 go through JSON and back; every linked user gets each line.
    alice.type_line(r#"hello bob, "quoted" \ é"#);
    let said = r#"<alice> hello bob, "quoted" \ é"#;
    alice.expect_lines(&[said]);
    bob.expect_lines(&[said]);
    server.expect_lines(&[r#"<alice> "hello bob, \"quoted\" \\ é""#]);
    bob.type_line("hi alice");
    bob.expect_lines(&["<bob> hi alice"]);
    alice.expect_lines(&["<bob> hi alice"]);
    bob.type_line("/users");
    bob.expect_lines(&["users (2):", "  alice (online)", "  bob (online)"]);

    alice.type_line("/users");
    alice.type_line("/quit");
    alice.expect_lines(&["users (2):", "  alice (online)", "  bob (online)", "closed: disconnected by the client"]);
    assert_eq!(alice.expect_clean_exit(), Vec::<String>::new());
    bob.expect_lines(&["* alice went offline"]);
    bob.type_line("/users");
    bob.expect_lines(&["users (2):", "  alice (offline)", "  bob (online)"]);
    bob.close_stdin(); // the end of stdin quits too
    bob.expect_lines(&["closed: disconnected by the client"]);
    bob.expect_clean_exit();
    server.wait_for("alice unlinked");
    server.wait_for("bob unlinked");

    // Three game loops at once: 5 + 7 + 9 adds, and every one of them ends at 21.
    let mut games: Vec<Example> = [("g5", "5"), ("g7", "7"), ("g9", "9")]
        .iter()
        .map(|(name, adds)| Example::start(&bin, "game_loop", &[&url, name, adds, "21"]))
        .collect();
    for game in &mut games {
        game.expect_lines(&["counter 21"]);
        assert_eq!(game.expect_clean_exit(), Vec::<String>::new(), "{}", game.name);
    }

    // SIGTERM: the server closes (every user leaves), frees everything and exits 0.
    let pid = libc::pid_t::try_from(server.child.id()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    server.wait_for("closed");
    server.expect_clean_exit();
    for user in ["alice", "bob", "g5", "g7", "g9"] {
        assert!(server.seen.contains(&format!("{user} left")), "{user} did not leave:\n{}", server.seen.join("\n"));
    }
}

#[test]
fn make_install_gives_pkg_config_what_a_c_program_needs() {
    let prefix = fresh_dir("c_examples_prefix");
    let out = fresh_dir("c_examples_pc");
    run(&mut make(&["install", &format!("PREFIX={}", prefix.display()), &format!("OUT={}", out.display())]));
    for file in ["lib/libkrmx.a", "lib/libkrmx.so", "include/krmx.h", "lib/pkgconfig/krmx.pc"] {
        assert!(prefix.join(file).is_file(), "{file} is not installed");
    }

    let pkg_config = |args: &[&str]| -> Vec<String> {
        let mut command = Command::new("pkg-config");
        command.args(args).arg("krmx").env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"));
        run(&mut command).split_whitespace().map(str::to_string).collect()
    };
    assert_eq!(pkg_config(&["--modversion"]), [env!("CARGO_PKG_VERSION")]);

    let source = out.join("hello_krmx.c");
    std::fs::write(
        &source,
        r#"#include <stdio.h>
#include <string.h>
#include <krmx.h>

int main(void) {
    KrmxServer *server = NULL;
    KrmxEvent event;
    uint16_t port = 0;
    if (strcmp(krmx_version(), KRMX_VERSION) != 0) return 1;
    if (krmx_server_new(NULL, &server) != KRMX_OK || krmx_server_listen(server, 0) != KRMX_OK) return 2;
    if (krmx_server_port(server, &port) != KRMX_OK || port == 0) return 3;
    if (krmx_server_close(server) != KRMX_OK) return 4;
    do {
        if (krmx_server_poll(server, &event, 10000) == KRMX_NO_EVENT) return 5;
    } while (event.kind != KRMX_EVENT_CLOSE);
    krmx_server_free(server);
    printf("krmx %s\n", krmx_version());
    return 0;
}
"#,
    )
    .unwrap();
    let expected = format!("krmx {}\n", env!("CARGO_PKG_VERSION"));

    // Shared: `cc app.c $(pkg-config --cflags --libs krmx)`, found at run time in PREFIX/lib.
    let shared = out.join("hello_shared");
    let mut command = Command::new("cc");
    command.arg("-std=c99").args(STRICT).arg(&source);
    command.args(pkg_config(&["--cflags", "--libs"])).arg("-o").arg(&shared);
    run(&mut command);
    assert_eq!(run(Command::new(&shared).env("LD_LIBRARY_PATH", prefix.join("lib"))), expected);

    // Static: libkrmx.a plus the system libraries of `pkg-config --static` (Libs.private).
    let static_binary = out.join("hello_static");
    let mut command = Command::new("cc");
    command.arg("-std=c99").args(STRICT).arg(&source);
    command.args(pkg_config(&["--cflags"]));
    let libs = pkg_config(&["--static", "--libs"]);
    assert!(libs.iter().any(|l| l == "-lpthread"), "{libs:?}");
    for lib in libs {
        if lib == "-lkrmx" {
            command.arg(prefix.join("lib/libkrmx.a"));
        } else {
            command.arg(lib);
        }
    }
    command.arg("-o").arg(&static_binary);
    run(&mut command);
    assert_eq!(run(&mut Command::new(&static_binary)), expected);
}
