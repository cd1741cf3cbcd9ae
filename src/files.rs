//! Files on disk (native only: the CLI), read within a budget and written without loss.
//!
//! Reading: a path must name a regular file (not a directory, FIFO, device such as
//! `/dev/zero`, or socket) no larger than the budget of what it holds, both checked before a
//! byte is read; then it is read through a reader capped at the budget, so a file that grows
//! meanwhile cannot take more. Images are sniffed from their first bytes before the rest is
//! read.
//!
//! Writing: an output goes to a temporary file beside it, renamed over the destination only
//! once complete, so a failed write leaves the previous file as it was; and an output that is
//! the same file as one of the command's inputs is refused before any work.

use std::fs::{File, Metadata};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::preprocess::{self, ImageError};
use crate::text::{self, thousands};

/// What a file may hold and how large it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// What the file is, for messages: "image", "weights", "labels", "array".
    pub what: &'static str,
    /// The largest size read, in bytes.
    pub max_bytes: u64,
}

/// Image files: [`preprocess::MAX_FILE_BYTES`].
pub const IMAGE: Budget = Budget {
    what: "an image",
    max_bytes: preprocess::MAX_FILE_BYTES,
};
/// Weight files: [`crate::weights::MAX_FILE_BYTES`].
pub const WEIGHTS: Budget = Budget {
    what: "a weights file",
    max_bytes: crate::weights::MAX_FILE_BYTES,
};
/// Class-name lists: [`crate::labels::MAX_FILE_BYTES`].
pub const LABELS: Budget = Budget {
    what: "a labels file",
    max_bytes: crate::labels::MAX_FILE_BYTES,
};
/// `.npy` input arrays: [`crate::npy::MAX_FILE_BYTES`].
pub const ARRAY: Budget = Budget {
    what: "an .npy array",
    max_bytes: crate::npy::MAX_FILE_BYTES,
};

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("cannot write {path}: {message}")]
    Write { path: String, message: String },
    #[error("{path} is {kind}, not a regular file: give the path of {what}")]
    NotAFile {
        path: String,
        kind: &'static str,
        what: &'static str,
    },
    #[error("{path} is {} bytes; the limit for {what} is {} bytes", thousands(*size), thousands(*limit))]
    TooLarge {
        path: String,
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("{path}: {error}")]
    Image { path: String, error: ImageError },
    #[error(
        "{output} is the same file as {input}: writing it would destroy that input; choose another path"
    )]
    SameFile { output: String, input: String },
    #[error("{first} and {second} are the same file: give each output a path of its own")]
    SameOutputs { first: String, second: String },
}

fn read_err(path: &Path, e: impl std::fmt::Display) -> FileError {
    FileError::Read {
        path: text::path(path),
        message: e.to_string(),
    }
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> FileError {
    FileError::Write {
        path: text::path(path),
        message: e.to_string(),
    }
}

/// What kind of thing `meta` describes, when it is not a regular file.
fn not_regular(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        return None;
    }
    if t.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if t.is_char_device() {
            return Some("a character device");
        }
        if t.is_block_device() {
            return Some("a block device");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a regular file")
}

/// An open regular file within `budget`, and its size. The path is checked before it is
/// opened (opening a FIFO would wait for a writer), and the open file again (the path may have
/// been replaced in between).
pub fn open(path: &Path, budget: Budget) -> Result<(File, u64), FileError> {
    let check = |meta: &Metadata| -> Result<u64, FileError> {
        if let Some(kind) = not_regular(meta) {
            return Err(FileError::NotAFile {
                path: text::path(path),
                kind,
                what: budget.what,
            });
        }
        if meta.len() > budget.max_bytes {
            return Err(FileError::TooLarge {
                path: text::path(path),
                what: budget.what,
                size: meta.len(),
                limit: budget.max_bytes,
            });
        }
        Ok(meta.len())
    };
    check(&std::fs::metadata(path).map_err(|e| read_err(path, e))?)?;
    let file = File::open(path).map_err(|e| read_err(path, e))?;
    let size = check(&file.metadata().map_err(|e| read_err(path, e))?)?;
    Ok((file, size))
}

/// The rest of an open file, appended to `buf`, never more than `budget` bytes in all (a file
/// that grew since it was measured is refused, not read on).
pub fn read_rest(
    path: &Path,
    file: &mut File,
    budget: Budget,
    buf: &mut Vec<u8>,
) -> Result<(), FileError> {
    let room = budget.max_bytes.saturating_sub(buf.len() as u64);
    file.take(room + 1)
        .read_to_end(buf)
        .map_err(|e| read_err(path, e))?;
    if buf.len() as u64 > budget.max_bytes {
        return Err(FileError::TooLarge {
            path: text::path(path),
            what: budget.what,
            size: buf.len() as u64,
            limit: budget.max_bytes,
        });
    }
    Ok(())
}

/// A whole file within `budget`.
pub fn read(path: &Path, budget: Budget) -> Result<Vec<u8>, FileError> {
    let (mut file, size) = open(path, budget)?;
    let mut buf = Vec::with_capacity(size as usize);
    read_rest(path, &mut file, budget, &mut buf)?;
    Ok(buf)
}

/// A whole text file within `budget`, as UTF-8.
pub fn read_text(path: &Path, budget: Budget) -> Result<String, FileError> {
    String::from_utf8(read(path, budget)?)
        .map_err(|e| read_err(path, format!("not UTF-8 text ({e})")))
}

/// An image file: its first bytes must be an image format [`preprocess::decode`] reads, and
/// only then is the rest read (a 2 GB file that is not an image costs 16 bytes).
pub fn read_image(path: &Path) -> Result<Vec<u8>, FileError> {
    let image_err = |error| FileError::Image {
        path: text::path(path),
        error,
    };
    // The file type first, whatever its size: a FIFO or a device is named as such.
    let meta = std::fs::metadata(path).map_err(|e| read_err(path, e))?;
    if let Some(kind) = not_regular(&meta) {
        return Err(FileError::NotAFile {
            path: text::path(path),
            kind,
            what: IMAGE.what,
        });
    }
    let mut file = File::open(path).map_err(|e| read_err(path, e))?;
    let mut head = Vec::with_capacity(16);
    (&mut file)
        .take(16)
        .read_to_end(&mut head)
        .map_err(|e| read_err(path, e))?;
    preprocess::sniff(&head).map_err(image_err)?;
    let size = file.metadata().map_err(|e| read_err(path, e))?.len();
    if size > IMAGE.max_bytes {
        return Err(FileError::TooLarge {
            path: text::path(path),
            what: IMAGE.what,
            size,
            limit: IMAGE.max_bytes,
        });
    }
    let mut buf = Vec::with_capacity(size as usize);
    buf.extend_from_slice(&head);
    read_rest(path, &mut file, IMAGE, &mut buf)?;
    Ok(buf)
}

/// The identity of an existing file (device and inode on Unix), to tell whether two paths name
/// the same file whatever links lie between them.
fn identity(path: &Path) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::fs::canonicalize(path).ok()?.hash(&mut h);
        Some((0, h.finish()))
    }
}

