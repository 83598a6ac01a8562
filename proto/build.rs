//! Compiles `ctrack/v1/*.proto` with protox (pure Rust: no system `protoc` needed) and
//! generates the prost messages and tonic clients and servers.

use std::path::PathBuf;

const PROTOS: [&str; 5] = [
    "ctrack/v1/types.proto",
    "ctrack/v1/conntrack.proto",
    "ctrack/v1/limits.proto",
    "ctrack/v1/policies.proto",
    "ctrack/v1/system.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(PROTOS, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor = prost::Message::encode_to_vec(&fds);
    std::fs::write(out.join("ctrack_descriptor.bin"), descriptor)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
