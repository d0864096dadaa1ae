//! Lua scripts every connection shares: the scripts loaded (EVAL, SCRIPT LOAD) and a kill
//! switch per script running, for SCRIPT KILL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::script::ScriptCache;

/// Scripts loaded and running.
#[derive(Default)]
pub struct Scripting {
    /// Scripts by SHA1, shared by every connection.
    pub cache: ScriptCache,
    running: Mutex<HashMap<u64, Arc<AtomicBool>>>,
    next_id: AtomicU64,
}

impl Scripting {
    /// Registers a script that starts running; it is listed until the guard drops.
    pub fn start(&self) -> RunningScript<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let kill = Arc::new(AtomicBool::new(false));
        self.running.lock().insert(id, kill.clone());
        RunningScript {
            scripting: self,
            id,
            kill,
        }
    }

    /// SCRIPT KILL: asks every running script to stop; false if none runs.
    pub fn kill_all(&self) -> bool {
        let running = self.running.lock();
        for kill in running.values() {
            kill.store(true, Ordering::SeqCst);
        }
        !running.is_empty()
    }
}

/// A running script's registration and kill switch.
pub struct RunningScript<'a> {
    scripting: &'a Scripting,
    id: u64,
    kill: Arc<AtomicBool>,
}

impl RunningScript<'_> {
    /// The switch SCRIPT KILL sets (and the script's host reads).
    pub fn kill_switch(&self) -> Arc<AtomicBool> {
        self.kill.clone()
    }
}

impl Drop for RunningScript<'_> {
    fn drop(&mut self) {
        self.scripting.running.lock().remove(&self.id);
    }
}
