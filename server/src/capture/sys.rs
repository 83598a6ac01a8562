//! The system boundary of capture: the AF_PACKET socket and every libc call made on it. All of
//! the module's `unsafe` code is here, one `// SAFETY:` comment per block.
//!
//! # How a socket is opened
//! 1. We create the socket ourselves: `socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0)`. Protocol
//!    0 means it receives nothing until it is bound, so no frame of another interface can slip
//!    into its queue before the bind (a socket created with `ETH_P_ALL` would capture every
//!    interface until then).
//! 2. We size its receive buffer (`SO_RCVBUFFORCE`, which needs CAP_NET_ADMIN and ignores
//!    `net.core.rmem_max`; else `SO_RCVBUF`, capped by `rmem_max`) and ask for
//!    `PACKET_AUXDATA`. pnet has no setting for either.
//! 3. We hand the descriptor to pnet through `Config.socket_fd`. pnet binds it to the interface
//!    with `ETH_P_ALL`, joins the PACKET_FANOUT group and makes it non-blocking. From then on
//!    pnet owns the descriptor: its receiver closes it when dropped, and `channel()` closes it
//!    itself when it fails. [`PacketSocket`] keeps that receiver, so the descriptor stays open
//!    exactly as long as the [`PacketSocket`].
//!
//! # Why frames are read here and not with pnet's `DataLinkReceiver::next`
//! * VLAN tags: the kernel removes the outer 802.1Q/802.1ad tag from a received frame before
//!   AF_PACKET sees it (`skb_vlan_untag`, or the NIC does it) and reports the tag only in a
//!   `PACKET_AUXDATA` control message. `next()` uses `recvfrom`, so the tag is lost (measured
//!   on a veth here: a frame sent with tag 100 arrives as plain IPv4, the tag only in the
//!   auxdata). Zones by VLAN need `recvmsg`.
//! * Truncation: with `MSG_TRUNC` the kernel returns the frame's real length, so a frame longer
//!   than the snap length is counted instead of silently cut.
//! * Errors: when the interface goes down or disappears the socket reports `ENETDOWN`; `next()`
//!   turns it into "Unexpected poll event", `recvmsg` returns the real errno.
//! * Speed: a non-blocking read comes first and `poll` only when the queue is empty, so under
//!   load a frame costs one system call instead of two.
//!
//! Kernel statistics (`PACKET_STATISTICS`) are read from the same descriptor.

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::ptr;
use std::time::Duration;

use libc::{c_int, socklen_t};
use pnet_datalink::{Channel, DataLinkReceiver, FanoutOption, FanoutType, NetworkInterface};

/// How to open one worker's socket.
#[derive(Clone, Copy, Debug)]
pub(super) struct SocketOptions {
    /// Receive buffer to ask for; 0 keeps the kernel's default.
    pub(super) rcvbuf_bytes: usize,
    /// PACKET_FANOUT group (HASH mode, defragmenting) shared by the interface's workers.
    pub(super) fanout_group: u16,
    /// How long a read waits for a frame when the queue is empty.
    pub(super) read_timeout: Duration,
}

/// The receive buffer a socket got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RcvBuf {
    /// `SO_RCVBUFFORCE` was permitted (else `SO_RCVBUF`, capped by `net.core.rmem_max`).
    pub(super) forced: bool,
    /// `SO_RCVBUF` as the kernel reports it: twice the granted size (it counts its own
    /// bookkeeping), so compare with twice the request.
    pub(super) kernel_bytes: usize,
}

/// One frame read by [`PacketSocket::recv`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Received {
    /// Bytes written to the buffer.
    pub(super) len: usize,
    /// The frame's length on the wire (greater than `len` when the buffer truncated it).
    pub(super) wire_len: usize,
    /// The outer VLAN id the kernel removed from the frame, if it removed one.
    pub(super) vlan: Option<u16>,
}

/// Kernel counters of one socket since the previous read (the kernel resets them on read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct PacketStatistics {
    /// Frames that reached the socket, dropped ones included.
    pub(super) packets: u32,
    /// Frames dropped because the receive buffer was full.
    pub(super) drops: u32,
}

/// Checks that this process may open packet sockets (creates one and closes it).
pub(super) fn check_permission() -> io::Result<()> {
    packet_socket().map(drop)
}

/// A bound AF_PACKET socket in a fanout group, read with `recvmsg`.
pub(super) struct PacketSocket {
    /// The descriptor, owned by `_owner`.
    fd: RawFd,
    /// pnet's receiver: owns `fd` and closes it when dropped. Never read from.
    _owner: Box<dyn DataLinkReceiver>,
    /// `poll` timeout in milliseconds.
    timeout_ms: c_int,
    /// What the receive buffer request gave.
    rcvbuf: RcvBuf,
}

