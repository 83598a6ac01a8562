//! Streaming reader for packet capture files, used by the offline replay tool.
//!
//! [`PcapReader`] reads one packet record at a time from any [`std::io::Read`]
//! source and hands out [`Record`]s that borrow a single internal buffer, so
//! no allocation happens per packet once the buffer has grown to the largest
//! packet seen.
//!
//! Supported formats:
//!
//! * **Classic pcap** (libpcap), microsecond (`0xa1b2c3d4`) and nanosecond
//!   (`0xa1b23c4d`) variants, little- and big-endian.
//! * **pcapng**: Section Header Blocks (several sections per file, each with
//!   its own byte order and interfaces), Interface Description Blocks
//!   (including the `if_tsresol` and `if_tsoffset` options), Enhanced Packet
//!   Blocks, Simple Packet Blocks and the obsolete Packet Block. All other
//!   block types (name resolution, statistics, custom, decryption secrets,
//!   ...) are skipped without being buffered.
//!
//! Supported link types are Ethernet (DLT 1), Linux cooked capture v1
//! (SLL, DLT 113) and v2 (SLL2, DLT 276); [`sll_payload`] strips the cooked
//! headers.
//!
//! The reader is meant for untrusted files: it never panics on malformed
//! input, checks every length field before using it, and refuses packets
//! whose captured length exceeds [`MAX_CAPTURED_LEN`] instead of allocating
//! for them.

use std::io::{self, Read};

/// Largest captured length (in bytes) accepted for a single packet.
///
/// A record claiming more is reported as [`PcapError::Malformed`] and
/// nothing is allocated for it.
pub const MAX_CAPTURED_LEN: u32 = 256 * 1024;

/// Largest pcapng Interface Description Block that is read into memory.
const MAX_INTERFACE_BLOCK_LEN: u32 = 256 * 1024;

/// Largest number of interfaces accepted in one pcapng section.
const MAX_INTERFACES: usize = 65_536;

/// First four bytes of a pcapng file (the Section Header Block type); the
/// value reads the same in both byte orders.
const SHB_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// pcapng block types handled by the reader.
const BLOCK_IDB: u32 = 1;
const BLOCK_PB: u32 = 2;
const BLOCK_SPB: u32 = 3;
const BLOCK_EPB: u32 = 6;

/// pcapng option codes used by the reader.
const OPT_END_OF_OPTIONS: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Link-layer type of the packets in a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// Ethernet II frames (DLT 1).
    Ethernet,
    /// Linux cooked capture, version 1 (DLT 113, 16-byte header).
    LinuxSll,
    /// Linux cooked capture, version 2 (DLT 276, 20-byte header).
    LinuxSll2,
}

impl LinkType {
    /// Maps a `LINKTYPE_*` / DLT number to a supported link type.
    pub fn from_dlt(dlt: u32) -> Option<Self> {
        match dlt {
            1 => Some(Self::Ethernet),
            113 => Some(Self::LinuxSll),
            276 => Some(Self::LinuxSll2),
            _ => None,
        }
    }

    /// The `LINKTYPE_*` / DLT number of this link type.
    pub fn dlt(self) -> u32 {
        match self {
            Self::Ethernet => 1,
            Self::LinuxSll => 113,
            Self::LinuxSll2 => 276,
        }
    }
}

/// One captured packet, borrowing the reader's internal buffer.
#[derive(Debug)]
pub struct Record<'a> {
    /// Capture timestamp in nanoseconds since the Unix epoch.
    pub ts_nanos: u64,
    /// Link-layer type of `data`.
    pub link: LinkType,
    /// Captured bytes (may be shorter than orig_len).
    pub data: &'a [u8],
    /// Length of the packet on the wire, as recorded in the file.
    pub orig_len: u32,
}

/// Errors reported while reading a capture file.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// The underlying reader failed.
    #[error("I/O error while reading capture: {0}")]
    Io(#[from] io::Error),
    /// The file starts with neither a pcap nor a pcapng magic number.
    #[error("not a pcap or pcapng capture file (unrecognised magic bytes {magic:02x?})")]
    NotACapture {
        /// The first four bytes of the file.
        magic: [u8; 4],
    },
    /// The file (or pcapng section) uses a format version this reader does not know.
    #[error("unsupported {format} version {major}.{minor}")]
    UnsupportedVersion {
        /// `"pcap"` or `"pcapng"`.
        format: &'static str,
        /// Major version found in the header.
        major: u16,
        /// Minor version found in the header.
        minor: u16,
    },
    /// Packets use a link type other than Ethernet, SLL or SLL2.
    #[error(
        "unsupported link type {0} (only Ethernet (1) and Linux cooked SLL (113) / SLL2 (276) are supported)"
    )]
    UnsupportedLinkType(u32),
    /// The file ends in the middle of a header or record.
    #[error("file ends inside a {what} at byte {offset}")]
    Truncated {
        /// File offset at which the data ran out.
        offset: u64,
        /// What was being read.
        what: &'static str,
    },
    /// A header or block contains inconsistent or out-of-range values.
    #[error("malformed capture at byte {offset}: {reason}")]
    Malformed {
        /// File offset of the offending record, block or field.
        offset: u64,
        /// Human-readable description of the problem.
        reason: String,
    },
}

/// Streaming reader over a classic pcap or pcapng capture.
///
/// Created with [`PcapReader::new`], which reads and validates the file
/// header; packets are then pulled with [`PcapReader::next_record`].
#[allow(missing_debug_implementations)] // holds a reader of any type
pub struct PcapReader<R: Read> {
    reader: R,
    /// Number of bytes consumed from `reader`, i.e. the current file offset.
    offset: u64,
    /// Reused storage for the data of the current record.
    buf: Vec<u8>,
    format: Format,
    /// Byte order of the file (classic) or of the current section (pcapng).
    order: ByteOrder,
    /// pcapng: interfaces of the current section, indexed by interface id.
    interfaces: Vec<Interface>,
    /// Timestamp of the previous packet, used for Simple Packet Blocks.
    last_ts: u64,
    /// Set after the end of file or an error; only `Ok(None)` follows.
    finished: bool,
}

/// Which container format is being read.
#[derive(Debug, Clone, Copy)]
enum Format {
    Classic { link: LinkType, nanos: bool },
    PcapNg,
}

/// Metadata of the record whose data has just been placed in `buf`.
struct RecordMeta {
    ts_nanos: u64,
    link: LinkType,
    orig_len: u32,
}

/// Fixed fields of a pcapng packet block, decoded before its data is read.
struct PacketHeader {
    /// Bytes of the block consumed before the packet data, including the
    /// 8-byte block header.
    header_len: u32,
    interface_id: u32,
    /// Raw timestamp in interface units; `None` for Simple Packet Blocks.
    raw_ts: Option<u64>,
    caplen: u32,
    orig_len: u32,
}

