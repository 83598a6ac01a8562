//! Replays every conformance fixture (real OVS v3.7.1 output for real pcaps) through
//! `ctrackd replay` and compares the output byte for byte. Dump lines may come in any order
//! and their `id=`/`status=` values are free; everything else must match exactly.

use std::path::{Path, PathBuf};

use clap::Parser;
use ctrack_server::replay::{self, ReplayArgs};

#[derive(Parser)]
struct Replay {
    #[command(flatten)]
    args: ReplayArgs,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/conformance")
}

fn replay(pcap: &Path, extra: &str) -> String {
    let mut argv = vec!["replay".to_owned()];
    argv.extend(extra.split_whitespace().map(str::to_owned));
    argv.push(pcap.display().to_string());
    let Replay { args } = Replay::try_parse_from(argv).expect("fixture arguments parse");
    let mut out = Vec::new();
    replay::run(&args, &mut out).expect("replay succeeds");
    String::from_utf8(out).expect("output is UTF-8")
}

/// Splits output into (per-packet lines and dump header, sorted normalised dump lines).
fn normalise(output: &str) -> (Vec<String>, Vec<String>) {
    let mut head = Vec::new();
    let mut dump = Vec::new();
    let mut in_dump = false;
    for line in output.lines() {
        if in_dump {
            dump.push(free_fields(line));
        } else {
            in_dump = line.starts_with("--- conntrack dump");
            head.push(line.to_owned());
        }
    }
    dump.sort();
    (head, dump)
}

fn free_fields(line: &str) -> String {
    let mut depth = 0i32;
    let mut fields = Vec::new();
    for field in line.split(',') {
        let top_level = depth == 0;
        depth += field.matches('(').count() as i32 - field.matches(')').count() as i32;
        fields.push(match field {
            f if top_level && f.starts_with("id=") => "id=*".to_owned(),
            f if top_level && f.starts_with("status=") => "status=*".to_owned(),
            f => f.to_owned(),
        });
    }
    fields.join(",")
}

#[test]
fn every_fixture_matches_ovs() {
    let mut cases = 0;
    let mut entries: Vec<_> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for pcap in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
    {
        let args_file = pcap.with_extension("args");
        let extra = std::fs::read_to_string(&args_file).unwrap_or_default();
        let expected = std::fs::read_to_string(pcap.with_extension("out")).unwrap();
        let actual = replay(pcap, &extra);
        let (exp_head, exp_dump) = normalise(&expected);
        let (act_head, act_dump) = normalise(&actual);
        assert_eq!(
            act_head,
            exp_head,
            "{}: per-packet output differs",
            pcap.display()
        );
        assert_eq!(act_dump, exp_dump, "{}: dump differs", pcap.display());
        if !expected.contains("--- conntrack dump") {
            assert_eq!(
                actual,
                expected,
                "{}: output differs byte for byte",
                pcap.display()
            );
        }
        cases += 1;
    }
    assert!(cases >= 10, "only {cases} fixtures found");
}

#[test]
fn dump_ids_are_the_only_free_fields() {
    let line = "icmp,orig=(src=1.1.1.1,dst=2.2.2.2,id=5,type=8,code=0),reply=(src=2.2.2.2,dst=1.1.1.1,id=5,type=0,code=0),id=77,status=3,timeout=1";
    let n = free_fields(line);
    assert!(n.contains("(src=1.1.1.1,dst=2.2.2.2,id=5,type=8"), "{n}");
    assert!(n.contains(",id=*,status=*,timeout=1"), "{n}");
}
