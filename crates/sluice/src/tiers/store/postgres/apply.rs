//! Applying planned rows on PostgreSQL: one `UNNEST` statement per group, inside the batch's
//! transaction or, for a batch that is one statement, on its own.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio_postgres::types::ToSql;

use bytes::Bytes;

use super::errors::{classify, commit_error, statement_failure};
use super::rows::{RowParam, RowSql};
use super::schema::PgTable;
use super::sql::{
    column_bytes, convert, Column, MappedSql, DELETE_ALL_MEMBERS, DELETE_KV, DELETE_MEMBERS,
    UPSERT_KV, UPSERT_MEMBERS,
};
use crate::config::OnDelete;
use crate::error::StoreError;
use crate::model::StoreWrite;
use crate::tiers::store::batch::{
    match_returned, name_single_key, SetApplier, StatementFailure, StatementStored,
};
use crate::tiers::store::rows::{plan_row_write, RowAction};
use crate::tiers::store::{members, StoreOp, Target};

/// Where an applier's statements run.
pub(super) enum PgConn<'a, 'c> {
    /// Inside the batch's transaction, with savepoints around each attempt.
    Tx(&'a deadpool_postgres::Transaction<'c>),
    /// On its own (autocommit): only for a batch that is one statement.
    Alone(&'a deadpool_postgres::Client),
}

/// Applies planned rows.
pub(super) struct PgApplier<'a, 'c> {
    pub(super) conn: PgConn<'a, 'c>,
    pub(super) tables: &'a HashMap<String, Arc<PgTable>>,
}

impl PgApplier<'_, '_> {
    /// Runs a statement; with `rows`, returns the rows it returns (none otherwise).
    async fn run(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        doing: &str,
        rows: bool,
    ) -> Result<Vec<tokio_postgres::Row>, StatementFailure> {
        let failed = |e: tokio_postgres::Error| statement_failure(e, doing);
        match self.conn {
            PgConn::Tx(tx) => {
                let stmt = tx.prepare_cached(sql).await.map_err(failed)?;
                if rows {
                    tx.query(&stmt, params).await.map_err(failed)
                } else {
                    tx.execute(&stmt, params)
                        .await
                        .map(|_| Vec::new())
                        .map_err(failed)
                }
            }
            PgConn::Alone(client) => {
                let stmt = client.prepare_cached(sql).await.map_err(failed)?;
                let result = if rows {
                    client.query(&stmt, params).await
                } else {
                    client.execute(&stmt, params).await.map(|_| Vec::new())
                };
                result.map_err(|e| match e.as_db_error() {
                    Some(_) => failed(e),
                    // Alone, the statement is its own commit: lost without an answer from
                    // the server, it may have committed, and the error must say so.
                    None => StatementFailure {
                        error: commit_error(e),
                        whole_statement: true,
                    },
                })
            }
        }
    }

    /// Applies one write to a mapped row; reports the row's image afterwards (none for a
    /// DEL).
    pub(super) async fn apply_row(&self, op: &StoreOp) -> Result<Option<Bytes>, StatementFailure> {
        let Target::Row(r) = &op.target else {
            return Err(StatementFailure {
                error: crate::tiers::store::fields_need_a_row(&op.target, &op.key),
                whole_statement: false,
            });
        };
        let whole = |e: StoreError| StatementFailure {
            error: e,
            whole_statement: true,
        };
        let entry = |e: StoreError| StatementFailure {
            error: e,
            whole_statement: false,
        };
        let table = self.tables.get(&r.table).ok_or_else(|| {
            whole(StoreError::permanent(format!(
                "PostgreSQL table {} was not resolved",
                r.table
            )))
        })?;
        let sql = RowSql::new(table, r).map_err(whole)?;
        let doing = format!("write to a row of {}", r.table);
        let key = sql.key_param(r, &op.key).map_err(entry)?;
        let set = match plan_row_write(r, &op.key, &op.write).map_err(entry)? {
            RowAction::Delete => {
                self.run(&sql.delete(r.on_delete), &[&*key], &doing, false)
                    .await?;
                return Ok(None);
            }
            RowAction::Set(set) => set,
        };
        let mut params: Vec<RowParam> = Vec::with_capacity(set.sets.len() + 1);
        params.push(key);
        for (i, v) in &set.sets {
            params.push(sql.value_param(r, *i, v.as_ref(), &op.key).map_err(entry)?);
        }
        if set.delete_first {
            self.run(
                &sql.delete(OnDelete::DeleteRow),
                &[&*params[0]],
                &doing,
                false,
            )
            .await?;
        }
        let (statement, n) = sql.set(&set);
        let refs: Vec<&(dyn ToSql + Sync)> = params[..n]
            .iter()
            .map(|p| &**p as &(dyn ToSql + Sync))
            .collect();
        let rows = self.run(&statement, &refs, &doing, true).await?;
        // No row back: NULLs only, written to a missing row; the key does not exist.
        Ok(Some(
            rows.first()
                .map(|row| sql.image(r, row))
                .unwrap_or_default(),
        ))
    }