impl<R: Read> PcapReader<R> {
    /// Reads and validates the file header (classic global header or the
    /// first pcapng Section Header Block).
    pub fn new(reader: R) -> Result<Self, PcapError> {
        let mut this = PcapReader {
            reader,
            offset: 0,
            buf: Vec::new(),
            format: Format::PcapNg,
            order: ByteOrder::Little,
            interfaces: Vec::new(),
            last_ts: 0,
            finished: false,
        };
        let magic: [u8; 4] = this.read_array("file header")?;
        match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => this.read_classic_header(ByteOrder::Little, false)?,
            [0xa1, 0xb2, 0xc3, 0xd4] => this.read_classic_header(ByteOrder::Big, false)?,
            [0x4d, 0x3c, 0xb2, 0xa1] => this.read_classic_header(ByteOrder::Little, true)?,
            [0xa1, 0xb2, 0x3c, 0x4d] => this.read_classic_header(ByteOrder::Big, true)?,
            SHB_MAGIC => this.read_section_header(0)?,
            _ => return Err(PcapError::NotACapture { magic }),
        }
        Ok(this)
    }

    /// Next record, Ok(None) at a clean end of file. After an Err, further calls return Ok(None) or the same kind of error; never panic.
    ///
    /// This implementation returns `Ok(None)` for every call after an error
    /// or after the end of file.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, PcapError> {
        if self.finished {
            return Ok(None);
        }
        let next = match self.format {
            Format::Classic { link, nanos } => self.next_classic(link, nanos),
            Format::PcapNg => self.next_pcapng(),
        };
        match next {
            Ok(Some(meta)) => Ok(Some(Record {
                ts_nanos: meta.ts_nanos,
                link: meta.link,
                data: &self.buf,
                orig_len: meta.orig_len,
            })),
            Ok(None) => {
                self.finished = true;
                Ok(None)
            }
            Err(err) => {
                self.finished = true;
                Err(err)
            }
        }
    }

    // ----- classic pcap -------------------------------------------------

    /// Reads the 20 bytes of the classic global header that follow the magic.
    fn read_classic_header(&mut self, order: ByteOrder, nanos: bool) -> Result<(), PcapError> {
        let rest: [u8; 20] = self.read_array("file header")?;
        let mut f = Fields::new(&rest, order);
        let major = f.u16();
        let minor = f.u16();
        let _thiszone = f.u32();
        let _sigfigs = f.u32();
        let _snaplen = f.u32();
        let raw_link = f.u32();
        if major != 2 {
            return Err(PcapError::UnsupportedVersion {
                format: "pcap",
                major,
                minor,
            });
        }
        // The upper bits carry FCS information; the link type is the low 16 bits.
        let dlt = raw_link & 0x0fff_ffff & 0xffff;
        let link = LinkType::from_dlt(dlt).ok_or(PcapError::UnsupportedLinkType(dlt))?;
        self.order = order;
        self.format = Format::Classic { link, nanos };
        Ok(())
    }

    fn next_classic(
        &mut self,
        link: LinkType,
        nanos: bool,
    ) -> Result<Option<RecordMeta>, PcapError> {
        let start = self.offset;
        let Some(header) = self.read_array_or_eof::<16>("packet record header")? else {
            return Ok(None);
        };
        let mut f = Fields::new(&header, self.order);
        let ts_sec = f.u32();
        let ts_frac = f.u32();
        let incl_len = f.u32();
        let orig_len = f.u32();
        check_captured_len(incl_len, start)?;
        self.read_into_buf(incl_len, "packet data")?;

        let frac_nanos = if nanos {
            u64::from(ts_frac)
        } else {
            u64::from(ts_frac).saturating_mul(1_000)
        };
        let ts_nanos = u64::from(ts_sec)
            .saturating_mul(NANOS_PER_SEC)
            .saturating_add(frac_nanos);
        self.last_ts = ts_nanos;
        Ok(Some(RecordMeta {
            ts_nanos,
            link,
            orig_len,
        }))
    }

    // ----- pcapng -------------------------------------------------------

    /// Reads blocks until a packet is found or the file ends cleanly.
    fn next_pcapng(&mut self) -> Result<Option<RecordMeta>, PcapError> {
        loop {
            let start = self.offset;
            let Some(type_bytes) = self.read_array_or_eof::<4>("block header")? else {
                return Ok(None);
            };
            if type_bytes == SHB_MAGIC {
                self.read_section_header(start)?;
                continue;
            }
            let block_type = self.order.u32(type_bytes);
            let total_len = self.order.u32(self.read_array("block header")?);
            match block_type {
                BLOCK_IDB => self.read_interface_block(start, total_len)?,
                BLOCK_EPB => return self.read_enhanced_packet(start, total_len).map(Some),
                BLOCK_SPB => return self.read_simple_packet(start, total_len).map(Some),
                BLOCK_PB => return self.read_obsolete_packet(start, total_len).map(Some),
                _ => {
                    self.check_block_len(start, total_len, 12, "block")?;
                    self.finish_block(start, total_len, 8)?;
                }
            }
        }
    }

    /// Reads a Section Header Block whose 4-byte type at `start` has already
    /// been consumed. Sets the byte order and forgets earlier interfaces.
    fn read_section_header(&mut self, start: u64) -> Result<(), PcapError> {
        const WHAT: &str = "section header block";
        let len_bytes: [u8; 4] = self.read_array(WHAT)?;
        let bom_at = self.offset;
        let bom: [u8; 4] = self.read_array(WHAT)?;
        self.order = match bom {
            [0x4d, 0x3c, 0x2b, 0x1a] => ByteOrder::Little,
            [0x1a, 0x2b, 0x3c, 0x4d] => ByteOrder::Big,
            _ => {
                return Err(PcapError::Malformed {
                    offset: bom_at,
                    reason: format!("unknown byte-order magic {bom:02x?} in section header block"),
                });
            }
        };
        let total_len = self.order.u32(len_bytes);
        self.check_block_len(start, total_len, 28, WHAT)?;
        let rest: [u8; 12] = self.read_array(WHAT)?;
        let mut f = Fields::new(&rest, self.order);
        let major = f.u16();
        let minor = f.u16();
        let _section_len = f.i64();
        if major != 1 {
            return Err(PcapError::UnsupportedVersion {
                format: "pcapng",
                major,
                minor,
            });
        }
        self.interfaces.clear();
        self.finish_block(start, total_len, 24)
    }

    fn read_interface_block(&mut self, start: u64, total_len: u32) -> Result<(), PcapError> {
        const WHAT: &str = "interface description block";
        self.check_block_len(start, total_len, 20, WHAT)?;
        if total_len > MAX_INTERFACE_BLOCK_LEN {
            return Err(PcapError::Malformed {
                offset: start,
                reason: format!(
                    "interface description block of {total_len} bytes exceeds the limit of {MAX_INTERFACE_BLOCK_LEN}"
                ),
            });
        }
        if self.interfaces.len() >= MAX_INTERFACES {
            return Err(PcapError::Malformed {
                offset: start,
                reason: format!("more than {MAX_INTERFACES} interfaces in one section"),
            });
        }
        let body_len = total_len - 12;
        self.read_into_buf(body_len, WHAT)?;
        let interface =
            parse_interface(self.order, &self.buf).map_err(|reason| PcapError::Malformed {
                offset: start,
                reason,
            })?;
        self.interfaces.push(interface);
        self.finish_block(start, total_len, 8 + u64::from(body_len))
    }

    fn read_enhanced_packet(
        &mut self,
        start: u64,
        total_len: u32,
    ) -> Result<RecordMeta, PcapError> {
        const WHAT: &str = "enhanced packet block";
        self.check_block_len(start, total_len, 32, WHAT)?;
        let fixed: [u8; 20] = self.read_array(WHAT)?;
        let mut f = Fields::new(&fixed, self.order);
        let interface_id = f.u32();
        let ts_high = f.u32();
        let ts_low = f.u32();
        let caplen = f.u32();
        let orig_len = f.u32();
        let header = PacketHeader {
            header_len: 28,
            interface_id,
            raw_ts: Some((u64::from(ts_high) << 32) | u64::from(ts_low)),
            caplen,
            orig_len,
        };
        self.read_packet_body(start, total_len, header, WHAT)
    }

    fn read_obsolete_packet(
        &mut self,
        start: u64,
        total_len: u32,
    ) -> Result<RecordMeta, PcapError> {
        const WHAT: &str = "packet block";
        self.check_block_len(start, total_len, 32, WHAT)?;
        let fixed: [u8; 20] = self.read_array(WHAT)?;
        let mut f = Fields::new(&fixed, self.order);
        let interface_id = f.u16();
        let _drops = f.u16();
        let ts_high = f.u32();
        let ts_low = f.u32();
        let caplen = f.u32();
        let orig_len = f.u32();
        let header = PacketHeader {
            header_len: 28,
            interface_id: u32::from(interface_id),
            raw_ts: Some((u64::from(ts_high) << 32) | u64::from(ts_low)),
            caplen,
            orig_len,
        };
        self.read_packet_body(start, total_len, header, WHAT)
    }

    fn read_simple_packet(&mut self, start: u64, total_len: u32) -> Result<RecordMeta, PcapError> {
        const WHAT: &str = "simple packet block";
        self.check_block_len(start, total_len, 16, WHAT)?;
        let orig_len = self.order.u32(self.read_array(WHAT)?);
        let interface = self.interface(start, 0)?;
        // The captured length is implied: the smaller of the original length,
        // the room in the block and the interface's snap length.
        let mut caplen = orig_len.min(total_len - 16);
        if interface.snaplen != 0 {
            caplen = caplen.min(interface.snaplen);
        }
        let header = PacketHeader {
            header_len: 12,
            interface_id: 0,
            raw_ts: None,
            caplen,
            orig_len,
        };
        self.read_packet_body(start, total_len, header, WHAT)
    }

    /// Validates a packet block's interface and lengths, reads its data into
    /// `buf` and consumes the rest of the block.
    fn read_packet_body(
        &mut self,
        start: u64,
        total_len: u32,
        header: PacketHeader,
        what: &'static str,
    ) -> Result<RecordMeta, PcapError> {
        let interface = self.interface(start, header.interface_id)?;
        let dlt = u32::from(interface.link);
        let link = LinkType::from_dlt(dlt).ok_or(PcapError::UnsupportedLinkType(dlt))?;
        check_captured_len(header.caplen, start)?;
        let needed =
            u64::from(header.header_len) + u64::from(header.caplen).next_multiple_of(4) + 4;
        if needed > u64::from(total_len) {
            return Err(PcapError::Malformed {
                offset: start,
                reason: format!(
                    "captured length {} does not fit in {what} of total length {total_len}",
                    header.caplen
                ),
            });
        }
        self.read_into_buf(header.caplen, what)?;
        self.finish_block(
            start,
            total_len,
            u64::from(header.header_len) + u64::from(header.caplen),
        )?;
        let ts_nanos = match header.raw_ts {
            Some(raw) => interface.timestamp_nanos(raw),
            None => self.last_ts,
        };
        self.last_ts = ts_nanos;
        Ok(RecordMeta {
            ts_nanos,
            link,
            orig_len: header.orig_len,
        })
    }

    /// The interface with id `id` in the current section.
    fn interface(&self, block_start: u64, id: u32) -> Result<Interface, PcapError> {
        usize::try_from(id)
            .ok()
            .and_then(|index| self.interfaces.get(index))
            .copied()
            .ok_or_else(|| PcapError::Malformed {
                offset: block_start,
                reason: format!(
                    "packet on interface {id}, but the section describes only {} interface(s)",
                    self.interfaces.len()
                ),
            })
    }

    /// Checks a pcapng block's total length against the general rules and
    /// the minimum size of its type.
    fn check_block_len(
        &self,
        start: u64,
        total_len: u32,
        min: u32,
        what: &str,
    ) -> Result<(), PcapError> {
        if !total_len.is_multiple_of(4) || total_len < min {
            return Err(PcapError::Malformed {
                offset: start,
                reason: format!(
                    "{what} has invalid total length {total_len} (must be a multiple of 4 and at least {min})"
                ),
            });
        }
        Ok(())
    }

    /// Skips the remainder of a block of which `consumed` bytes have been
    /// read, then checks the trailing copy of the total length.
    fn finish_block(&mut self, start: u64, total_len: u32, consumed: u64) -> Result<(), PcapError> {
        let remaining = u64::from(total_len)
            .saturating_sub(4)
            .saturating_sub(consumed);
        self.skip(remaining, "block body")?;
        let trailer_at = self.offset;
        let trailer = self.order.u32(self.read_array("block trailer")?);
        if trailer != total_len {
            return Err(PcapError::Malformed {
                offset: trailer_at,
                reason: format!(
                    "trailing block length {trailer} does not match leading length {total_len} of the block at byte {start}"
                ),
            });
        }
        Ok(())
    }

    // ----- low-level input ----------------------------------------------

    /// Reads exactly `N` bytes, or returns `Ok(None)` if the file ends before
    /// the first of them. Ending part-way is [`PcapError::Truncated`].
    fn read_array_or_eof<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<Option<[u8; N]>, PcapError> {
        let mut bytes = [0u8; N];
        let n = fill(&mut self.reader, &mut bytes)?;
        self.advance(n);
        if n == 0 && N != 0 {
            Ok(None)
        } else if n < N {
            Err(PcapError::Truncated {
                offset: self.offset,
                what,
            })
        } else {
            Ok(Some(bytes))
        }
    }

    /// Reads exactly `N` bytes; any end of file is [`PcapError::Truncated`].
    fn read_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], PcapError> {
        self.read_array_or_eof(what)?.ok_or(PcapError::Truncated {
            offset: self.offset,
            what,
        })
    }

    /// Replaces the contents of `buf` with the next `len` bytes of input.
    /// `len` must already be bounded by the caller.
    fn read_into_buf(&mut self, len: u32, what: &'static str) -> Result<(), PcapError> {
        let len = usize::try_from(len).map_err(|_| PcapError::Malformed {
            offset: self.offset,
            reason: format!("length {len} does not fit in memory"),
        })?;
        self.buf.clear();
        self.buf.resize(len, 0);
        let n = fill(&mut self.reader, &mut self.buf)?;
        self.advance(n);
        if n < len {
            self.buf.truncate(n);
            return Err(PcapError::Truncated {
                offset: self.offset,
                what,
            });
        }
        Ok(())
    }

    /// Discards the next `len` bytes of input without buffering them.
    fn skip(&mut self, len: u64, what: &'static str) -> Result<(), PcapError> {
        let skipped = io::copy(&mut (&mut self.reader).take(len), &mut io::sink())?;
        self.offset = self.offset.saturating_add(skipped);
        if skipped < len {
            return Err(PcapError::Truncated {
                offset: self.offset,
                what,
            });
        }
        Ok(())
    }

    fn advance(&mut self, n: usize) {
        self.offset = self
            .offset
            .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
    }
}

