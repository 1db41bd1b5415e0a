//! Many datagrams per system call: `recvmmsg` and `sendmmsg` on Linux behind a safe interface, one
//! datagram per call elsewhere.
//!
//! The fleet and the pair each move tens of thousands of datagrams a second over loopback; one
//! system call per datagram was most of their CPU time. A [`RecvBatch`] owns its buffers and reads
//! up to [`BATCH`] datagrams per call; a [`SendBatch`] collects what one pass of a loop produces and
//! hands it to the kernel in one call per [`BATCH`]. The sockets stay the std (non-blocking) sockets
//! the callers already hold.
//!
//! Written on `libc` rather than a crate: `quinn-udp` sends one destination per call (GSO needs
//! equal-sized segments to one address, and the pair answers thousands of different phones), and
//! `nix`'s `sendmmsg` results are read through an iterator that reads addresses the kernel never
//! wrote for a send. The unsafe code is the two calls and the headers that point into buffers this
//! module owns for the length of the call.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;

/// Datagrams per system call.
pub const BATCH: usize = 64;
/// The largest datagram a [`RecvBatch`] keeps (longer ones are cut, as `recv` would cut them).
pub const SLOT: usize = 2048;

/// Buffers for receiving up to [`BATCH`] datagrams in one call.
pub struct RecvBatch {
    bufs: Vec<u8>,
    lens: [usize; BATCH],
    froms: [Option<SocketAddr>; BATCH],
    count: usize,
    /// System calls made.
    pub calls: u64,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch { bufs: vec![0; BATCH * SLOT], lens: [0; BATCH], froms: [None; BATCH], count: 0, calls: 0 }
    }
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch").field("count", &self.count).finish()
    }
}

impl RecvBatch {
    /// Reads what is waiting on `sock` (non-blocking), up to [`BATCH`] datagrams; returns how many
    /// (`WouldBlock` when none).
    pub fn recv(&mut self, sock: &impl AsFd) -> io::Result<usize> {
        self.count = 0;
        self.calls += 1;
        let n = imp::recv(sock, &mut self.bufs, &mut self.lens, &mut self.froms)?;
        self.count = n;
        Ok(n)
    }

    /// The datagrams of the last [`recv`](Self::recv): bytes and sender.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Option<SocketAddr>)> + '_ {
        (0..self.count).map(|i| (&self.bufs[i * SLOT..i * SLOT + self.lens[i].min(SLOT)], self.froms[i]))
    }

    /// Datagram `i` of the last [`recv`](Self::recv).
    pub fn get(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        (&self.bufs[i * SLOT..i * SLOT + self.lens[i].min(SLOT)], self.froms[i])
    }
}

/// Datagrams waiting to be sent together.
#[derive(Debug, Default)]
pub struct SendBatch {
    data: Vec<u8>,
    spans: Vec<(usize, usize, Option<SocketAddr>)>,
    /// System calls made.
    pub calls: u64,
    /// Datagrams the kernel refused (or that found the socket's buffer full).
    pub errors: u64,
}

impl SendBatch {
    /// Queues `bytes` for `to` (`None` on a connected socket).
    pub fn push(&mut self, bytes: &[u8], to: Option<SocketAddr>) {
        let at = self.data.len();
        self.data.extend_from_slice(bytes);
        self.spans.push((at, bytes.len(), to));
    }

    /// How many are queued.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether none is queued.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Drops what is queued.
    pub fn clear(&mut self) {
        self.data.clear();
        self.spans.clear();
    }

