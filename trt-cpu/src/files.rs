//! The file-system rules every read and write of the workspace follows: writes are atomic and
//! never replace what is not a regular file; reads open regular files only (a FIFO would
//! block, a device never end); external data stays inside its model's folder.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The folder that holds `path`: its parent, or `.` for a bare file name (whose parent is
/// the empty path, which the file system cannot open).
pub fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes `bytes` to a temporary file next to `path` and renames it into place. Temporary
/// names are unique per process and call, so concurrent writers (threads or processes) never
/// share one; the last rename wins with a complete file.
///
/// # Errors
///
/// [`Error::Io`] naming the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |out, tmp| {
        out.write_all(bytes).map_err(|e| Error::io(tmp, e))
    })
}

/// [`write_atomic`] with the content written by `write` (given the buffered temporary file
/// and its path, for errors), for content too large to build in memory first.
///
/// # Errors
///
/// [`Error::Io`] naming the file; `write`'s error (the temporary file is removed).
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut dyn std::io::Write, &Path) -> Result<()>,
) -> Result<()> {
    use std::io::Write;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    replaceable(path)?;
    let dir = folder_of(path);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}-{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let written = std::fs::File::create(&tmp)
        .map_err(|e| Error::io(&tmp, e))
        .and_then(|file| {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            write(&mut out, &tmp)?;
            out.flush().map_err(|e| Error::io(&tmp, e))
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Refuses to replace `path` when it exists and is not a regular file: a symbolic link (which
/// could point anywhere, e.g. `/proc/self/fd/1`), a device, a FIFO, a socket or a directory.
///
/// # Errors
///
/// [`Error::Io`] naming the path and what it is.
pub fn replaceable(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "it is {}, not a regular file; refusing to replace it (nothing was written): choose another path",
                    kind_of(&meta.file_type())
                ),
            ),
        )),
        _ => Ok(()),
    }
}

/// Opens `path` for reading when it is a regular file (after following links): a FIFO would
/// block forever and a device never end.
///
/// # Errors
///
/// [`Error::Io`] naming the path, and what it is when it is not a regular file.
pub fn open_regular(path: &Path) -> Result<std::fs::File> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "it is {}, not a regular file; refusing to read it",
                    kind_of(&meta.file_type())
                ),
            ),
        ));
    }
    std::fs::File::open(path).map_err(|e| Error::io(path, e))
}

/// What a non-regular file is, for messages.
fn kind_of(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The file an external-data `location` names, if it stays inside `dir`: relative, without
/// `..`, and (after following symbolic links) still under `dir` — the rule of ONNX's own
/// checker. Otherwise why not.
pub(crate) fn confined(dir: &Path, location: &str) -> std::result::Result<PathBuf, String> {
    use std::path::Component;
    let rel = Path::new(location);
    if location.is_empty() {
        return Err("which is empty".into());
    }
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err("which is absolute or leaves the folder (`..`)".into());
    }
    let file = dir.join(rel);
    let base = dir
        .canonicalize()
        .map_err(|e| format!("(folder unreadable: {e})"))?;
    match file.canonicalize() {
        Ok(real) if real.starts_with(&base) => Ok(file),
        Ok(real) => Err(format!(
            "which is a link to {} outside the folder",
            real.display()
        )),
        // Missing: reading it reports the file by name.
        Err(_) => Ok(file),
    }
}
