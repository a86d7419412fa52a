//! File helpers of the engine's serving path.

use std::fs::File;
use std::io;

/// Reads a whole file of known size (for the hot cache).
pub fn read_all(file: &File, size: u64) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let len = usize::try_from(size).map_err(|_| io::ErrorKind::OutOfMemory)?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}
