//! Applying planned rows on MySQL / MariaDB: multi-row statements in power-of-two chunks,
//! inside the batch's transaction.

use async_trait::async_trait;
use bytes::Bytes;
use mysql_async::prelude::Queryable;
use mysql_async::{Params, Value};

use super::errors::classify;
use super::rows;
use super::sql::{convert, op_size, out, placeholders, quote_mysql_identifier};
use crate::config::OnDelete;
use crate::error::StoreError;
use crate::model::StoreWrite;
use crate::tiers::store::batch::{
    match_returned, name_single_key, pow2_chunks, SetApplier, StatementFailure, StatementStored,
};
use crate::tiers::store::rows::{plan_row_write, RowAction};
use crate::tiers::store::{members, StoreOp, Target};

/// Most rows per multi-row statement (4 placeholders each for the built-in table).
pub(super) const MAX_ROWS_PER_STATEMENT: usize = 4096;

/// Applies planned rows inside one transaction.
pub(super) struct MyApplier<'a, 'c> {
    pub(super) tx: &'a mut mysql_async::Transaction<'c>,
    pub(super) budget: usize,
    /// Upserts into typed columns return what they stored.
    pub(super) returning: bool,
}

impl MyApplier<'_, '_> {
    pub(super) async fn exec(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        doing: &str,
    ) -> Result<(), StatementFailure> {
        self.tx
            .exec_drop(sql, Params::Positional(params))
            .await
            .map_err(|e| classify(e, doing))
    }

    /// The member rows of one key whose row is written (see `members.rs`): its members removed
    /// if it was replaced, then the removed ones, then the present ones inserted, in
    /// statements of at most [`MAX_ROWS_PER_STATEMENT`] members.
    async fn apply_members(
        &mut self,
        db: u8,
        key: &[u8],
        plan: &members::MemberChanges,
    ) -> Result<(), StatementFailure> {
        const KEY_HASH: &str = "UNHEX(SHA2(?, 256))";
        let db = Value::Int(i64::from(db));
        if plan.replace {
            self.exec(
                &format!("DELETE FROM sluice_members WHERE db = ? AND key_hash = {KEY_HASH}"),
                vec![db.clone(), Value::Bytes(key.to_vec())],
                "replace sluice_members",
            )
            .await?;
        }
        // Each row sends the key and the member twice (once for its hash): chunks by bytes too.
        let size = |m: &Bytes| 2 * (key.len() + m.len()) + 96;
        for chunk in pow2_chunks(&plan.removed, MAX_ROWS_PER_STATEMENT, self.budget, size) {
            let mut params = vec![db.clone(), Value::Bytes(key.to_vec())];
            params.extend(chunk.iter().map(|m| Value::Bytes(m.to_vec())));
            let sql = format!(
                "DELETE FROM sluice_members WHERE db = ? AND key_hash = {KEY_HASH} \
                 AND member_hash IN ({})",
                vec![KEY_HASH; chunk.len()].join(", ")
            );
            self.exec(&sql, params, "delete from sluice_members")
                .await?;
        }
        let size_row =
            |r: &members::MemberRow| size(&r.member) + 8 + r.value.as_ref().map_or(0, Bytes::len);
        for chunk in pow2_chunks(&plan.present, MAX_ROWS_PER_STATEMENT, self.budget, size_row) {
            let mut params = Vec::with_capacity(chunk.len() * 7);
            for row in chunk {
                let (score, value) = members::mysql_columns(row);
                params.extend([
                    db.clone(),
                    Value::Bytes(key.to_vec()),
                    Value::Bytes(row.member.to_vec()),
                    Value::Bytes(key.to_vec()),
                    Value::Bytes(row.member.to_vec()),
                    score.map_or(Value::NULL, Value::Double),
                    value.map_or(Value::NULL, |v| Value::Bytes(v.to_vec())),
                ]);
            }
            let row = format!("(?, {KEY_HASH}, {KEY_HASH}, ?, ?, ?, ?)");
            let sql = format!(
                "INSERT INTO sluice_members \
                 (db, key_hash, member_hash, `key`, member, score, `value`) \
                 VALUES {} ON DUPLICATE KEY UPDATE score = VALUES(score), `value` = VALUES(`value`)",
                vec![row.as_str(); chunk.len()].join(", ")
            );
            self.exec(&sql, params, "insert into sluice_members")
                .await?;
        }
        Ok(())
    }

    /// Runs a statement that returns (key, value) rows.
    async fn exec_returning(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        doing: &str,
    ) -> Result<Vec<(Bytes, Option<Bytes>)>, StatementFailure> {
        let rows: Vec<mysql_async::Row> = self
            .tx
            .exec(sql, Params::Positional(params))
            .await
            .map_err(|e| classify(e, doing))?;
        let bytes = |row: &mysql_async::Row, i: usize| {
            row.get_opt::<Option<Vec<u8>>, _>(i)
                .and_then(Result::ok)
                .flatten()
                .map(Bytes::from)
        };
        Ok(rows
            .iter()
            .filter_map(|r| Some((bytes(r, 0)?, bytes(r, 1))))
            .collect())
    }

