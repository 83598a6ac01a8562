//! The `ctrackd` binary as an operator runs it, without root: a preloaded table served over
//! gRPC, health SERVING, metrics, `check-config`, and a clean exit on SIGTERM within 5 s.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ctrack_proto::v1 as pb;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/conformance")
        .join(name)
        .display()
        .to_string()
}

async fn connect(port: u16) -> tonic::transport::Channel {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let endpoint =
            tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
        match endpoint.connect().await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("daemon never listened: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test]
async fn preloaded_daemon_serves_then_exits_on_sigterm() {
    let (grpc_port, metrics_port, health_port) = (free_port(), free_port(), free_port());
    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_ctrackd"))
            .args(["--preload", &fixture("loopback.pcap")])
            .args(["--listen", &format!("127.0.0.1:{grpc_port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .args(["--health-listen", &format!("127.0.0.1:{health_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let channel = connect(grpc_port).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| r.into_inner().status);
        if status.as_ref().ok()
            == Some(&(tonic_health::pb::health_check_response::ServingStatus::Serving as i32))
        {
            break;
        }
        assert!(Instant::now() < deadline, "never SERVING: {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The plaintext health-only endpoint reports the same status, and serves nothing else.
    let health_only = connect(health_port).await;
    let status = tonic_health::pb::health_client::HealthClient::new(health_only.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "ctrack.v1.ConnTrack".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let refused = pb::system_client::SystemClient::new(health_only)
        .get_settings(pb::GetSettingsRequest {})
        .await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::Unimplemented);
    let mut dump = pb::conn_track_client::ConnTrackClient::new(channel.clone())
        .dump(pb::DumpRequest {
            filter: None,
            batch_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while let Some(batch) = dump.message().await.unwrap() {
        n += batch.connections.len();
    }
    assert_eq!(n, 5);
    let config = pb::system_client::SystemClient::new(channel)
        .get_config(pb::GetConfigRequest {})
        .await
        .unwrap()
        .into_inner()
        .toml;
    assert!(
        config.contains(&format!("listen = \"127.0.0.1:{grpc_port}\"")),
        "{config}"
    );

    // An open Watch stream must not hold the shutdown up.
    let watch_channel = connect(grpc_port).await;
    let _watch = pb::conn_track_client::ConnTrackClient::new(watch_channel)
        .watch(pb::WatchRequest { filter: None })
        .await
        .unwrap();
    let pid = daemon.0.id().to_string();
    let sent = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = loop {
        if let Some(s) = daemon.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(3),
            "still running 3 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(daemon.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("SIGTERM received") && stderr.contains("preloaded"),
        "{stderr}"
    );
}

#[test]
fn check_config_accepts_the_example_and_rejects_errors() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/ctrack.example.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_ctrackd"))
        .args(["check-config", example.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout).unwrap().contains("[grpc]"));
    let bad = std::env::temp_dir().join(format!("ctrack-bad-{}.toml", std::process::id()));
    std::fs::write(
        &bad,
        "[capture]\ninterfaces = [{ name = \"eth0\", zone = 70000 }]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ctrackd"))
        .args(["check-config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("capture.interfaces[0].zone") && err.contains("70000"),
        "{err}"
    );
    let _ = std::fs::remove_file(bad);
}

#[test]
fn refuses_plaintext_on_a_public_address() {
    let out = Command::new(env!("CARGO_BIN_EXE_ctrackd"))
        .args([
            "--preload",
            &fixture("loopback.pcap"),
            "--listen",
            "0.0.0.0:50051",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("refusing to serve plaintext gRPC on 0.0.0.0:50051"),
        "{err}"
    );
}
