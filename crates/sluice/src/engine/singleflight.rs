//! Single-flight store reads: concurrent misses on one key make one store read.
//!
//! A caller joins an in-flight read only if the key's version has not moved since that read
//! began; a caller that arrives after a write starts its own read, so it always sees that write.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::OnceCell;

use crate::error::StoreError;
use crate::model::DbKey;
use crate::tiers::store::StoredValue;

type ReadResult = Result<Option<StoredValue>, StoreError>;
type Cell = Arc<OnceCell<ReadResult>>;

/// The table of reads in flight.
#[derive(Default)]
pub(crate) struct SingleFlight {
    inflight: Mutex<HashMap<(usize, DbKey), (u64, Cell)>>,
}

struct Leave<'a> {
    table: &'a SingleFlight,
    key: &'a (usize, DbKey),
    cell: &'a Cell,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut map = self.table.inflight.lock();
        if map
            .get(self.key)
            .is_some_and(|(_, c)| Arc::ptr_eq(c, self.cell))
        {
            map.remove(self.key);
        }
    }
}

impl SingleFlight {
    /// Runs `read` unless an equivalent read (same key, same version) is already in flight,
    /// in which case its result is shared.
    pub(crate) async fn read<F, Fut>(
        &self,
        key: (usize, DbKey),
        version: u64,
        read: F,
    ) -> ReadResult
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ReadResult>,
    {
        let cell = {
            let mut map = self.inflight.lock();
            match map.get(&key) {
                Some((v, cell)) if *v == version => cell.clone(),
                _ => {
                    let cell: Cell = Arc::new(OnceCell::new());
                    map.insert(key.clone(), (version, cell.clone()));
                    cell
                }
            }
        };
        let _leave = Leave {
            table: self,
            key: &key,
            cell: &cell,
        };
        cell.get_or_init(read).await.clone()
    }
}
