//! Building and running C programs against this build of the library, as a C user would: with
//! the header in `include/`, the libraries next to the test executable, every warning an error,
//! and the sanitizers' options for running them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Every warning an error (with `-std=...` before it).
pub const STRICT: [&str; 4] = ["-Wall", "-Wextra", "-Wpedantic", "-Werror"];

pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding this build's `libkrmx.a` and `libkrmx.so` (next to the test executable).
pub fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap().to_path_buf();
    for lib in ["libkrmx.a", "libkrmx.so"] {
        assert!(deps.join(lib).exists(), "{lib} not found in {}", deps.display());
    }
    deps
}

/// Runs `command` to its end; it must succeed. Returns its stdout.
pub fn run(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{command:?} failed:\n{text}{}", String::from_utf8_lossy(&output.stderr));
    text
}

/// For a program built with `-fsanitize=address,undefined`: leaks are reported, and undefined
/// behaviour stops it with a stack trace (a nonzero exit the test sees) instead of going on.
pub fn sanitized(command: &mut Command) -> &mut Command {
    command
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
}
