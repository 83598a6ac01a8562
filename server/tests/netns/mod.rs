//! Helpers shared by the tests that build network namespaces (they need root, `ip` and
//! python3, and skip with a line saying why when any is missing).
#![allow(dead_code)]

use std::process::{Command, Stdio};

/// Whether this process may create namespaces and capture; prints why not.
pub(crate) fn can_run(what: &str) -> bool {
    if !is_root() {
        println!("skipped: {what} needs root (network namespaces, AF_PACKET)");
        return false;
    }
    for tool in ["ip", "python3"] {
        if !tool_exists(tool) {
            println!("skipped: {tool} is not installed");
            return false;
        }
    }
    true
}

/// Effective uid 0, read from /proc (no libc call needed).
pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Uid:"))?;
            Some(line.split_whitespace().nth(2)? == "0")
        })
        .unwrap_or(false)
}

/// Whether `tool` is on the PATH.
pub(crate) fn tool_exists(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `ip ARGS` and asserts it succeeded.
pub(crate) fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
