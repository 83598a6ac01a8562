//! `ctrackd --preload FILE.pcap`: fills the table from a capture before serving.
//!
//! The capture's clock is rebased so that its last packet happens "now": connections then age
//! as if the capture had just ended. The file is read twice (once to find its last timestamp)
//! so that nothing but one record is held in memory.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use ctrack_core::{ProcessOptions, Tick, Tracker};

use crate::pcap::{PcapError, PcapReader};
use crate::replay::frame_of;

/// What a preload did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PreloadReport {
    /// Packets processed.
    pub packets: u64,
}

/// Why a preload failed.
#[derive(Debug, thiserror::Error)]
pub enum PreloadError {
    /// The file could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The capture is unreadable or malformed.
    #[error("{path}: {source}")]
    Capture {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: PcapError,
    },
}

fn reader(path: &Path) -> Result<PcapReader<BufReader<File>>, PreloadError> {
    let file = File::open(path).map_err(|source| PreloadError::Open {
        path: path.into(),
        source,
    })?;
    PcapReader::new(BufReader::with_capacity(1 << 16, file)).map_err(|source| {
        PreloadError::Capture {
            path: path.into(),
            source,
        }
    })
}

/// Runs every packet of `path` through `tracker`, the last one at `now`. A malformed file is
/// an error (nothing is half-loaded silently: the packets before the error stay tracked).
pub fn preload(
    tracker: &Tracker,
    path: &Path,
    opts: &ProcessOptions,
    zone: u16,
    now: Tick,
) -> Result<PreloadReport, PreloadError> {
    let capture_err = |source| PreloadError::Capture {
        path: path.into(),
        source,
    };
    let mut last_ms = 0u64;
    let mut first = reader(path)?;
    while let Some(r) = first.next_record().map_err(capture_err)? {
        last_ms = last_ms.max(r.ts_nanos / 1_000_000);
    }
    let mut report = PreloadReport::default();
    let mut second = reader(path)?;
    while let Some(r) = second.next_record().map_err(capture_err)? {
        let behind = last_ms.saturating_sub(r.ts_nanos / 1_000_000);
        let at = Tick::from_millis(now.as_millis().saturating_sub(behind));
        tracker.process(frame_of(&r), zone, opts, at);
        report.packets += 1;
    }
    Ok(report)
}