/// For a Linux cooked (SLL or SLL2) record: the ethertype (protocol field) and the bytes after the cooked header. None if too short.
///
/// Also `None` for [`LinkType::Ethernet`], which has no cooked header.
pub fn sll_payload(link: LinkType, data: &[u8]) -> Option<(u16, &[u8])> {
    match link {
        LinkType::Ethernet => None,
        LinkType::LinuxSll => {
            // packet type, ARPHRD type, address length, 8 address bytes, protocol.
            let (header, rest) = data.split_first_chunk::<16>()?;
            Some((u16::from_be_bytes([header[14], header[15]]), rest))
        }
        LinkType::LinuxSll2 => {
            // protocol, reserved, interface index, ARPHRD type, packet type,
            // address length, 8 address bytes.
            let (header, rest) = data.split_first_chunk::<20>()?;
            Some((u16::from_be_bytes([header[0], header[1]]), rest))
        }
    }
}

/// Rejects captured lengths above [`MAX_CAPTURED_LEN`].
fn check_captured_len(len: u32, record_start: u64) -> Result<(), PcapError> {
    if len > MAX_CAPTURED_LEN {
        return Err(PcapError::Malformed {
            offset: record_start,
            reason: format!("captured length {len} exceeds the limit of {MAX_CAPTURED_LEN} bytes"),
        });
    }
    Ok(())
}

