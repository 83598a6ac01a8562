//! `ctrackd replay` as a user runs it: the real binary, real capture files, in every container
//! format and link type it accepts, and the errors it must report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/conformance")
        .join(name)
}

fn ctrackd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ctrackd"))
        .args(args)
        .output()
        .expect("ctrackd runs")
}

fn temp(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ctrack-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// (timestamp seconds, microseconds, frame) of each record of a classic little-endian pcap.
fn records(pcap: &[u8]) -> Vec<(u32, u32, Vec<u8>)> {
    let le = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let (sec, usec, len) = (
            le(&pcap[at..]),
            le(&pcap[at + 4..]),
            le(&pcap[at + 8..]) as usize,
        );
        out.push((sec, usec, pcap[at + 16..at + 16 + len].to_vec()));
        at += 16 + len;
    }
    out
}

/// A classic little-endian pcap (version 2.4) with the given magic and link type.
fn classic(magic: u32, linktype: u32, recs: &[(u32, u32, Vec<u8>)]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend(magic.to_le_bytes());
    f.extend(2u16.to_le_bytes());
    f.extend(4u16.to_le_bytes());
    for v in [0, 0, 65535, linktype] {
        f.extend(u32::to_le_bytes(v));
    }
    for (sec, frac, data) in recs {
        for v in [*sec, *frac, data.len() as u32, data.len() as u32] {
            f.extend(v.to_le_bytes());
        }
        f.extend(data);
    }
    f
}

fn pcapng(recs: &[(u32, u32, Vec<u8>)]) -> Vec<u8> {
    let block = |ty: u32, body: &[u8]| {
        let mut b = Vec::new();
        let padded = body.len().div_ceil(4) * 4;
        let total = (12 + padded) as u32;
        b.extend(ty.to_le_bytes());
        b.extend(total.to_le_bytes());
        b.extend(body);
        b.resize(8 + padded, 0);
        b.extend(total.to_le_bytes());
        b
    };
    let mut shb = Vec::new();
    shb.extend(0x1A2B_3C4Du32.to_le_bytes());
    shb.extend([1, 0, 0, 0]);
    shb.extend((-1i64).to_le_bytes());
    let mut idb = Vec::new();
    idb.extend(1u16.to_le_bytes());
    idb.extend(0u16.to_le_bytes());
    idb.extend(65535u32.to_le_bytes());
    let mut f = block(0x0A0D_0D0A, &shb);
    f.extend(block(1, &idb));
    for (sec, usec, data) in recs {
        let ts = u64::from(*sec) * 1_000_000 + u64::from(*usec);
        let mut epb = Vec::new();
        epb.extend(0u32.to_le_bytes());
        epb.extend(((ts >> 32) as u32).to_le_bytes());
        epb.extend((ts as u32).to_le_bytes());
        epb.extend((data.len() as u32).to_le_bytes());
        epb.extend((data.len() as u32).to_le_bytes());
        epb.extend(data);
        f.extend(block(6, &epb));
    }
    f
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

#[test]
fn replays_a_fixture_to_stdout() {
    let out = ctrackd(&["replay", fixture("loopback.pcap").to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        expected("loopback.out")
    );
    assert!(out.stderr.is_empty());
}

#[test]
fn same_packets_in_every_container_and_link_type() {
    let original = std::fs::read(fixture("loopback.pcap")).unwrap();
    let recs = records(&original);
    assert_eq!(recs.len(), 20);
    let nanos: Vec<_> = recs
        .iter()
        .map(|(s, u, d)| (*s, u * 1000, d.clone()))
        .collect();
    // Linux cooked capture: the 14-byte Ethernet header becomes a 16-byte SLL header.
    let sll: Vec<_> = recs
        .iter()
        .map(|(s, u, d)| {
            let mut f = vec![0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0];
            f.extend(&d[12..14]);
            f.extend(&d[14..]);
            (*s, *u, f)
        })
        .collect();
    let files = [
        ("nanosecond.pcap", classic(0xa1b2_3c4d, 1, &nanos)),
        ("cooked.pcap", classic(0xa1b2_c3d4, 113, &sll)),
        ("capture.pcapng", pcapng(&recs)),
    ];
    for (name, bytes) in files {
        let path = temp(name, &bytes);
        let out = ctrackd(&["replay", path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            expected("loopback.out"),
            "{name}"
        );
    }
}

#[test]
fn truncated_capture_prints_what_it_read_then_fails() {
    let original = std::fs::read(fixture("loopback.pcap")).unwrap();
    let recs = records(&original);
    let whole: usize = 24
        + recs[..5]
            .iter()
            .map(|(_, _, d)| 16 + d.len())
            .sum::<usize>();
    let path = temp("truncated.pcap", &original[..whole + 16 + 10]);
    let out = ctrackd(&["replay", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let first_five: String = expected("loopback.out")
        .lines()
        .take(5)
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(stdout, first_five);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one error line: {stderr}");
    assert!(
        stderr.contains("truncated.pcap") && stderr.contains("after 5 packets"),
        "{stderr}"
    );
}

#[test]
fn refuses_unreadable_input_clearly() {
    let not_pcap = temp("notes.txt", b"this is not a capture file at all");
    let out = ctrackd(&["replay", not_pcap.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(!String::from_utf8(out.stderr).unwrap().is_empty());

    let original = std::fs::read(fixture("loopback.pcap")).unwrap();
    let wifi = temp(
        "wifi.pcap",
        &classic(0xa1b2_c3d4, 105, &records(&original)[..2]),
    );
    let out = ctrackd(&["replay", wifi.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("link type 105"), "{stderr}");

    let out = ctrackd(&["replay", "/nonexistent/capture.pcap"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("cannot open")
    );
}

#[test]
fn bad_options_are_usage_errors() {
    let pcap = fixture("loopback.pcap");
    let pcap = pcap.to_str().unwrap();
    for args in [
        &["replay", "--zone", "70000", pcap][..],
        &["replay", "--zone-limit", "abc", pcap],
        &["replay", "--policy", "1:udp_bogus=3", pcap],
        &["replay", "--clock", "sundial", pcap],
        &["replay", "--verify-checksums", "maybe", pcap],
    ] {
        let out = ctrackd(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let out = ctrackd(&["replay", "--policy-id", "9", pcap]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("timeout policy 9 does not exist")
    );
}

#[test]
fn options_reach_the_engine() {
    let pcap = fixture("timeouts.pcap");
    let pcap = pcap.to_str().unwrap();
    // A policy making UDP's first timeout 1 s: packet 2 (59 s later) is new again.
    let out = ctrackd(&[
        "replay",
        "--policy",
        "3:udp_first=1",
        "--policy-id",
        "3",
        pcap,
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("1: new|trk\n2: new|trk\n3: new|trk\n"),
        "{text}"
    );
    // A zone limit of 1 in zone 5: only the first connection is stored.
    let out = ctrackd(&[
        "replay",
        "--zone",
        "5",
        "--zone-limit",
        "5:1",
        "--dump",
        pcap,
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("--- conntrack dump (n_conn=1) ---"), "{text}");
    // The wall clock replays without errors (nothing expires in the run's few milliseconds).
    let out = ctrackd(&[
        "replay",
        "--clock",
        "wall",
        fixture("loopback.pcap").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        expected("loopback.out")
    );
}