    /// Sends everything queued on `sock`, [`BATCH`] per call; a datagram the kernel refuses is
    /// counted in `errors` and skipped. Returns how many went out.
    pub fn flush(&mut self, sock: &impl AsFd) -> usize {
        let mut done = 0;
        let mut sent = 0;
        while done < self.spans.len() {
            let end = (done + BATCH).min(self.spans.len());
            self.calls += 1;
            match imp::send(sock, &self.data, &self.spans[done..end]) {
                Ok(n) if n > 0 => {
                    sent += n;
                    done += n;
                }
                // Nothing went out: the first one is refused (or the buffer is full); skip it.
                _ => {
                    self.errors += 1;
                    done += 1;
                }
            }
        }
        self.data.clear();
        self.spans.clear();
        sent
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod imp {
    use super::{BATCH, SLOT};
    use std::io;
    use std::mem::{size_of, zeroed};
    use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::{AsFd, AsRawFd};

    fn to_std(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
        match i32::from(s.ss_family) {
            libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says it is a sockaddr_in, and the storage is large enough.
                let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                let ip = u32::from_be(a.sin_addr.s_addr);
                Some(SocketAddr::V4(SocketAddrV4::new(ip.into(), u16::from_be(a.sin_port))))
            }
            libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for sockaddr_in6.
                let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    a.sin6_addr.s6_addr.into(),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    fn from_std(a: &SocketAddr, s: &mut libc::sockaddr_storage) -> libc::socklen_t {
        match a {
            SocketAddr::V4(v4) => {
                // SAFETY: sockaddr_storage is large enough and aligned for a sockaddr_in.
                let out = unsafe { &mut *(s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                out.sin_family = libc::AF_INET as libc::sa_family_t;
                out.sin_port = v4.port().to_be();
                out.sin_addr = libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() };
                size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(v6) => {
                // SAFETY: as above, for sockaddr_in6.
                let out = unsafe { &mut *(s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
                out.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                out.sin6_port = v6.port().to_be();
                out.sin6_flowinfo = v6.flowinfo();
                out.sin6_addr = libc::in6_addr { s6_addr: v6.ip().octets() };
                out.sin6_scope_id = v6.scope_id();
                size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }

    pub(super) fn recv(
        sock: &impl AsFd,
        bufs: &mut [u8],
        lens: &mut [usize; BATCH],
        froms: &mut [Option<SocketAddr>; BATCH],
    ) -> io::Result<usize> {
        debug_assert!(bufs.len() >= BATCH * SLOT);
        // SAFETY: plain C structs, all-zero is a valid value.
        let mut names: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for (i, chunk) in bufs.chunks_exact_mut(SLOT).take(BATCH).enumerate() {
            iovs[i] = libc::iovec { iov_base: chunk.as_mut_ptr().cast(), iov_len: SLOT };
        }
        for i in 0..BATCH {
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: every header points at a buffer and an address storage that live (and are not
        // otherwise borrowed) until the call returns; the count is the headers' length.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_fd().as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for i in 0..n {
            lens[i] = hdrs[i].msg_len as usize;
            froms[i] = to_std(&names[i], hdrs[i].msg_hdr.msg_namelen);
        }
        Ok(n)
    }

    pub(super) fn send(
        sock: &impl AsFd,
        data: &[u8],
        spans: &[(usize, usize, Option<SocketAddr>)],
    ) -> io::Result<usize> {
        let count = spans.len().min(BATCH);
        // SAFETY: plain C structs, all-zero is a valid value.
        let mut names: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for (i, &(at, len, to)) in spans.iter().take(count).enumerate() {
            // The kernel only reads through iov_base on a send.
            iovs[i] = libc::iovec { iov_base: data[at..at + len].as_ptr().cast_mut().cast(), iov_len: len };
            let h = &mut hdrs[i].msg_hdr;
            if let Some(to) = to {
                h.msg_namelen = from_std(&to, &mut names[i]);
                h.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            }
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: every header points at bytes of `data` and an address storage that live until
        // the call returns; the count is at most the headers' length.
        let n = unsafe {
            libc::sendmmsg(sock.as_fd().as_raw_fd(), hdrs.as_mut_ptr(), count as libc::c_uint, libc::MSG_DONTWAIT)
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::{BATCH, SLOT};
    use std::io;
    use std::net::{SocketAddr, UdpSocket};
    use std::os::fd::AsFd;

    /// A std handle on the same socket (one `dup` per call: this is the fallback).
    fn std_of(sock: &impl AsFd) -> io::Result<UdpSocket> {
        Ok(UdpSocket::from(sock.as_fd().try_clone_to_owned()?))
    }

    pub(super) fn recv(
        sock: &impl AsFd,
        bufs: &mut [u8],
        lens: &mut [usize; BATCH],
        froms: &mut [Option<SocketAddr>; BATCH],
    ) -> io::Result<usize> {
        let sock = std_of(sock)?;
        let mut n = 0;
        for chunk in bufs.chunks_exact_mut(SLOT).take(BATCH) {
            match sock.recv_from(chunk) {
                Ok((len, from)) => {
                    lens[n] = len;
                    froms[n] = Some(from);
                    n += 1;
                }
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(n)
    }

    pub(super) fn send(
        sock: &impl AsFd,
        data: &[u8],
        spans: &[(usize, usize, Option<SocketAddr>)],
    ) -> io::Result<usize> {
        let sock = std_of(sock)?;
        let mut n = 0;
        for &(at, len, to) in spans.iter().take(BATCH) {
            let r = match to {
                Some(to) => sock.send_to(&data[at..at + len], to),
                None => sock.send(&data[at..at + len]),
            };
            match r {
                Ok(_) => n += 1,
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn a_batch_goes_out_and_comes_back_with_its_senders() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_nonblocking(true).unwrap();
        let mut out = SendBatch::default();
        for i in 0..100u8 {
            out.push(&vec![i; 10 + i as usize], Some(b.local_addr().unwrap()));
        }
        assert_eq!(out.flush(&a), 100);
        assert_eq!(out.calls, 2);
        assert!(out.is_empty());
        let mut got = Vec::new();
        let mut r = RecvBatch::default();
        while let Ok(n) = r.recv(&b) {
            assert!(n > 0);
            for (bytes, from) in r.iter() {
                assert_eq!(from, Some(a.local_addr().unwrap()));
                got.push(bytes.to_vec());
            }
        }
        assert_eq!(got.len(), 100);
        for (i, g) in got.iter().enumerate() {
            assert_eq!(g, &vec![i as u8; 10 + i]);
        }
        assert_eq!(r.recv(&b).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_connected_socket_sends_without_addresses() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.set_nonblocking(true).unwrap();
        let mut out = SendBatch::default();
        out.push(b"one", None);
        out.push(b"two", None);
        assert_eq!(out.flush(&a), 2);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut r = RecvBatch::default();
        assert_eq!(r.recv(&b).unwrap(), 2);
        assert_eq!(r.get(1).0, b"two");
    }
}
