//! Renames that never replace, and moves across file systems.

use std::ffi::CString;
use std::io;
use std::path::Path;

/// Renames `from` to `to` unless `to` exists (`renameat2` with
/// `RENAME_NOREPLACE`): checking first and renaming after is a race, and a
/// plain `rename(2)` of a directory silently replaces an empty one.
/// `AlreadyExists` when `to` is there.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
    };
    let (from_c, to_c) = (c(from)?, c(to)?);
    // SAFETY: two valid C strings; AT_FDCWD resolves them like rename(2).
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from_c.as_ptr(),
            libc::AT_FDCWD,
            to_c.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Copies the regular files and directories under `from` into `to` (made
/// here), each file synced.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &dest)?;
            std::fs::File::open(&dest)?.sync_all()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sg-rename-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn never_replaces_an_existing_directory() {
        let dir = scratch("dir");
        let (from, to) = (dir.join("staged"), dir.join("asset"));
        std::fs::create_dir(&from).unwrap();
        std::fs::write(from.join("master.m3u8"), b"#EXTM3U\n").unwrap();
        // Another writer got there first with an empty directory: plain
        // rename(2) would replace it.
        std::fs::create_dir(&to).unwrap();
        let err = rename_noreplace(&from, &to).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert!(from.join("master.m3u8").exists(), "the source stays");
        assert!(!to.join("master.m3u8").exists(), "the target is untouched");
        std::fs::remove_dir(&to).unwrap();
        rename_noreplace(&from, &to).unwrap();
        assert!(to.join("master.m3u8").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