impl std::fmt::Debug for PacketSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketSocket")
            .field("fd", &self.fd)
            .field("timeout_ms", &self.timeout_ms)
            .field("rcvbuf", &self.rcvbuf)
            .finish_non_exhaustive()
    }
}

impl PacketSocket {
    /// Opens a socket on `iface` (see the module documentation for the steps).
    pub(super) fn open(iface: &NetworkInterface, opts: &SocketOptions) -> io::Result<Self> {
        let sock = packet_socket()?;
        let rcvbuf = set_rcvbuf(sock.as_fd(), opts.rcvbuf_bytes)?;
        set_int(sock.as_fd(), libc::SOL_PACKET, libc::PACKET_AUXDATA, 1)?;
        let fd = sock.into_raw_fd();
        let config = pnet_datalink::Config {
            // pnet's own buffers are never used: frames are read with `recv` below.
            read_buffer_size: 0,
            write_buffer_size: 0,
            read_timeout: Some(opts.read_timeout),
            linux_fanout: Some(FanoutOption {
                group_id: opts.fanout_group,
                fanout_type: FanoutType::HASH,
                defrag: true,
                rollover: false,
            }),
            // The node's own traffic (to, from and through it) is what ctrack tracks.
            promiscuous: false,
            // pnet owns `fd` from here on, and closes it itself if `channel` fails.
            socket_fd: Some(fd),
            ..pnet_datalink::Config::default()
        };
        match pnet_datalink::channel(iface, config)? {
            Channel::Ethernet(_sender, receiver) => Ok(Self {
                fd,
                _owner: receiver,
                timeout_ms: c_int::try_from(opts.read_timeout.as_millis()).unwrap_or(c_int::MAX),
                rcvbuf,
            }),
            // Dropping the channel closes `fd`.
            _ => Err(io::Error::other("pnet opened a channel of an unknown type")),
        }
    }

    /// What the receive buffer request gave.
    pub(super) fn rcvbuf(&self) -> RcvBuf {
        self.rcvbuf
    }