    /// Applies one write to a mapped row; reports the row's image afterwards, read back in
    /// the same transaction (none for a DEL).
    pub(super) async fn apply_row(
        &mut self,
        op: &StoreOp,
    ) -> Result<Option<Bytes>, StatementFailure> {
        let entry = |e: StoreError| StatementFailure {
            error: e,
            whole_statement: false,
        };
        let Target::Row(r) = &op.target else {
            return Err(entry(crate::tiers::store::fields_need_a_row(
                &op.target, &op.key,
            )));
        };
        let doing = format!("write to a row of {}", r.table);
        let key = rows::key_param(r, &op.key).map_err(entry)?;
        let set = match plan_row_write(r, &op.key, &op.write).map_err(entry)? {
            RowAction::Delete => {
                self.exec(&rows::delete(r, r.on_delete), vec![key], &doing)
                    .await?;
                return Ok(None);
            }
            RowAction::Set(set) => set,
        };
        let mut params = Vec::with_capacity(set.sets.len() + 1);
        params.push(key.clone());
        for (i, v) in &set.sets {
            params.push(rows::value_param(r, *i, v.as_ref(), &op.key).map_err(entry)?);
        }
        if set.delete_first {
            self.exec(
                &rows::delete(r, OnDelete::DeleteRow),
                vec![key.clone()],
                &doing,
            )
            .await?;
        }
        if let Some((sql, n)) = rows::set(r, &set) {
            params.truncate(n);
            self.exec(&sql, params, &doing).await.map_err(|mut f| {
                if f.error.message.contains("ERROR 1242 ") {
                    f.error.message = format!(
                        "MySQL {doing}: the row collides with another row of {} on a unique index other than {}",
                        r.table, r.key_column
                    );
                }
                f
            })?;
        }
        // MySQL has no UPDATE … RETURNING: read the row back inside the transaction, which
        // sees its own write.
        let row: Option<mysql_async::Row> = self
            .tx
            .exec_first(rows::select(r), Params::Positional(vec![key]))
            .await
            .map_err(|e| classify(e, &doing))?;
        Ok(Some(
            row.map(|row| rows::image(r, &row)).unwrap_or_default(),
        ))
    }

    async fn query(&mut self, sql: &str) -> Result<(), StoreError> {
        self.tx
            .query_drop(sql)
            .await
            .map_err(|e| classify(e, "savepoint").error)
    }
}

#[async_trait]
impl SetApplier for MyApplier<'_, '_> {
    async fn savepoint(&mut self) -> Result<(), StoreError> {
        self.query("SAVEPOINT sluice_batch").await
    }

    async fn rollback_to_savepoint(&mut self) -> Result<(), StoreError> {
        // The savepoint stays; the next SAVEPOINT of the same name replaces it.
        self.query("ROLLBACK TO SAVEPOINT sluice_batch").await
    }

    async fn release_savepoint(&mut self) -> Result<(), StoreError> {
        self.query("RELEASE SAVEPOINT sluice_batch").await
    }

