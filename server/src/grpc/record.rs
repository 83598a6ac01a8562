//! A tower layer that counts gRPC requests by method and final status code, for metrics.
//!
//! Errors often come back "trailers-only" (the status in the response headers); successful
//! calls and streams carry it in the trailers at the end of the body, so the body is wrapped
//! to read them. A response dropped before its trailers (client cancelled) counts as
//! `Cancelled`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use tonic::Code;
use tower::{Layer, Service};

/// Requests by (method path, status code).
#[derive(Debug, Default)]
pub struct RequestCounters {
    counts: Mutex<HashMap<(String, Code), u64>>,
}

impl RequestCounters {
    fn record(&self, method: &str, code: Code) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        *counts.entry((method.to_owned(), code)).or_default() += 1;
    }

    /// Every count, as ((method, code name), count), sorted.
    pub fn snapshot(&self) -> Vec<((String, String), u64)> {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<_> = counts
            .iter()
            .map(|((m, c), n)| ((m.clone(), format!("{c:?}")), *n))
            .collect();
        all.sort();
        all
    }
}

/// The layer.
#[derive(Debug, Clone)]
pub struct RecordLayer {
    counters: Arc<RequestCounters>,
}

impl RecordLayer {
    /// Counts into `counters`.
    pub fn new(counters: Arc<RequestCounters>) -> Self {
        Self { counters }
    }
}

impl<S> Layer<S> for RecordLayer {
    type Service = Record<S>;
    fn layer(&self, inner: S) -> Record<S> {
        Record {
            inner,
            counters: Arc::clone(&self.counters),
        }
    }
}

/// The service the layer makes.
#[derive(Debug, Clone)]
pub struct Record<S> {
    inner: S,
    counters: Arc<RequestCounters>,
}

fn status_of(headers: &http::HeaderMap) -> Option<Code> {
    let v = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    Some(Code::from_i32(v))
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Record<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body + Send + 'static,
{
    type Response = http::Response<RecordBody<ResBody>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let method = req.uri().path().to_owned();
        let counters = Arc::clone(&self.counters);
        let fut = self.inner.call(req);
        Box::pin(async move {
            let response = fut.await?;
            let pending = match status_of(response.headers()) {
                Some(code) => {
                    counters.record(&method, code);
                    None
                }
                None => Some((method, counters)),
            };
            Ok(response.map(|inner| RecordBody {
                inner: Box::pin(inner),
                pending,
            }))
        })
    }
}

/// A response body that records the status found in its trailers.
pub struct RecordBody<B> {
    inner: Pin<Box<B>>,
    /// What to record once the status is known; `None` once recorded.
    pending: Option<(String, Arc<RequestCounters>)>,
}

impl<B> std::fmt::Debug for RecordBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBody").finish_non_exhaustive()
    }
}

impl<B> RecordBody<B> {
    fn finish(&mut self, code: Code) {
        if let Some((method, counters)) = self.pending.take() {
            counters.record(&method, code);
        }
    }
}

impl<B: Body> Body for RecordBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = self.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_of) {
                    self.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => self.finish(Code::Internal),
            Poll::Ready(None) => self.finish(Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for RecordBody<B> {
    fn drop(&mut self) {
        self.finish(Code::Cancelled);
    }
}