    /// Reads one frame into `buf`. With `wait`, an empty queue is waited on for the read
    /// timeout; without, `Ok(None)` comes back at once. `Ok(None)` also means the wait timed
    /// out. An error means the socket is unusable (the interface went down or away, ...).
    pub(super) fn recv(&mut self, buf: &mut [u8], wait: bool) -> io::Result<Option<Received>> {
        let mut polled = false;
        loop {
            match self.recv_now(buf) {
                Ok(frame) => return Ok(Some(frame)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !wait || polled || !self.poll()? {
                        return Ok(None);
                    }
                    polled = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads and resets the kernel's counters of this socket.
    pub(super) fn take_statistics(&self) -> io::Result<PacketStatistics> {
        let mut stats = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut len = size_of_socklen::<libc::tpacket_stats>();
        // SAFETY: `stats` is a live, writable `tpacket_stats` and `len` holds its size, so the
        // kernel writes at most that many bytes; `self.fd()` keeps the descriptor open.
        let rc = unsafe {
            libc::getsockopt(
                self.fd().as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut stats).cast(),
                &raw mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketStatistics {
            packets: stats.tp_packets,
            drops: stats.tp_drops,
        })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: `self._owner` owns the descriptor and closes it only when dropped, which
        // cannot happen while `self` is borrowed; nothing else closes it.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }

    /// Waits for the socket to become readable; `false` on timeout or a signal.
    fn poll(&self) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one live `pollfd` and the count passed is 1.
        let n = unsafe { libc::poll(&raw mut pfd, 1, self.timeout_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        if n == 0 {
            return Ok(false);
        }
        // POLLERR is left to `recvmsg`, which returns the pending error itself.
        if pfd.revents & (libc::POLLIN | libc::POLLERR) == 0 {
            return Err(io::Error::other(format!(
                "packet socket reports poll events {:#x}",
                pfd.revents
            )));
        }
        Ok(true)
    }

    /// One non-blocking `recvmsg`.
    fn recv_now(&mut self, buf: &mut [u8]) -> io::Result<Received> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut control = ControlBuf([0; CONTROL_WORDS]);
        // SAFETY: `msghdr` is plain data (pointers and integers); all zeroes is a valid empty
        // header, which also clears the padding fields some libcs declare.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = mem::size_of::<ControlBuf>() as _;
        // SAFETY: `msg` points to `iov`, which describes `buf` (writable for `buf.len()`
        // bytes), and to `control` (writable for its size); all of them outlive the call, and
        // `self.fd()` keeps the descriptor open.
        let n = unsafe {
            libc::recvmsg(
                self.fd().as_raw_fd(),
                &raw mut msg,
                libc::MSG_TRUNC | libc::MSG_DONTWAIT,
            )
        };
        let Ok(wire_len) = usize::try_from(n) else {
            return Err(io::Error::last_os_error());
        };
        Ok(Received {
            len: wire_len.min(buf.len()),
            wire_len,
            vlan: auxdata_vlan(&msg),
        })
    }
}

/// Room for the `PACKET_AUXDATA` message (16-byte header plus 20 bytes of data) and more.
const CONTROL_WORDS: usize = 16;

/// Control-message buffer, aligned as `cmsghdr` requires.
#[repr(C, align(8))]
struct ControlBuf([u64; CONTROL_WORDS]);

/// The outer VLAN id from the `PACKET_AUXDATA` message `recvmsg` put in `msg`, if any.
fn auxdata_vlan(msg: &libc::msghdr) -> Option<u16> {
    // SAFETY: `msg` was just filled by `recvmsg`: `msg_control` points to our control buffer
    // and `msg_controllen` is the length the kernel wrote, so the walk stays inside it.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !cmsg.is_null() {
        // SAFETY: a non-null result of CMSG_FIRSTHDR/CMSG_NXTHDR points to a whole, aligned
        // `cmsghdr` inside the control buffer.
        let hdr = unsafe { &*cmsg };
        // SAFETY: CMSG_LEN is arithmetic on its argument.
        let min_len = unsafe { libc::CMSG_LEN(size_of_u32::<libc::tpacket_auxdata>()) };
        if hdr.cmsg_level == libc::SOL_PACKET
            && hdr.cmsg_type == libc::PACKET_AUXDATA
            && hdr.cmsg_len as usize >= min_len as usize
        {
            // SAFETY: the length check above shows that a whole `tpacket_auxdata` follows
            // the header inside the buffer; `read_unaligned` needs no alignment, and every bit
            // pattern is a valid value of this all-integer struct.
            let aux: libc::tpacket_auxdata =
                unsafe { ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
            return (aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0)
                .then_some(aux.tp_vlan_tci & 0x0fff);
        }
        // SAFETY: `cmsg` is a header inside the buffer `msg` describes (see above).
        cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
    }
    None
}

/// A new AF_PACKET socket that receives nothing until bound.
fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: `socket` takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by `socket` and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Asks for a receive buffer of `bytes` (0: keep the default): `SO_RCVBUFFORCE` when
/// permitted, else `SO_RCVBUF`.
fn set_rcvbuf(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<RcvBuf> {
    let mut forced = false;
    if bytes > 0 {
        // The kernel doubles the value, so more than INT_MAX / 2 cannot be granted.
        let value = c_int::try_from(bytes)
            .unwrap_or(c_int::MAX)
            .min(c_int::MAX / 2);
        match set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, value) {
            Ok(()) => forced = true,
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, value)?;
            }
            Err(e) => return Err(e),
        }
    }
    let kernel_bytes = get_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF)?;
    Ok(RcvBuf {
        forced,
        kernel_bytes: usize::try_from(kernel_bytes).unwrap_or(0),
    })
}

fn set_int(fd: BorrowedFd<'_>, level: c_int, name: c_int, value: c_int) -> io::Result<()> {
    // SAFETY: the option value points to a live `c_int` and its size is passed; `fd` is open
    // for the duration of the borrow.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of_socklen::<c_int>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn get_int(fd: BorrowedFd<'_>, level: c_int, name: c_int) -> io::Result<c_int> {
    let mut value: c_int = 0;
    let mut len = size_of_socklen::<c_int>();
    // SAFETY: `value` is a live, writable `c_int` and `len` holds its size, so the kernel
    // writes at most that many bytes; `fd` is open for the duration of the borrow.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

fn size_of_socklen<T>() -> socklen_t {
    socklen_t::try_from(mem::size_of::<T>()).unwrap_or(socklen_t::MAX)
}

fn size_of_u32<T>() -> u32 {
    u32::try_from(mem::size_of::<T>()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_buffer_holds_the_auxdata_message() {
        // SAFETY: CMSG_SPACE is arithmetic on its argument.
        let space = unsafe { libc::CMSG_SPACE(size_of_u32::<libc::tpacket_auxdata>()) };
        assert!(space as usize <= mem::size_of::<ControlBuf>());
    }
}
