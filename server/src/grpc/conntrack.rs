//! The `ConnTrack` service: flush, dump and watch.

use std::sync::Arc;

use ctrack_core::{DestroyReason, DumpCursor, EventKind};
use ctrack_proto::v1 as pb;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{Api, convert, engine_error};
use crate::events::HubItem;

const DEFAULT_BATCH: usize = 1000;
const MAX_BATCH: u32 = 10_000;

/// Implements `ctrack.v1.ConnTrack`.
#[derive(Debug, Clone)]
pub struct ConnTrackService {
    api: Arc<Api>,
}

impl ConnTrackService {
    /// The service over `api`.
    pub fn new(api: Arc<Api>) -> Self {
        Self { api }
    }
}

#[tonic::async_trait]
impl pb::conn_track_server::ConnTrack for ConnTrackService {
    async fn flush(
        &self,
        request: Request<pb::FlushRequest>,
    ) -> Result<Response<pb::FlushResponse>, Status> {
        use pb::flush_request::Target;
        let target = request
            .into_inner()
            .target
            .ok_or_else(|| convert::invalid("target", "missing"))?;
        let api = Arc::clone(&self.api);
        // Validate first: a rejected request changes nothing.
        enum Job {
            All,
            Zone(u16),
            Tuple(ctrack_core::ConnKey),
            Filter(ctrack_core::Filter),
        }
        let job = match target {
            Target::All(_) => Job::All,
            Target::Zone(z) => Job::Zone(convert::zone("zone", z)?),
            Target::Tuple(k) => Job::Tuple(convert::key("tuple", Some(k))?),
            Target::Filter(f) => Job::Filter(convert::filter("filter", Some(f))?),
        };
        // Flushing a big zone takes a while: keep it off the async workers.
        let removed = tokio::task::spawn_blocking(move || {
            let now = api.clock.now();
            match job {
                Job::All => Ok(api.tracker.flush_all(now)),
                Job::Zone(z) => Ok(api.tracker.flush_zone(z, now)),
                Job::Tuple(k) => api.tracker.flush_tuple(&k, now).map(|()| 1),
                Job::Filter(f) => Ok(api.tracker.flush_filter(&f, now)),
            }
        })
        .await
        .map_err(|e| Status::internal(format!("flush task failed: {e}")))?
        .map_err(engine_error)?;
        Ok(Response::new(pb::FlushResponse { removed }))
    }

    type DumpStream = ReceiverStream<Result<pb::DumpResponse, Status>>;

    async fn dump(
        &self,
        request: Request<pb::DumpRequest>,
    ) -> Result<Response<Self::DumpStream>, Status> {
        let req = request.into_inner();
        let filter = convert::filter("filter", req.filter)?;
        let batch = match req.batch_size {
            0 => DEFAULT_BATCH,
            n if n > MAX_BATCH => {
                return Err(convert::invalid(
                    "batch_size",
                    format!("{n} is above the maximum of {MAX_BATCH}"),
                ));
            }
            n => n as usize,
        };
        // One batch in flight: the producer makes the next batch only once the previous one
        // was taken by the transport, so a slow reader holds at most two batches in memory.
        let (tx, rx) = mpsc::channel(1);
        let api = Arc::clone(&self.api);
        let closing = api.hub.closing();
        tokio::spawn(async move {
            let mut cursor = DumpCursor::default();
            while !cursor.is_done() && !*closing.borrow() {
                let now = api.clock.now();
                let entries = api.tracker.dump(&filter, now, &mut cursor, batch);
                if entries.is_empty() {
                    continue;
                }
                let connections = entries
                    .iter()
                    .map(|e| convert::connection(e, now))
                    .collect();
                if tx.send(Ok(pb::DumpResponse { connections })).await.is_err() {
                    return; // the client went away
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type WatchStream = ReceiverStream<Result<pb::WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let filter = convert::filter("filter", request.into_inner().filter)?;
        let mut events = self.api.hub.subscribe();
        let mut closing = self.api.hub.closing();
        let (tx, rx) = mpsc::channel(64);
        let api = Arc::clone(&self.api);
        tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    r = events.recv() => r,
                    _ = closing.wait_for(|c| *c) => return,
                };
                let message = match received {
                    Ok(HubItem::Event(e)) => {
                        if !filter.matches(&e.entry) {
                            continue;
                        }
                        let kind = match e.kind {
                            EventKind::New => pb::connection_event::Kind::New(true),
                            EventKind::Destroy(r) => {
                                pb::connection_event::Kind::Destroyed(reason(r) as i32)
                            }
                        };
                        pb::watch_response::Message::Event(pb::ConnectionEvent {
                            kind: Some(kind),
                            connection: Some(convert::connection(&e.entry, api.clock.now())),
                            at_ms: api.clock.since_start(e.at),
                        })
                    }
                    Ok(HubItem::Lost(n)) => {
                        pb::watch_response::Message::Lost(pb::EventsLost { count: n })
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        pb::watch_response::Message::Lost(pb::EventsLost { count: n })
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if tx
                    .send(Ok(pb::WatchResponse {
                        message: Some(message),
                    }))
                    .await
                    .is_err()
                {
                    return; // the client went away
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

fn reason(r: DestroyReason) -> pb::DestroyReason {
    match r {
        DestroyReason::Expired => pb::DestroyReason::Expired,
        DestroyReason::Flushed => pb::DestroyReason::Flushed,
        DestroyReason::Forced => pb::DestroyReason::Forced,
        DestroyReason::PortReuse => pb::DestroyReason::PortReuse,
    }
}