/// Reads into `dst` until it is full or the reader reports end of file.
/// Returns the number of bytes read.
fn fill<R: Read>(reader: &mut R, dst: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = dst.get_mut(filled..) {
        if rest.is_empty() {
            break;
        }
        match reader.read(rest) {
            Ok(0) => break,
            // `min` guards against readers that over-report.
            Ok(n) => filled = filled.saturating_add(n).min(dst.len()),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

/// Decodes the body of an Interface Description Block (everything between
/// the block length fields).
fn parse_interface(order: ByteOrder, body: &[u8]) -> Result<Interface, String> {
    let Some((fixed, mut options)) = body.split_first_chunk::<8>() else {
        return Err("interface description block is too short".to_owned());
    };
    let mut f = Fields::new(fixed, order);
    let link = f.u16();
    let _reserved = f.u16();
    let snaplen = f.u32();
    let mut interface = Interface {
        link,
        snaplen,
        resolution: TsResolution::PowerOfTen(6),
        offset_secs: 0,
    };

    while let Some((option_header, rest)) = options.split_first_chunk::<4>() {
        let mut f = Fields::new(option_header, order);
        let code = f.u16();
        let len = usize::from(f.u16());
        if code == OPT_END_OF_OPTIONS {
            break;
        }
        let Some(value) = rest.get(..len) else {
            return Err(format!(
                "option {code} of length {len} runs past the end of the interface description block"
            ));
        };
        match code {
            OPT_IF_TSRESOL => {
                if let Some(&v) = value.first() {
                    interface.resolution = TsResolution::from_option(v);
                }
            }
            OPT_IF_TSOFFSET => {
                if let Some(bytes) = value.first_chunk::<8>() {
                    interface.offset_secs = Fields::new(bytes, order).i64();
                }
            }
            _ => {}
        }
        // Values are padded to 32 bits; tolerate missing padding at the end.
        options = rest.get(len.next_multiple_of(4)..).unwrap_or(&[]);
    }
    Ok(interface)
}

/// A pcapng interface as described by its Interface Description Block.
#[derive(Debug, Clone, Copy)]
struct Interface {
    /// Raw link type number; checked when a packet uses the interface.
    link: u16,
    snaplen: u32,
    resolution: TsResolution,
    /// `if_tsoffset`: seconds added to every timestamp.
    offset_secs: i64,
}

impl Interface {
    /// Converts a raw timestamp in interface units to nanoseconds since the
    /// epoch, saturating at `0` and `u64::MAX`.
    fn timestamp_nanos(&self, raw: u64) -> u64 {
        let nanos = i128::try_from(self.resolution.to_nanos(raw)).unwrap_or(i128::MAX);
        let offset = i128::from(self.offset_secs).saturating_mul(i128::from(NANOS_PER_SEC));
        u64::try_from(nanos.saturating_add(offset).max(0)).unwrap_or(u64::MAX)
    }
}

/// Timestamp unit of a pcapng interface (`if_tsresol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TsResolution {
    /// Units of 10^-n seconds.
    PowerOfTen(u8),
    /// Units of 2^-n seconds.
    PowerOfTwo(u8),
}

impl TsResolution {
    fn from_option(value: u8) -> Self {
        if value & 0x80 == 0 {
            Self::PowerOfTen(value)
        } else {
            Self::PowerOfTwo(value & 0x7f)
        }
    }

    /// Converts `ticks` to nanoseconds without overflow (the result of a
    /// 64-bit tick count times 10^9 fits comfortably in a `u128`).
    fn to_nanos(self, ticks: u64) -> u128 {
        let ticks = u128::from(ticks);
        match self {
            Self::PowerOfTen(exp) if exp <= 9 => ticks * 10u128.pow(u32::from(9 - exp)),
            Self::PowerOfTen(exp) => match 10u128.checked_pow(u32::from(exp - 9)) {
                Some(divisor) => ticks / divisor,
                None => 0,
            },
            Self::PowerOfTwo(exp) => (ticks * u128::from(NANOS_PER_SEC))
                .checked_shr(u32::from(exp))
                .unwrap_or(0),
        }
    }
}

/// Byte order of a file or pcapng section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    fn u16(self, bytes: [u8; 2]) -> u16 {
        match self {
            Self::Little => u16::from_le_bytes(bytes),
            Self::Big => u16::from_be_bytes(bytes),
        }
    }

    fn u32(self, bytes: [u8; 4]) -> u32 {
        match self {
            Self::Little => u32::from_le_bytes(bytes),
            Self::Big => u32::from_be_bytes(bytes),
        }
    }

    fn i64(self, bytes: [u8; 8]) -> i64 {
        match self {
            Self::Little => i64::from_le_bytes(bytes),
            Self::Big => i64::from_be_bytes(bytes),
        }
    }
}