    /// Applies one write to a mapped set or sorted set (`members.rs`).
    async fn apply_mapped_members(&self, op: &StoreOp) -> Result<(), StatementFailure> {
        let Target::Members(mm) = &op.target else {
            return Ok(());
        };
        let table = self.tables.get(&mm.table).ok_or_else(|| StatementFailure {
            error: StoreError::permanent(format!("PostgreSQL table {} was not resolved", mm.table)),
            whole_statement: true,
        })?;
        let entry = |e: StoreError| StatementFailure {
            error: e,
            whole_statement: false,
        };
        let sql = super::members::MembersSql::new(table, mm).map_err(entry)?;
        let (mut values, mut members) = (Vec::new(), Vec::new());
        let planned = sql
            .statements(mm, &op.key, &op.write, &mut values, &mut members)
            .map_err(entry)?;
        let doing = format!(
            "write to {}",
            crate::tiers::store::members_mapped::describe(mm)
        );
        for (statement, params) in &planned.statements {
            let refs: Vec<&(dyn ToSql + Sync)> =
                params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
            self.exec(statement, &refs, &doing).await?;
        }
        Ok(())
    }

    /// The member rows of member writes whose keys' rows are written (see `members.rs`), set
    /// based: the replaced keys' members removed, then the removed members, then the present
    /// ones inserted.
    async fn apply_members(
        &self,
        plans: &[(&&StoreOp, members::MemberChanges)],
    ) -> Result<(), StatementFailure> {
        let db_of = |op: &StoreOp| match op.target {
            Target::Builtin { db } => db as i16,
            Target::Row(_) | Target::Mapped(_) | Target::Members(_) => 0,
        };
        let (mut dbs, mut keys) = (Vec::new(), Vec::<&[u8]>::new());
        for (op, _) in plans.iter().filter(|(_, p)| p.replace) {
            dbs.push(db_of(op));
            keys.push(&op.key[..]);
        }
        if !keys.is_empty() {
            self.exec(DELETE_ALL_MEMBERS, &[&dbs, &keys], "replace sluice_members")
                .await?;
        }
        let (mut dbs, mut keys, mut members) =
            (Vec::new(), Vec::<&[u8]>::new(), Vec::<&[u8]>::new());
        for (op, plan) in plans {
            for member in &plan.removed {
                dbs.push(db_of(op));
                keys.push(&op.key[..]);
                members.push(&member[..]);
            }
        }
        if !members.is_empty() {
            self.exec(
                DELETE_MEMBERS,
                &[&dbs, &keys, &members],
                "delete from sluice_members",
            )
            .await?;
        }
        // The last row of a member named twice (two writes of one key in one batch) wins.
        let mut seen = std::collections::HashSet::new();
        let (mut dbs, mut keys, mut members, mut scores, mut values) = (
            Vec::new(),
            Vec::<&[u8]>::new(),
            Vec::<&[u8]>::new(),
            Vec::<Option<f64>>::new(),
            Vec::<Option<&[u8]>>::new(),
        );
        for (op, plan) in plans.iter().rev() {
            for row in plan.present.iter().rev() {
                if seen.insert((db_of(op), &op.key[..], &row.member[..])) {
                    dbs.push(db_of(op));
                    keys.push(&op.key[..]);
                    members.push(&row.member[..]);
                    scores.push(row.score);
                    values.push(row.value.as_deref());
                }
            }
        }
        if !members.is_empty() {
            self.exec(
                UPSERT_MEMBERS,
                &[&dbs, &keys, &members, &scores, &values],
                "upsert into sluice_members",
            )
            .await?;
        }
        Ok(())
    }

    async fn exec(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        doing: &str,
    ) -> Result<StatementStored, StatementFailure> {
        self.run(sql, params, doing, false)
            .await
            .map(|_| Vec::new())
    }

    async fn savepoint_sql(&self, sql: &str) -> Result<(), StoreError> {
        match self.conn {
            PgConn::Tx(tx) => tx
                .batch_execute(sql)
                .await
                .map_err(|e| classify(e, "savepoint")),
            // A lone statement is atomic by itself: there is nothing to mark.
            PgConn::Alone(_) => Ok(()),
        }
    }
}

#[async_trait]
impl SetApplier for PgApplier<'_, '_> {
    async fn savepoint(&mut self) -> Result<(), StoreError> {
        self.savepoint_sql("SAVEPOINT sluice_batch").await
    }

    async fn rollback_to_savepoint(&mut self) -> Result<(), StoreError> {
        self.savepoint_sql("ROLLBACK TO SAVEPOINT sluice_batch; RELEASE SAVEPOINT sluice_batch")
            .await
    }

    async fn release_savepoint(&mut self) -> Result<(), StoreError> {
        self.savepoint_sql("RELEASE SAVEPOINT sluice_batch").await
    }

