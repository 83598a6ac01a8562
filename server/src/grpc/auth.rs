//! Authorisation under mutual TLS: only admin identities may call mutating RPCs.
//!
//! A client's identity is the DNS names in its certificate's subject alternative names (the
//! certificate itself was verified against the configured client CA by the TLS layer). Calls
//! to the methods of `ctrack_proto::MUTATING_METHODS` from a client none of whose names is on
//! the admin list get `PERMISSION_DENIED`; reads are open to every authenticated client.
//! Without mTLS (loopback or Unix socket, or an explicit `--insecure`) this layer is not
//! installed: whoever can reach the socket is trusted.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};

/// The layer.
#[derive(Debug, Clone)]
pub struct AdminOnlyLayer {
    admins: Arc<HashSet<String>>,
}

impl AdminOnlyLayer {
    /// Admits `admins` to mutating RPCs.
    pub fn new(admins: impl IntoIterator<Item = String>) -> Self {
        Self {
            admins: Arc::new(admins.into_iter().collect()),
        }
    }
}

impl<S> Layer<S> for AdminOnlyLayer {
    type Service = AdminOnly<S>;
    fn layer(&self, inner: S) -> AdminOnly<S> {
        AdminOnly {
            inner,
            admins: Arc::clone(&self.admins),
        }
    }
}

/// The service the layer makes.
#[derive(Debug, Clone)]
pub struct AdminOnly<S> {
    inner: S,
    admins: Arc<HashSet<String>>,
}

/// The DNS names of the client certificate of a TLS connection.
fn client_names<B>(req: &http::Request<B>) -> Vec<String> {
    let Some(info) = req.extensions().get::<TlsConnectInfo<TcpConnectInfo>>() else {
        return Vec::new();
    };
    let Some(certs) = info.peer_certs() else {
        return Vec::new();
    };
    let Some(leaf) = certs.first() else {
        return Vec::new();
    };
    match webpki::EndEntityCert::try_from(leaf) {
        Ok(cert) => cert.valid_dns_names().map(str::to_owned).collect(),
        Err(_) => Vec::new(),
    }
}

impl<S, B> Service<http::Request<B>> for AdminOnly<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path();
        if ctrack_proto::MUTATING_METHODS.contains(&path) {
            let names = client_names(&req);
            if !names.iter().any(|n| self.admins.contains(n)) {
                let who = if names.is_empty() {
                    "an unidentified client".to_owned()
                } else {
                    names.join(", ")
                };
                let status = Status::permission_denied(format!(
                    "{path} changes state and is allowed only to admin identities; {who} is not one"
                ));
                return Box::pin(std::future::ready(Ok(status.into_http())));
            }
        }
        Box::pin(self.inner.call(req))
    }
}
