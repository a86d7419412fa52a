//! Opening files strictly beneath a root directory.
//!
//! Request paths are refused earlier if they have dot segments or encoded
//! separators (`streamgate_net::target`); this is the second wall.
//! `openat2(RESOLVE_BENEATH)` makes the kernel refuse any resolution that
//! leaves the root, symlinks and `..` inside symlink targets included, so a
//! symlink planted in an asset cannot expose the rest of the disk.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Identity and validators of one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Device number.
    pub dev: u64,
    /// Inode number: a rename-into-place gives a new one.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds.
    pub mtime_secs: u64,
    /// Modification time, nanoseconds part.
    pub mtime_nanos: u32,
}

impl FileStamp {
    fn from_stat(st: &libc::stat) -> Self {
        Self {
            dev: st.st_dev,
            ino: st.st_ino,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime_secs: u64::try_from(st.st_mtime).unwrap_or(0),
            mtime_nanos: u32::try_from(st.st_mtime_nsec).unwrap_or(0),
        }
    }
}

/// A directory handle that files are resolved beneath.
pub struct Root {
    fd: OwnedFd,
}

impl Root {
    /// Opens the root directory.
    pub fn open(path: &Path) -> io::Result<Self> {
        let cpath = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in root path"))?;
        // SAFETY: `cpath` is a valid C string; the returned fd is owned below.
        let fd = unsafe {
            libc::open(
                cpath.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Opens a regular file at `relative` (no leading `/`) beneath the root.
    /// Anything else (directory, FIFO, device, escape) is `NotFound`.
    pub fn open_file(&self, relative: &str) -> io::Result<(File, FileStamp)> {
        let cpath = c_path(relative)?;
        // SAFETY: open_how is plain data; all-zero is a valid value.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        // O_NONBLOCK: opening a FIFO must not park the worker.
        how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK) as u64;
        how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
        // SAFETY: valid pointers to a C string and an open_how of the given size.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.fd.as_raw_fd(),
                cpath.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd < 0 {
            return Err(not_found_unless_transient(io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor returned by the kernel.
        let file = unsafe { File::from_raw_fd(fd as i32) };
        let stamp = fstat(&file)?;
        Ok((file, stamp))
    }

    /// Stats `relative` beneath the root without opening it; used to
    /// revalidate cached copies (a replaced file has a new stamp).
    pub fn stamp(&self, relative: &str) -> io::Result<FileStamp> {
        let cpath = c_path(relative)?;
        // SAFETY: zeroed `stat` is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd, C string and out pointer.
        let rc = unsafe { libc::fstatat(self.fd.as_raw_fd(), cpath.as_ptr(), &mut st, 0) };
        if rc < 0 {
            return Err(not_found_unless_transient(io::Error::last_os_error()));
        }
        Ok(FileStamp::from_stat(&st))
    }
}

fn fstat(file: &File) -> io::Result<FileStamp> {
    // SAFETY: zeroed `stat` is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and out pointer.
    if unsafe { libc::fstat(file.as_raw_fd(), &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io::ErrorKind::NotFound.into());
    }
    Ok(FileStamp::from_stat(&st))
}

fn c_path(relative: &str) -> io::Result<CString> {
    CString::new(relative).map_err(|_| io::ErrorKind::NotFound.into())
}

/// Resolution failures (missing, escape attempts, wrong type) all look like
/// "not found" to a client; only resource exhaustion stays an error (503).
fn not_found_unless_transient(err: io::Error) -> io::Error {
    match err.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM) => err,
        _ => io::ErrorKind::NotFound.into(),
    }
}