/// Refuse an output that is (the same file as) one of the inputs, before any work: `outputs`
/// and `inputs` are (option name, path) pairs, e.g. `("--log", path)`. Two outputs that are the
/// same file are refused too. An output that does not exist yet is no input; one that is a
/// directory cannot be written.
pub fn check_outputs(outputs: &[(&str, &Path)], inputs: &[(&str, &Path)]) -> Result<(), FileError> {
    let named = |(name, p): &(&str, &Path)| format!("{name} {}", text::path(p));
    for (k, out) in outputs.iter().enumerate() {
        if out.1.is_dir() {
            return Err(write_err(out.1, "it is a directory; give a file name"));
        }
        // Paths first (two outputs that do not exist yet can still be one), then files.
        if let Some(first) = outputs[..k]
            .iter()
            .find(|o| o.1 == out.1 || identity(o.1).is_some_and(|id| identity(out.1) == Some(id)))
        {
            return Err(FileError::SameOutputs {
                first: named(first),
                second: named(out),
            });
        }
        let Some(id) = identity(out.1) else { continue };
        if let Some(input) = inputs.iter().find(|i| identity(i.1) == Some(id)) {
            return Err(FileError::SameFile {
                output: named(out),
                input: named(input),
            });
        }
    }
    Ok(())
}

/// An output being written: a temporary file in the destination's directory, renamed over the
/// destination by [`Output::commit`]. Dropped without a commit (an error on the way), the
/// temporary file is removed and the destination is untouched.
pub struct Output {
    dest: PathBuf,
    tmp: PathBuf,
    file: Option<std::io::BufWriter<File>>,
}

impl Output {
    pub fn create(dest: &Path) -> Result<Output, FileError> {
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = dest
            .file_name()
            .ok_or_else(|| write_err(dest, "not a file name"))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}-{call}.tmp", std::process::id()));
        let tmp = dest.with_file_name(tmp_name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| write_err(dest, e))?;
        Ok(Output {
            dest: dest.to_path_buf(),
            tmp,
            file: Some(std::io::BufWriter::new(file)),
        })
    }

    /// Write all of `bytes`.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), FileError> {
        let file = self.file.as_mut().expect("open until committed");
        file.write_all(bytes).map_err(|e| write_err(&self.dest, e))
    }

    /// Flush, sync and rename over the destination; on failure the temporary file is removed
    /// and the destination left as it was.
    pub fn commit(mut self) -> Result<(), FileError> {
        let file = self.file.take().expect("open until committed");
        let result = file
            .into_inner()
            .map_err(|e| write_err(&self.dest, e.error()))
            .and_then(|f| f.sync_all().map_err(|e| write_err(&self.dest, e)))
            .and_then(|()| {
                std::fs::rename(&self.tmp, &self.dest).map_err(|e| write_err(&self.dest, e))
            });
        if result.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        result
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Write `bytes` to `dest` through a temporary file and a rename ([`Output`]).
pub fn write(dest: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let mut out = Output::create(dest)?;
    out.write_all(bytes)?;
    out.commit()
}