/// Sequential decoder for fixed-size header fields.
///
/// Callers only decode buffers whose size they have already checked; reading
/// past the end yields zeroes rather than panicking.
struct Fields<'a> {
    rest: &'a [u8],
    order: ByteOrder,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8], order: ByteOrder) -> Self {
        Fields { rest: bytes, order }
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        match self.rest.split_first_chunk::<N>() {
            Some((head, tail)) => {
                self.rest = tail;
                *head
            }
            None => {
                self.rest = &[];
                [0; N]
            }
        }
    }

    fn u16(&mut self) -> u16 {
        self.order.u16(self.take())
    }

    fn u32(&mut self) -> u32 {
        self.order.u32(self.take())
    }

    fn i64(&mut self) -> i64 {
        self.order.i64(self.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ----- fixture builders ---------------------------------------------

    fn put16(out: &mut Vec<u8>, le: bool, v: u16) {
        out.extend_from_slice(&if le { v.to_le_bytes() } else { v.to_be_bytes() });
    }

    fn put32(out: &mut Vec<u8>, le: bool, v: u32) {
        out.extend_from_slice(&if le { v.to_le_bytes() } else { v.to_be_bytes() });
    }

    fn put64(out: &mut Vec<u8>, le: bool, v: u64) {
        out.extend_from_slice(&if le { v.to_le_bytes() } else { v.to_be_bytes() });
    }

    fn classic_header(le: bool, nanos: bool, link: u32) -> Vec<u8> {
        let mut out = Vec::new();
        put32(&mut out, le, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
        put16(&mut out, le, 2);
        put16(&mut out, le, 4);
        put32(&mut out, le, 0); // thiszone
        put32(&mut out, le, 0); // sigfigs
        put32(&mut out, le, 65_535); // snaplen
        put32(&mut out, le, link);
        out
    }

    fn classic_record(
        out: &mut Vec<u8>,
        le: bool,
        ts_sec: u32,
        ts_frac: u32,
        data: &[u8],
        orig: u32,
    ) {
        put32(out, le, ts_sec);
        put32(out, le, ts_frac);
        put32(out, le, u32::try_from(data.len()).unwrap());
        put32(out, le, orig);
        out.extend_from_slice(data);
    }

    /// A pcapng block with correct padding and length fields.
    fn block(le: bool, block_type: u32, body: &[u8]) -> Vec<u8> {
        let padded = body.len().next_multiple_of(4);
        let total = u32::try_from(12 + padded).unwrap();
        let mut out = Vec::new();
        put32(&mut out, le, block_type);
        put32(&mut out, le, total);
        out.extend_from_slice(body);
        out.resize(8 + padded, 0);
        put32(&mut out, le, total);
        out
    }

    fn shb(le: bool) -> Vec<u8> {
        let mut body = Vec::new();
        put32(&mut body, le, 0x1a2b_3c4d);
        put16(&mut body, le, 1);
        put16(&mut body, le, 0);
        put64(&mut body, le, u64::MAX); // section length unknown
        block(le, 0x0a0d_0d0a, &body)
    }

    fn idb(le: bool, link: u16, snaplen: u32, options: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        put16(&mut body, le, link);
        put16(&mut body, le, 0);
        put32(&mut body, le, snaplen);
        for (code, value) in options {
            put16(&mut body, le, *code);
            put16(&mut body, le, u16::try_from(value.len()).unwrap());
            body.extend_from_slice(value);
            body.resize(body.len().next_multiple_of(4), 0);
        }
        if !options.is_empty() {
            put32(&mut body, le, 0); // opt_endofopt
        }
        block(le, BLOCK_IDB, &body)
    }

    fn epb(le: bool, interface: u32, ts: u64, data: &[u8], orig: u32) -> Vec<u8> {
        let mut body = Vec::new();
        put32(&mut body, le, interface);
        put32(&mut body, le, (ts >> 32) as u32);
        put32(&mut body, le, ts as u32);
        put32(&mut body, le, u32::try_from(data.len()).unwrap());
        put32(&mut body, le, orig);
        body.extend_from_slice(data);
        block(le, BLOCK_EPB, &body)
    }

    fn spb(le: bool, orig: u32, data: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        put32(&mut body, le, orig);
        body.extend_from_slice(data);
        block(le, BLOCK_SPB, &body)
    }

    #[derive(Debug, PartialEq)]
    struct Owned {
        ts: u64,
        link: LinkType,
        data: Vec<u8>,
        orig: u32,
    }

    /// Reads a whole capture: the records before the first error, and the error.
    fn collect(bytes: &[u8]) -> (Vec<Owned>, Option<PcapError>) {
        let mut reader = match PcapReader::new(bytes) {
            Ok(reader) => reader,
            Err(err) => return (Vec::new(), Some(err)),
        };
        let mut records = Vec::new();
        loop {
            match reader.next_record() {
                Ok(Some(r)) => records.push(Owned {
                    ts: r.ts_nanos,
                    link: r.link,
                    data: r.data.to_vec(),
                    orig: r.orig_len,
                }),
                Ok(None) => {
                    assert!(matches!(reader.next_record(), Ok(None)));
                    return (records, None);
                }
                Err(err) => {
                    assert!(matches!(reader.next_record(), Ok(None)));
                    return (records, Some(err));
                }
            }
        }
    }

    fn ng_file(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    // ----- classic pcap -------------------------------------------------

    #[test]
    fn classic_little_endian_microseconds() {
        let mut file = classic_header(true, false, 1);
        classic_record(&mut file, true, 1_700_000_000, 123_456, &[1, 2, 3, 4], 4);
        classic_record(&mut file, true, 1_700_000_001, 999_999, &[5, 6], 1500);
        let (records, err) = collect(&file);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(
            records,
            vec![
                Owned {
                    ts: 1_700_000_000_123_456_000,
                    link: LinkType::Ethernet,
                    data: vec![1, 2, 3, 4],
                    orig: 4
                },
                Owned {
                    ts: 1_700_000_001_999_999_000,
                    link: LinkType::Ethernet,
                    data: vec![5, 6],
                    orig: 1500
                },
            ]
        );
    }

    #[test]
    fn classic_big_endian_nanoseconds() {
        let mut file = classic_header(false, true, 113);
        classic_record(&mut file, false, 10, 123_456_789, &[9; 20], 20);
        let (records, err) = collect(&file);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].ts, 10_123_456_789);
        assert_eq!(records[0].link, LinkType::LinuxSll);
        assert_eq!(records[0].data, vec![9; 20]);
    }

    #[test]
    fn classic_link_type_fcs_bits_are_masked() {
        // FCS present flag (bit 28) and FCS length in the upper bits.
        let file = classic_header(true, false, 0x1000_0000 | 0x2000_0000 | 276);
        let (records, err) = collect(&file);
        assert!(err.is_none(), "{err:?}");
        assert!(records.is_empty());
        let reader = PcapReader::new(&file[..]).unwrap();
        assert!(matches!(
            reader.format,
            Format::Classic {
                link: LinkType::LinuxSll2,
                ..
            }
        ));
    }

    #[test]
    fn classic_header_only_is_empty_capture() {
        let file = classic_header(false, false, 1);
        let (records, err) = collect(&file);
        assert!(records.is_empty());
        assert!(err.is_none());
    }

    #[test]
    fn truncated_in_record_header() {
        let mut file = classic_header(true, false, 1);
        classic_record(&mut file, true, 1, 2, &[1, 2, 3], 3);
        file.extend_from_slice(&[0; 10]);
        let (records, err) = collect(&file);
        assert_eq!(records.len(), 1);
        match err {
            Some(PcapError::Truncated { offset, what }) => {
                assert_eq!(offset, 24 + 19 + 10);
                assert_eq!(what, "packet record header");
            }
            other => panic!("unexpected {other:?}"),
        }
        let msg = collect(&file).1.unwrap().to_string();
        assert_eq!(msg, "file ends inside a packet record header at byte 53");
    }

    #[test]
    fn truncated_in_record_data() {
        let mut file = classic_header(true, false, 1);
        classic_record(&mut file, true, 1, 2, &[1, 2, 3, 4, 5, 6], 6);
        file.truncate(file.len() - 2);
        let (records, err) = collect(&file);
        assert!(records.is_empty());
        assert!(
            matches!(
                err,
                Some(PcapError::Truncated {
                    offset: 44,
                    what: "packet data"
                })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn truncated_file_header() {
        let file = classic_header(true, false, 1);
        assert!(matches!(
            PcapReader::new(&file[..10]),
            Err(PcapError::Truncated { offset: 10, .. })
        ));
        assert!(matches!(
            PcapReader::new(&[][..]),
            Err(PcapError::Truncated { offset: 0, .. })
        ));
    }

    #[test]
    fn bad_magic() {
        let mut file = classic_header(true, false, 1);
        file[0] = 0x00;
        let err = PcapReader::new(&file[..]).err().unwrap();
        assert!(matches!(err, PcapError::NotACapture { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("not a pcap or pcapng capture file")
        );
    }

    #[test]
    fn unsupported_version() {
        let mut file = classic_header(true, false, 1);
        file[4] = 3;
        assert!(matches!(
            PcapReader::new(&file[..]),
            Err(PcapError::UnsupportedVersion {
                format: "pcap",
                major: 3,
                minor: 4
            })
        ));
    }

    #[test]
    fn classic_unsupported_link_type() {
        let file = classic_header(true, false, 105);
        let err = PcapReader::new(&file[..]).err().unwrap();
        assert!(matches!(err, PcapError::UnsupportedLinkType(105)));
        assert_eq!(
            err.to_string(),
            "unsupported link type 105 (only Ethernet (1) and Linux cooked SLL (113) / SLL2 (276) are supported)"
        );
    }

    #[test]
    fn classic_huge_caplen_is_malformed_without_allocating() {
        let mut file = classic_header(true, false, 1);
        put32(&mut file, true, 0);
        put32(&mut file, true, 0);
        put32(&mut file, true, 0xffff_fff0);
        put32(&mut file, true, 0xffff_fff0);
        let mut reader = PcapReader::new(&file[..]).unwrap();
        let err = reader.next_record().unwrap_err();
        assert!(
            matches!(err, PcapError::Malformed { offset: 24, .. }),
            "{err:?}"
        );
        assert_eq!(reader.buf.capacity(), 0);
        assert!(reader.next_record().unwrap().is_none());
    }

    #[test]
    fn max_captured_len_is_accepted() {
        let mut file = classic_header(true, false, 1);
        let data = vec![0xab; MAX_CAPTURED_LEN as usize];
        classic_record(&mut file, true, 0, 0, &data, MAX_CAPTURED_LEN);
        let (records, err) = collect(&file);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(records[0].data.len(), MAX_CAPTURED_LEN as usize);
    }

    #[test]
    fn buffer_is_reused_between_records() {
        let mut file = classic_header(true, false, 1);
        for i in 0..50u32 {
            let len = if i == 0 {
                1500
            } else {
                (i * 29) as usize % 1500
            };
            classic_record(&mut file, true, i, 0, &vec![0; len], 1500);
        }
        let mut reader = PcapReader::new(&file[..]).unwrap();
        reader.next_record().unwrap().unwrap();
        let capacity = reader.buf.capacity();
        let ptr = reader.buf.as_ptr();
        let mut count = 1;
        while reader.next_record().unwrap().is_some() {
            count += 1;
        }
        assert_eq!(count, 50);
        assert_eq!(reader.buf.capacity(), capacity);
        assert_eq!(reader.buf.as_ptr(), ptr);
    }

    // ----- pcapng ---------------------------------------------------------

    #[test]
    fn pcapng_two_interfaces_with_tsresol() {
        let ns: &[u8] = &[9];
        let file = ng_file(&[
            shb(true),
            idb(true, 1, 0, &[]),
            idb(true, 276, 262_144, &[(OPT_IF_TSRESOL, ns)]),
            epb(true, 0, 1_700_000_000_000_001, &[1, 2, 3], 60),
            epb(true, 1, 1_700_000_000_000_000_007, &[4, 5, 6, 7, 8], 5),
        ]);
        let (records, err) = collect(&file);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(
            records,
            vec![
                Owned {
                    ts: 1_700_000_000_000_001_000,
                    link: LinkType::Ethernet,
                    data: vec![1, 2, 3],
                    orig: 60
                },
                Owned {
                    ts: 1_700_000_000_000_000_007,
                    link: LinkType::LinuxSll2,
                    data: vec![4, 5, 6, 7, 8],
                    orig: 5
                },
            ]
        );
    }

    #[test]
    fn pcapng_big_endian_binary_resolution_and_offset() {
        let binary: &[u8] = &[0x80 | 10]; // 1/1024 s
        let offset = 100i64.to_be_bytes();
        let file = ng_file(&[
            shb(false),
            idb(
                false,
                113,
                0,
                &[
                    (2, b"eth0"),
                    (OPT_IF_TSRESOL, binary),
                    (OPT_IF_TSOFFSET, &offset),
                ],
            ),
            epb(false, 0, 1024 * 5 + 512, &[0xaa; 16], 16),
        ]);
        let (records, err) = collect(&file);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].ts, 105_500_000_000);
        assert_eq!(records[0].link, LinkType::LinuxSll);
    }

    #[test]
    fn pcapng_timestamps_saturate() {
        let seconds: &[u8] = &[0];
        let pico: &[u8] = &[12];
        let tiny: &[u8] = &[127];
        let negative = (-1_000i64).to_le_bytes();
        let file = ng_file(&[
            shb(true),
            idb(true, 1, 0, &[(OPT_IF_TSRESOL, seconds)]),
            idb(true, 1, 0, &[(OPT_IF_TSRESOL, pico)]),
            idb(true, 1, 0, &[(OPT_IF_TSRESOL, tiny)]),
            idb(true, 1, 0, &[(OPT_IF_TSOFFSET, &negative)]),
            epb(true, 0, u64::MAX, &[], 0),
            epb(true, 1, 5_000, &[], 0),
            epb(true, 2, u64::MAX, &[], 0),
            epb(true, 3, 1, &[], 0),
        ]);
        let (records, err) = collect(&file);
        assert!(err.is_none(), "{err:?}");
        let ts: Vec<u64> = records.iter().map(|r| r.ts).collect();
        assert_eq!(ts, vec![u64::MAX, 5, 0, 0]);
    }

    #[test]
    fn pcapng_simple_packet_block_uses_last_timestamp() {
        let file = ng_file(&[
            shb(true),
            idb(true, 1, 4, &[]),
            spb(true, 3, &[7, 7, 7]),
            epb(true, 0, 42, &[1], 1),
            spb(true, 10, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
        ]);
        let (records, err) = collect(&file);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].ts, 0);
        assert_eq!(records[0].data, vec![7, 7, 7]);
        assert_eq!(records[1].ts, 42_000);
        assert_eq!(records[2].ts, 42_000);
        // Limited by the interface snap length.
        assert_eq!(records[2].data, vec![1, 2, 3, 4]);
        assert_eq!(records[2].orig, 10);
    }

    #[test]
    fn pcapng_obsolete_packet_block() {
        let mut body = Vec::new();
        put16(&mut body, true, 0); // interface
        put16(&mut body, true, 0); // drops
        put32(&mut body, true, 0);
        put32(&mut body, true, 77);
        put32(&mut body, true, 2);
        put32(&mut body, true, 2);
        body.extend_from_slice(&[0xde, 0xad]);
        let file = ng_file(&[
            shb(true),
            idb(true, 1, 0, &[]),
            block(true, BLOCK_PB, &body),
        ]);
        let (records, err) = collect(&file);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(records[0].ts, 77_000);
        assert_eq!(records[0].data, vec![0xde, 0xad]);
    }

    #[test]
    fn pcapng_unknown_blocks_are_skipped() {
        let file = ng_file(&[
            shb(true),
            block(true, 4, &[1, 2, 3, 4, 0, 0, 0, 0]), // name resolution
            idb(true, 1, 0, &[]),
            block(true, 0x0000_0bad, &[0xff; 33]), // custom
            block(true, 5, &[0; 20]),              // interface statistics
            epb(true, 0, 1, &[1, 2, 3], 3),
            block(true, 0x0000_000a, &[0; 8]), // decryption secrets
        ]);
        let (records, err) = collect(&file);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].data, vec![1, 2, 3]);
    }

    #[test]
    fn pcapng_new_section_resets_interfaces_and_byte_order() {
        let file = ng_file(&[
            shb(true),
            idb(true, 1, 0, &[]),
            idb(true, 1, 0, &[]),
            epb(true, 1, 1, &[1], 1),
            shb(false),
            idb(false, 113, 0, &[]),
            epb(false, 0, 2, &[2], 1),
            epb(false, 1, 3, &[3], 1),
        ]);
        let (records, err) = collect(&file);
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].link, LinkType::LinuxSll);
        assert_eq!(records[1].ts, 2_000);
        match err {
            Some(PcapError::Malformed { reason, .. }) => {
                assert!(reason.contains("interface 1"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn pcapng_undescribed_interface_is_malformed() {
        let file = ng_file(&[shb(true), epb(true, 0, 1, &[1], 1)]);
        let (records, err) = collect(&file);
        assert!(records.is_empty());
        let offset = shb(true).len() as u64;
        assert!(
            matches!(err, Some(PcapError::Malformed { offset: o, .. }) if o == offset),
            "{err:?}"
        );
    }

    #[test]
    fn pcapng_unsupported_link_type_reported_per_packet() {
        let file = ng_file(&[
            shb(true),
            idb(true, 1, 0, &[]),
            idb(true, 105, 0, &[]),
            epb(true, 0, 1, &[1], 1),
            epb(true, 1, 2, &[2], 1),
        ]);
        let (records, err) = collect(&file);
        assert_eq!(records.len(), 1);
        assert!(
            matches!(err, Some(PcapError::UnsupportedLinkType(105))),
            "{err:?}"
        );
    }

    #[test]
    fn pcapng_block_length_mismatch() {
        let mut bad_trailer = epb(true, 0, 1, &[1, 2, 3, 4], 4);
        let n = bad_trailer.len();
        bad_trailer[n - 4] = 0x40;
        let file = ng_file(&[shb(true), idb(true, 1, 0, &[]), bad_trailer]);
        let (records, err) = collect(&file);
        assert!(records.is_empty());
        match err {
            Some(PcapError::Malformed { offset, reason }) => {
                assert_eq!(offset, file.len() as u64 - 4);
                assert!(reason.contains("does not match"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn pcapng_invalid_block_lengths() {
        for total in [13u32, 8, 0, 30] {
            let mut unknown = block(true, 0x99, &[0; 16]);
            unknown[4..8].copy_from_slice(&total.to_le_bytes());
            let file = ng_file(&[shb(true), unknown]);
            let (_, err) = collect(&file);
            assert!(
                matches!(err, Some(PcapError::Malformed { .. })),
                "total {total}: {err:?}"
            );
        }
        // An EPB shorter than its fixed fields.
        let short = block(true, BLOCK_EPB, &[0; 8]);
        let (_, err) = collect(&ng_file(&[shb(true), idb(true, 1, 0, &[]), short]));
        assert!(matches!(err, Some(PcapError::Malformed { .. })), "{err:?}");
    }

    #[test]
    fn pcapng_huge_caplen_is_malformed_without_allocating() {
        let mut body = Vec::new();
        put32(&mut body, true, 0);
        put32(&mut body, true, 0);
        put32(&mut body, true, 0);
        put32(&mut body, true, 0xffff_ffff);
        put32(&mut body, true, 0xffff_ffff);
        let file = ng_file(&[
            shb(true),
            idb(true, 1, 0, &[]),
            block(true, BLOCK_EPB, &body),
        ]);
        let mut reader = PcapReader::new(&file[..]).unwrap();
        let err = reader.next_record().unwrap_err();
        assert!(matches!(err, PcapError::Malformed { .. }), "{err:?}");
        assert!(reader.buf.capacity() < 1024);

        // caplen within the limit but larger than the block.
        let mut body = Vec::new();
        put32(&mut body, true, 0);
        put32(&mut body, true, 0);
        put32(&mut body, true, 0);
        put32(&mut body, true, 1000);
        put32(&mut body, true, 1000);
        body.extend_from_slice(&[0; 16]);
        let file = ng_file(&[
            shb(true),
            idb(true, 1, 0, &[]),
            block(true, BLOCK_EPB, &body),
        ]);
        let (_, err) = collect(&file);
        match err {
            Some(PcapError::Malformed { reason, .. }) => assert!(reason.contains("does not fit")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn pcapng_truncated_inside_block() {
        let full = ng_file(&[
            shb(true),
            idb(true, 1, 0, &[]),
            epb(true, 0, 1, &[1; 10], 10),
        ]);
        let epb_start = full.len() - epb(true, 0, 1, &[1; 10], 10).len();
        // Inside the block header.
        let (_, err) = collect(&full[..epb_start + 6]);
        assert!(
            matches!(
                err,
                Some(PcapError::Truncated {
                    what: "block header",
                    ..
                })
            ),
            "{err:?}"
        );
        // Inside the packet data.
        let (_, err) = collect(&full[..epb_start + 30]);
        assert!(
            matches!(err, Some(PcapError::Truncated { offset, what: "enhanced packet block" }) if offset == epb_start as u64 + 30),
            "{err:?}"
        );
        // Missing trailer.
        let (_, err) = collect(&full[..full.len() - 2]);
        assert!(matches!(err, Some(PcapError::Truncated { .. })), "{err:?}");
    }

    #[test]
    fn pcapng_bad_byte_order_magic_and_version() {
        let mut file = shb(true);
        file[8] = 0;
        assert!(matches!(
            PcapReader::new(&file[..]),
            Err(PcapError::Malformed { offset: 8, .. })
        ));
        let mut file = shb(true);
        file[12] = 2;
        assert!(matches!(
            PcapReader::new(&file[..]),
            Err(PcapError::UnsupportedVersion {
                format: "pcapng",
                major: 2,
                ..
            })
        ));
    }

    #[test]
    fn sll_payloads() {
        let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&[0x45, 0x00]);
        assert_eq!(
            sll_payload(LinkType::LinuxSll, &sll),
            Some((0x0800, &[0x45, 0x00][..]))
        );
        assert_eq!(sll_payload(LinkType::LinuxSll, &sll[..15]), None);
        assert_eq!(
            sll_payload(LinkType::LinuxSll, &sll[..16]),
            Some((0x0800, &[][..]))
        );

        let mut sll2 = vec![
            0x86, 0xdd, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
        ];
        sll2.extend_from_slice(&[0x60]);
        assert_eq!(
            sll_payload(LinkType::LinuxSll2, &sll2),
            Some((0x86dd, &[0x60][..]))
        );
        assert_eq!(sll_payload(LinkType::LinuxSll2, &sll2[..19]), None);
        assert_eq!(sll_payload(LinkType::Ethernet, &sll2), None);
    }

    #[test]
    fn link_type_dlt_round_trip() {
        for link in [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2] {
            assert_eq!(LinkType::from_dlt(link.dlt()), Some(link));
        }
        assert_eq!(LinkType::from_dlt(105), None);
    }

    // ----- robustness -----------------------------------------------------

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn seed_files() -> Vec<Vec<u8>> {
        let mut classic_le = classic_header(true, false, 1);
        for i in 0..4u32 {
            classic_record(
                &mut classic_le,
                true,
                i,
                i * 7,
                &vec![i as u8; 10 + i as usize],
                60,
            );
        }
        let mut classic_be = classic_header(false, true, 276);
        for i in 0..3u32 {
            classic_record(
                &mut classic_be,
                false,
                i,
                i,
                &[0x86, 0xdd, 0, 0, 1, 2, 3],
                7,
            );
        }
        let ns: &[u8] = &[9];
        let pcapng = ng_file(&[
            shb(true),
            idb(true, 1, 64, &[(OPT_IF_TSRESOL, ns)]),
            idb(true, 113, 0, &[]),
            epb(true, 0, 5, &[1, 2, 3, 4, 5], 5),
            block(true, 4, &[0; 12]),
            spb(true, 6, &[1, 2, 3, 4, 5, 6]),
            epb(true, 1, 6, &[0; 18], 18),
            shb(false),
            idb(false, 276, 0, &[]),
            epb(false, 0, 7, &[0; 24], 30),
        ]);
        vec![classic_le, classic_be, pcapng]
    }

    /// Drains a reader, checking it terminates and stays finished after an
    /// error. Returns the number of records read and whether an error occurred.
    fn drain(bytes: &[u8]) -> (usize, bool) {
        let Ok(mut reader) = PcapReader::new(bytes) else {
            return (0, true);
        };
        let mut records = 0;
        for _ in 0..bytes.len() + 2 {
            match reader.next_record() {
                Ok(Some(record)) => {
                    assert!(record.data.len() <= MAX_CAPTURED_LEN as usize);
                    let _ = sll_payload(record.link, record.data);
                    records += 1;
                }
                Ok(None) => {
                    assert!(matches!(reader.next_record(), Ok(None)));
                    return (records, false);
                }
                Err(_) => {
                    assert!(matches!(reader.next_record(), Ok(None)));
                    return (records, true);
                }
            }
        }
        panic!("reader did not terminate");
    }

    #[test]
    fn random_and_mutated_inputs_never_panic() {
        let seeds = seed_files();
        for seed in &seeds {
            let (_, err) = collect(seed);
            assert!(err.is_none(), "seed fixture must be valid: {err:?}");
        }
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let interesting = [
            0u32,
            1,
            3,
            12,
            0x7fff_ffff,
            0xffff_ffff,
            0x0004_0000,
            0x0004_0001,
        ];
        let (mut total_records, mut errors) = (0, 0);
        for _ in 0..2000 {
            let mut bytes = seeds[rng.below(seeds.len())].clone();
            match rng.below(5) {
                0 => {
                    let len = rng.below(bytes.len() + 1);
                    bytes.truncate(len);
                }
                1 => {
                    for _ in 0..=rng.below(8) {
                        let i = rng.below(bytes.len());
                        bytes[i] ^= 1 << rng.below(8);
                    }
                }
                2 => {
                    let i = rng.below(bytes.len() / 4) * 4;
                    let v = interesting[rng.below(interesting.len())];
                    let end = (i + 4).min(bytes.len());
                    bytes[i..end].copy_from_slice(&v.to_le_bytes()[..end - i]);
                    let len = bytes.len() - rng.below(8).min(bytes.len());
                    bytes.truncate(len);
                }
                3 => {
                    for _ in 0..=rng.below(4) {
                        let i = rng.below(bytes.len());
                        bytes[i] = rng.next() as u8;
                    }
                    let len = rng.below(bytes.len() + 1);
                    bytes.truncate(len);
                }
                _ => {
                    // Random bytes behind a valid magic number.
                    let keep = rng.below(bytes.len().min(28) + 1);
                    bytes.truncate(keep);
                    for _ in 0..rng.below(200) {
                        bytes.push(rng.next() as u8);
                    }
                }
            }
            let (records, errored) = drain(&bytes);
            total_records += records;
            errors += usize::from(errored);
        }
        // The mutations must exercise both the success and the error paths.
        assert!(total_records > 1000, "{total_records}");
        assert!(errors > 500 && errors < 2000, "{errors}");
    }
}
