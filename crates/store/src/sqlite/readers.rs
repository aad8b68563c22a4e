//! Read connections for the SQLite backend. A read is a point lookup by primary key run right on the calling
//! thread with a cached prepared statement: no hop to another thread and back. That is safe on a Tokio worker
//! because in WAL mode a reader never waits for the writer (it reads the last committed snapshot) and the pages
//! it needs are almost always in the page cache, so a lookup takes microseconds, like any other CPU work of a
//! request. Each read is its own implicit transaction, started after the caller's previous write was answered
//! (answered after `COMMIT`), so a caller always reads its own writes.

use crate::error::map_sqlite;
use portcullis_authz::store::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// A small stack of idle read-only connections; a read takes one (opening one if none is idle) and puts it
/// back.
#[derive(Debug)]
pub(crate) struct Readers {
    path: PathBuf,
    busy_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    /// Read connections to the database at `path`, keeping at most `max_idle` open between reads.
    pub(crate) fn new(
        path: PathBuf,
        busy_timeout: Duration,
        max_idle: usize,
    ) -> Result<Self, StoreError> {
        let readers = Self {
            path,
            busy_timeout,
            max_idle: max_idle.max(1),
            idle: Mutex::new(Vec::new()),
        };
        // Open one now so that a database that cannot be read fails at start-up, not at the first request.
        let first = readers.open()?;
        readers.put_back(first);
        Ok(readers)
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(map_sqlite)?;
        conn.busy_timeout(self.busy_timeout).map_err(map_sqlite)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    fn put_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }

    /// Runs `f` on a read connection.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let taken = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match taken {
            Some(c) => c,
            None => self.open()?,
        };
        let result = f(&conn).map_err(map_sqlite);
        self.put_back(conn);
        result
    }
}
