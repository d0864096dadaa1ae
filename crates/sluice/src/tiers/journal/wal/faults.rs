//! The writer's segment I/O, with a failure-injection seam ([`JournalFaults`]) for tests of
//! what a failed `write` or `fdatasync` does to the journal.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

/// Failures to inject into a [`super::WalJournal`] opened with
/// [`super::WalJournal::open_with_faults`]. Cloning shares the plan, so a test keeps one
/// clone to arm failures after the journal is open.
///
/// Only segment file calls of the writer thread are counted and failed: the header and
/// group writes, and their `fdatasync`s. Recovery, the checkpoint file and directory fsyncs
/// are untouched.
#[derive(Clone, Default)]
pub struct JournalFaults(Arc<FaultState>);

#[derive(Default)]
struct FaultState {
    plan: Mutex<Plan>,
    held: Mutex<bool>,
    released: Condvar,
}

#[derive(Default)]
struct Plan {
    /// `(calls to let through first, OS error number)` for the next failing write.
    write: Option<(u64, i32)>,
    /// The same for `fdatasync`.
    sync: Option<(u64, i32)>,
    writes: u64,
    syncs: u64,
}

impl JournalFaults {
    /// A plan that fails nothing until armed.
    pub fn new() -> JournalFaults {
        JournalFaults::default()
    }

    /// Lets `n` more segment writes succeed, then fails the next one with OS error `errno`
    /// (e.g. `libc::ENOSPC`) after writing the first half of its bytes, as a filling disk
    /// does. One failure per call.
    pub fn fail_write_after(&self, n: u64, errno: i32) {
        self.0.plan.lock().write = Some((n, errno));
    }

    /// Lets `n` more segment `fdatasync`s succeed, then fails the next one with OS error
    /// `errno` (e.g. `libc::EIO`). One failure per call.
    pub fn fail_sync_after(&self, n: u64, errno: i32) {
        self.0.plan.lock().sync = Some((n, errno));
    }

    /// Segment writes attempted so far (failed ones included).
    pub fn writes(&self) -> u64 {
        self.0.plan.lock().writes
    }

    /// Segment `fdatasync`s attempted so far (failed ones included).
    pub fn syncs(&self) -> u64 {
        self.0.plan.lock().syncs
    }

    /// Holds the writer thread once it has taken the first request of its next group, until
    /// [`JournalFaults::release`]: every append queued meanwhile joins that group.
    pub fn hold(&self) {
        *self.0.held.lock() = true;
    }

    /// Lets a held writer go on.
    pub fn release(&self) {
        *self.0.held.lock() = false;
        self.0.released.notify_all();
    }

    /// Counts a call; `Some(errno)` if the plan says this one fails.
    fn next(slot: &mut Option<(u64, i32)>, count: &mut u64) -> Option<i32> {
        *count += 1;
        match slot {
            Some((0, errno)) => {
                let errno = *errno;
                *slot = None;
                Some(errno)
            }
            Some((n, _)) => {
                *n -= 1;
                None
            }
            None => None,
        }
    }
}

/// The segment file calls of the writer: straight to the file system unless faults are
/// planned.
#[derive(Default)]
pub(super) struct SegmentIo {
    faults: Option<JournalFaults>,
}

impl SegmentIo {
    pub(super) fn new(faults: Option<JournalFaults>) -> SegmentIo {
        SegmentIo { faults }
    }

    pub(super) fn write_all(&self, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        if let Some(faults) = &self.faults {
            let failure = {
                let plan = &mut *faults.0.plan.lock();
                JournalFaults::next(&mut plan.write, &mut plan.writes)
            };
            if let Some(errno) = failure {
                file.write_all(&bytes[..bytes.len() / 2])?;
                return Err(io::Error::from_raw_os_error(errno));
            }
        }
        file.write_all(bytes)
    }

    pub(super) fn sync_data(&self, file: &File) -> io::Result<()> {
        if let Some(faults) = &self.faults {
            let failure = {
                let plan = &mut *faults.0.plan.lock();
                JournalFaults::next(&mut plan.sync, &mut plan.syncs)
            };
            if let Some(errno) = failure {
                return Err(io::Error::from_raw_os_error(errno));
            }
        }
        file.sync_data()
    }

    /// Called by the writer after it took the first request of a group.
    pub(super) fn before_group(&self) {
        if let Some(faults) = &self.faults {
            let mut held = faults.0.held.lock();
            while *held {
                faults.0.released.wait(&mut held);
            }
        }
    }
}