    async fn apply(&mut self, ops: &[&StoreOp]) -> Result<StatementStored, StatementFailure> {
        let Some(first) = ops.first() else {
            return Ok(Vec::new());
        };
        let delete = matches!(first.write, StoreWrite::Delete);
        let with_key = &name_single_key(ops);
        let entry = |e: StoreError| StatementFailure {
            error: e,
            whole_statement: false,
        };
        let budget = self.budget;
        match &first.target {
            Target::Builtin { .. } => {
                let db_of = |op: &StoreOp| match op.target {
                    Target::Builtin { db } => db,
                    Target::Row(_) | Target::Mapped(_) | Target::Members(_) => 0,
                };
                if delete {
                    // One statement family per database, so the primary key prefix is fixed.
                    let mut dbs: Vec<u8> = ops.iter().map(|op| db_of(op)).collect();
                    dbs.sort_unstable();
                    dbs.dedup();
                    for db in dbs {
                        let of_db: Vec<&StoreOp> =
                            ops.iter().copied().filter(|op| db_of(op) == db).collect();
                        for chunk in
                            pow2_chunks(&of_db, MAX_ROWS_PER_STATEMENT, budget, |op| op_size(op))
                        {
                            let sql = format!(
                                "DELETE FROM sluice_kv WHERE db = ? AND `key` IN ({})",
                                vec!["?"; chunk.len()].join(", ")
                            );
                            let mut params = Vec::with_capacity(chunk.len() + 1);
                            params.push(Value::Int(db as i64));
                            params.extend(chunk.iter().map(|op| Value::Bytes(op.key.to_vec())));
                            self.exec(&sql, params, "delete from sluice_kv")
                                .await
                                .map_err(with_key)?;
                        }
                    }
                    return Ok(Vec::new());
                }
                let mut member_writes = Vec::new();
                for chunk in pow2_chunks(ops, MAX_ROWS_PER_STATEMENT, budget, |op| op_size(op)) {
                    let sql = format!(
                        "INSERT INTO sluice_kv (db, `key`, `value`, expires_at, kind) VALUES {} \
                         ON DUPLICATE KEY UPDATE `value` = VALUES(`value`), \
                         expires_at = VALUES(expires_at), kind = VALUES(kind)",
                        placeholders(chunk.len(), 5)
                    );
                    let mut params = Vec::with_capacity(chunk.len() * 5);
                    for op in chunk {
                        if let Some(p) = members::member_write(&op.target, &op.write) {
                            // The key's row (kind, expiry, an empty value), then its members.
                            let plan = members::plan_members(&op.key, p)
                                .map_err(|e| with_key(entry(e)))?;
                            params.push(Value::Int(db_of(op) as i64));
                            params.push(Value::Bytes(op.key.to_vec()));
                            params.push(Value::Bytes(Vec::new()));
                            params.push(match p.expires_at {
                                Some(e) => Value::Int(e.min(i64::MAX as u64) as i64),
                                None => Value::NULL,
                            });
                            params.push(Value::Int(i64::from(p.kind.code())));
                            member_writes.push((db_of(op), *op, plan));
                            continue;
                        }
                        let StoreWrite::Upsert {
                            value,
                            kind,
                            expires_at,
                        } = &op.write
                        else {
                            // Refused by `check` before planning; kept per entry if it gets
                            // here.
                            return Err(with_key(entry(crate::tiers::store::fields_need_a_row(
                                &op.target, &op.key,
                            ))));
                        };
                        params.push(Value::Int(db_of(op) as i64));
                        params.push(Value::Bytes(op.key.to_vec()));
                        params.push(Value::Bytes(value.to_vec()));
                        params.push(match expires_at {
                            Some(e) => Value::Int((*e).min(i64::MAX as u64) as i64),
                            None => Value::NULL,
                        });
                        params.push(Value::Int(i64::from(kind.code())));
                    }
                    self.exec(&sql, params, "upsert into sluice_kv")
                        .await
                        .map_err(with_key)?;
                }
                for (db, op, plan) in member_writes {
                    self.apply_members(db, &op.key, &plan)
                        .await
                        .map_err(with_key)?;
                }
                Ok(Vec::new())
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
                let t = quote_mysql_identifier(&m.table);
                let k = quote_mysql_identifier(&m.key_column);
                let v = quote_mysql_identifier(&m.value_column);
                let doing = format!("write to {}.{}", m.table, m.value_column);
                // A typed column's upsert reports what the column now holds, as a read
                // renders it.
                let returning = self.returning && !delete && m.stores_different_text();
                let mut stored: StatementStored = Vec::new();
                for chunk in pow2_chunks(ops, MAX_ROWS_PER_STATEMENT, budget, |op| op_size(op)) {
                    let mut params = Vec::with_capacity(chunk.len() * 2);
                    for op in chunk {
                        params.push(convert(m, &op.key, &op.key, true).map_err(entry)?);
                        if let StoreWrite::Upsert { value, .. } = &op.write {
                            params.push(convert(m, value, &op.key, false).map_err(entry)?);
                        }
                    }
                    let sql = if delete {
                        let keys = vec!["?"; chunk.len()].join(", ");
                        match m.on_delete {
                            crate::config::OnDelete::SetNull => {
                                format!("UPDATE {t} SET {v} = NULL WHERE {k} IN ({keys})")
                            }
                            crate::config::OnDelete::DeleteRow => {
                                format!("DELETE FROM {t} WHERE {k} IN ({keys})")
                            }
                        }
                    } else {
                        // ON DUPLICATE KEY UPDATE fires on any unique index: when the row it
                        // found has another key, the value collides with that row on some
                        // other unique index; fail (a subquery of two rows) instead of
                        // silently updating the wrong row.
                        let mut sql = format!(
                            "INSERT INTO {t} ({k}, {v}) VALUES {} ON DUPLICATE KEY UPDATE \
                             {v} = IF({k} <=> VALUES({k}), VALUES({v}), (SELECT 1 UNION SELECT 2))",
                            placeholders(chunk.len(), 2)
                        );
                        if returning {
                            sql.push_str(&format!(
                                " RETURNING {}, {}",
                                out(&m.key_column, m.key_type),
                                out(&m.value_column, m.value_type)
                            ));
                        }
                        sql
                    };
                    let named = |mut f: StatementFailure| {
                        if !delete && f.error.message.contains("ERROR 1242 ") {
                            f.error.message = format!(
                                "MySQL {doing}: the row collides with another row of {} on a unique index other than {}",
                                m.table, m.key_column
                            );
                        }
                        with_key(f)
                    };
                    if returning {
                        let rows = self
                            .exec_returning(&sql, params, &doing)
                            .await
                            .map_err(named)?;
                        stored.extend(match_returned(chunk, rows));
                    } else {
                        self.exec(&sql, params, &doing).await.map_err(named)?;
                    }
                }
                Ok(stored)
            }
        }
    }
}
