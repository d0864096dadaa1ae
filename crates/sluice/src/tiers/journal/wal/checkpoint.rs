//! The checkpoint file: `SLUICECP`, the sequence number up to which every record is stored
//! or superseded, the highest sequence number ever appended, and a CRC (28 bytes). It is
//! replaced atomically: written to `checkpoint.tmp`, fsynced, renamed, directory fsynced.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use super::sync_dir;
use crate::tiers::journal::JournalError;

const CHECKPOINT_MAGIC: &[u8; 8] = b"SLUICECP";
const CHECKPOINT_LEN: usize = 28;

/// The checkpoint and the highest sequence number recorded in `dir`; `(0, 0)` if there is no
/// checkpoint file yet.
pub(super) fn read_checkpoint(dir: &Path) -> Result<(u64, u64), JournalError> {
    let path = dir.join("checkpoint");
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(JournalError::io("read", path, e)),
    };
    if bytes.len() != CHECKPOINT_LEN || &bytes[..8] != CHECKPOINT_MAGIC {
        return Err(JournalError::Corrupt {
            path,
            offset: 0,
            reason: "the checkpoint file is malformed; if the journal directory was copied partially, restore it whole",
        });
    }
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[24..28]);
    if crc32c::crc32c(&bytes[..24]) != u32::from_le_bytes(crc) {
        return Err(JournalError::Corrupt {
            path,
            offset: 24,
            reason: "the checkpoint file fails its checksum; restore it, or remove it to replay the whole journal",
        });
    }
    Ok((word(8), word(16)))
}

/// Replaces the checkpoint file of `dir` atomically.
pub(super) fn write_checkpoint(dir: &Path, upto: u64, last_seq: u64) -> Result<(), JournalError> {
    let mut b = Vec::with_capacity(CHECKPOINT_LEN);
    b.extend_from_slice(CHECKPOINT_MAGIC);
    b.extend_from_slice(&upto.to_le_bytes());
    b.extend_from_slice(&last_seq.to_le_bytes());
    b.extend_from_slice(&crc32c::crc32c(&b).to_le_bytes());
    let tmp = dir.join("checkpoint.tmp");
    let path = dir.join("checkpoint");
    let mut f = File::create(&tmp).map_err(|e| JournalError::io("create", &tmp, e))?;
    f.write_all(&b)
        .map_err(|e| JournalError::io("write", &tmp, e))?;
    f.sync_data()
        .map_err(|e| JournalError::io("fsync", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| JournalError::io("rename into place", &tmp, e))?;
    sync_dir(dir)
}
