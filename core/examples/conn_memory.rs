//! Measures the memory one connection costs: `size_of` and the resident-set growth of a
//! process that creates N UDP (or TCP) connections.
//!
//! `cargo run --release -p ctrack-core --example conn_memory -- [N] [udp|tcp]`

#![allow(clippy::disallowed_macros)] // an example program prints; the engine itself does not

use ctrack_core::tracker::CONNECTION_SIZE;
use ctrack_core::{Config, Frame, ProcessOptions, Tick, Tracker};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// An IPv4 frame from 10.x.y.z:port to 192.0.2.1:53 (UDP) or :80 (TCP SYN); no checksums.
fn frame(i: u32, tcp: bool) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[12] = 0x08;
    let l4_len = if tcp { 20 } else { 8 };
    let total = 20 + l4_len;
    let src = (10u32 << 24) | (i >> 15);
    let sport = (i & 0x7fff) as u16 + 1;
    let mut ip = vec![
        0x45,
        0,
        0,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        if tcp { 6 } else { 17 },
        0,
        0,
    ];
    ip.extend(src.to_be_bytes());
    ip.extend([192, 0, 2, 1]);
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend(ip);
    f.extend(sport.to_be_bytes());
    if tcp {
        f.extend(80u16.to_be_bytes());
        f.extend([0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    } else {
        f.extend(53u16.to_be_bytes());
        f.extend([0, 8, 0, 0]);
    }
    f
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u32 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let tcp = args.next().as_deref() == Some("tcp");
    let tracker = Tracker::new(Config {
        max_conns: 0,
        ..Config::default()
    });
    let opts = ProcessOptions {
        verify_checksums: false,
        ..ProcessOptions::default()
    };
    let frames: Vec<Vec<u8>> = (0..n).map(|i| frame(i, tcp)).collect();
    let before = rss_bytes();
    for f in &frames {
        tracker.process(Frame::Ethernet(f), 0, &opts, Tick::from_millis(1));
    }
    let after = rss_bytes();
    let created = tracker.connection_count();
    assert_eq!(created, u64::from(n), "every frame created a connection");
    println!(
        "connections: {created} ({})",
        if tcp { "tcp" } else { "udp" }
    );
    println!("size_of connection: {CONNECTION_SIZE} bytes");
    println!(
        "resident growth: {:.1} bytes per connection",
        (after - before) as f64 / f64::from(n)
    );
}
