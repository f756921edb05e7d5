//! The Node.js side of the interoperability tests: `tests/interop` holds the host scripts and the
//! npm packages they run (locked by `tests/interop/package-lock.json`).

use std::fs;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use super::child::Process;

/// `npm ci` downloads from the registry, which may be slow.
const NPM_TIMEOUT: Duration = Duration::from_secs(300);

/// `tests/interop`: the scripts `node` runs there, and its `node_modules`.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("interop")
}

/// Installs the locked npm packages once per test binary (the tests run on parallel threads and
/// two concurrent `npm ci` runs in one directory would trip over each other).
pub fn ensure_node_modules() {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = INSTALLED.get_or_init(install_node_modules) {
        panic!("{e}");
    }
}

fn install_node_modules() -> Result<(), String> {
    let dir = interop_dir();
    let modified = |path: &Path| fs::metadata(path).and_then(|m| m.modified()).ok();
    let lock = modified(&dir.join("package-lock.json")).ok_or("tests/interop/package-lock.json is missing")?;
    // npm rewrites node_modules/.package-lock.json on every install, so it dates the installation.
    if modified(&dir.join("node_modules").join(".package-lock.json")).is_some_and(|installed| installed >= lock) {
        return Ok(());
    }
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir);
    let mut npm = Process::spawn("npm", &mut npm, Stdio::null())
        .map_err(|e| format!("cannot run npm ci in {}: {e}", dir.display()))?;
    let stdout = npm.take_stdout();
    let output = thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stdout).read_to_string(&mut text);
        text
    });
    let status = npm.wait(NPM_TIMEOUT);
    let output = output.join().unwrap_or_default();
    let errors = npm.stderr();
    if !status.success() {
        return Err(format!("npm ci failed in {} ({status}):\n{output}{errors}", dir.display()));
    }
    Ok(())
}