    async fn apply(&mut self, ops: &[&StoreOp]) -> Result<StatementStored, StatementFailure> {
        let Some(first) = ops.first() else {
            return Ok(Vec::new());
        };
        let delete = matches!(first.write, StoreWrite::Delete);
        let with_key = &name_single_key(ops);
        match &first.target {
            Target::Builtin { .. } => {
                let dbs: Vec<i16> = ops
                    .iter()
                    .map(|op| match op.target {
                        Target::Builtin { db } => db as i16,
                        Target::Row(_) | Target::Mapped(_) | Target::Members(_) => 0,
                    })
                    .collect();
                let keys: Vec<&[u8]> = ops.iter().map(|op| &op.key[..]).collect();
                if delete {
                    return self
                        .exec(DELETE_KV, &[&dbs, &keys], "delete from sluice_kv")
                        .await
                        .map_err(with_key);
                }
                let mut values: Vec<&[u8]> = Vec::with_capacity(ops.len());
                let mut expiry: Vec<Option<i64>> = Vec::with_capacity(ops.len());
                let mut kinds: Vec<i16> = Vec::with_capacity(ops.len());
                let mut member_plans = Vec::new();
                for op in ops {
                    if let Some(p) = members::member_write(&op.target, &op.write) {
                        // The key's row (kind, expiry, an empty value), then its members.
                        let plan = members::plan_members(&op.key, p).map_err(|error| {
                            with_key(StatementFailure {
                                error,
                                whole_statement: false,
                            })
                        })?;
                        values.push(&[]);
                        expiry.push(p.expires_at.map(|e| e.min(i64::MAX as u64) as i64));
                        kinds.push(i16::from(p.kind.code()));
                        member_plans.push((op, plan));
                        continue;
                    }
                    match &op.write {
                        StoreWrite::Upsert {
                            value,
                            kind,
                            expires_at,
                        } => {
                            values.push(&value[..]);
                            expiry.push(expires_at.map(|e| e.min(i64::MAX as u64) as i64));
                            kinds.push(i16::from(kind.code()));
                        }
                        // Refused by `check` before planning; kept per entry if it gets here.
                        StoreWrite::Partial(_) | StoreWrite::Delete => {
                            return Err(with_key(StatementFailure {
                                error: crate::tiers::store::fields_need_a_row(&op.target, &op.key),
                                whole_statement: false,
                            }))
                        }
                    }
                }
                let stored = self
                    .exec(
                        UPSERT_KV,
                        &[&dbs, &keys, &values, &expiry, &kinds],
                        "upsert into sluice_kv",
                    )
                    .await
                    .map_err(with_key)?;
                if !member_plans.is_empty() {
                    self.apply_members(&member_plans).await.map_err(with_key)?;
                }
                Ok(stored)
            }
            Target::Members(_) => {
                // Each write changes its own members: its statements per entry.
                for op in ops {
                    self.apply_mapped_members(op).await.map_err(with_key)?;
                }
                Ok(Vec::new())
            }
            Target::Row(_) => {
                // Each write sets its own columns: one statement per entry.
                let mut stored = Vec::with_capacity(ops.len());
                for op in ops {
                    stored.push(self.apply_row(op).await.map_err(with_key)?);
                }
                Ok(stored)
            }
            Target::Mapped(m) => {
                let fail = |e: StoreError| StatementFailure {
                    error: e,
                    whole_statement: true,
                };
                let table = self.tables.get(&m.table).ok_or_else(|| {
                    fail(StoreError::permanent(format!(
                        "PostgreSQL table {} was not resolved",
                        m.table
                    )))
                })?;
                let sql = MappedSql::new(table, m).map_err(fail)?;
                let doing = format!("write to {}.{}", m.table, m.value_column);
                let mut keys = Column::default();
                let mut values = Column::default();
                for op in ops {
                    // Checked before planning; a failure here would be a bug, kept per entry.
                    let entry = |e: StoreError| StatementFailure {
                        error: e,
                        whole_statement: false,
                    };
                    keys.push(convert(m, Some(sql.key), &op.key, &op.key, true).map_err(entry)?);
                    if let StoreWrite::Upsert { value, .. } = &op.write {
                        values.push(
                            convert(m, Some(sql.value), value, &op.key, false).map_err(entry)?,
                        );
                    }
                }
                let k = keys.as_sql(sql.key.kind);
                if delete {
                    return self
                        .exec(&sql.delete(m.on_delete), &[&*k], &doing)
                        .await
                        .map_err(with_key);
                }
                let v = values.as_sql(sql.value.kind);
                if !m.stores_different_text() {
                    return self
                        .exec(&sql.upsert(false), &[&*k, &*v], &doing)
                        .await
                        .map_err(with_key);
                }
                // A typed column: report what it now holds, as a read would render it.
                let rows = self
                    .run(&sql.upsert(true), &[&*k, &*v], &doing, true)
                    .await
                    .map_err(with_key)?;
                Ok(match_returned(
                    ops,
                    rows.iter().filter_map(|r| {
                        let key = column_bytes(r, 0, sql.key.kind)?;
                        Some((key, column_bytes(r, 1, sql.value.kind)))
                    }),
                ))
            }
        }
    }
}
