//! Mutual TLS on a real server: a client without a certificate is refused; a read-only
//! identity can dump but not flush; an admin identity can flush.

use std::sync::Arc;

use ctrack_core::Tracker;
use ctrack_proto::v1 as pb;
use ctrack_server::clock::Clock;
use ctrack_server::events::EventHub;
use ctrack_server::grpc::{self, Api, Tls};
use pb::conn_track_client::ConnTrackClient;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::sync::{oneshot, watch};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity, ServerTlsConfig};

struct Pki {
    ca_pem: String,
    ca_params: CertificateParams,
    ca_key: KeyPair,
}

impl Pki {
    fn new() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ctrack test CA");
        let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
        Self {
            ca_pem,
            ca_params,
            ca_key,
        }
    }

    /// A certificate and key (PEM) for `names`, signed by the CA.
    fn issue(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

struct Server {
    addr: std::net::SocketAddr,
    tracker: Arc<Tracker>,
    _stop: oneshot::Sender<()>,
    _hub_stop: watch::Sender<bool>,
}

async fn start(pki: &Pki) -> Server {
    let tracker = Arc::new(Tracker::default());
    let hub = Arc::new(EventHub::new(Arc::clone(&tracker), 64));
    let (hub_stop, hub_rx) = watch::channel(false);
    tokio::spawn(Arc::clone(&hub).run(hub_rx));
    let api = Arc::new(Api::standalone(Arc::clone(&tracker), Clock::start(), hub));
    let (cert, key) = pki.issue(&["localhost"]);
    let tls = Tls {
        config: ServerTlsConfig::new()
            .identity(Identity::from_pem(cert, key))
            .client_ca_root(Certificate::from_pem(&pki.ca_pem)),
        admins: Some(vec!["admin.ctrack.test".to_owned()]),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (health_reporter, health) = tonic_health::server::health_reporter();
    drop(health_reporter);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        grpc::serve(
            listener,
            api,
            health,
            grpc::Limits::default(),
            Some(tls),
            async {
                let _ = stopped.await;
            },
        )
        .await
        .expect("server runs");
    });
    Server {
        addr,
        tracker,
        _stop: stop,
        _hub_stop: hub_stop,
    }
}

async fn client(
    server: &Server,
    pki: &Pki,
    identity: Option<&[&str]>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost");
    if let Some(names) = identity {
        let (cert, key) = pki.issue(names);
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Channel::from_shared(format!("https://localhost:{}", server.addr.port()))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

fn flush_all() -> pb::FlushRequest {
    pb::FlushRequest {
        target: Some(pb::flush_request::Target::All(true)),
    }
}

#[tokio::test]
async fn identities_decide_who_may_mutate() {
    let pki = Pki::new();
    let server = start(&pki).await;

    // Without a client certificate the handshake fails (or the first call does).
    match client(&server, &pki, None).await {
        Err(_) => {}
        Ok(channel) => {
            let err = ConnTrackClient::new(channel)
                .flush(flush_all())
                .await
                .unwrap_err();
            assert_ne!(err.code(), Code::Ok);
            assert_ne!(
                err.code(),
                Code::PermissionDenied,
                "refused by TLS, not by authorisation: {err:?}"
            );
        }
    }

    let reader = client(&server, &pki, Some(&["reader.ctrack.test"]))
        .await
        .unwrap();
    let mut c = ConnTrackClient::new(reader.clone());
    let mut dump = c
        .dump(pb::DumpRequest {
            filter: None,
            batch_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    while dump.message().await.unwrap().is_some() {}
    let err = c.flush(flush_all()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("reader.ctrack.test"),
        "{}",
        err.message()
    );
    let err = pb::system_client::SystemClient::new(reader)
        .update_settings(pb::UpdateSettingsRequest {
            max_conns: Some(1),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(
        server.tracker.max_conns(),
        ctrack_core::tracker::DEFAULT_MAX_CONNS
    );

    let admin = client(&server, &pki, Some(&["admin.ctrack.test"]))
        .await
        .unwrap();
    let removed = ConnTrackClient::new(admin)
        .flush(flush_all())
        .await
        .unwrap()
        .into_inner()
        .removed;
    assert_eq!(removed, 0);
}
