//! A set, sorted set or list mapped onto a MySQL / MariaDB table (see `members_mapped.rs`): the
//! owner's rows read with one query, a write applied as multi-row statements (every row of
//! the owner deleted when the value was replaced, the removed members deleted, the present
//! ones upserted), chunked like the built-in table's.

use bytes::Bytes;
use mysql_async::prelude::Queryable;
use mysql_async::Value;

use super::apply::{MyApplier, MAX_ROWS_PER_STATEMENT};
use super::sql::{convert, out, quote_mysql_identifier};
use crate::error::StoreError;
use crate::tiers::store::batch::{pow2_chunks, StatementFailure};
use crate::tiers::store::members_mapped::{self, MembersAction};
use crate::tiers::store::{MappedMembers, StoreOp, Target};

/// Every member of one owner with its score or element (NULL for a set), as reads render
/// them; one parameter, the owner.
pub(super) fn select(mm: &MappedMembers) -> String {
    format!(
        "SELECT {}, {} FROM {} WHERE {} = ?",
        out(&mm.member.name, mm.member.kind),
        mm.value
            .as_ref()
            .map(|s| out(&s.name, s.kind))
            .unwrap_or_else(|| "NULL".into()),
        quote_mysql_identifier(&mm.table),
        quote_mysql_identifier(&mm.key_column)
    )
}

/// Every owner that has a member.
pub(super) fn scan(mm: &MappedMembers) -> String {
    format!(
        "SELECT DISTINCT {} FROM {} WHERE {} IS NOT NULL",
        out(&mm.key_column, mm.key_type),
        quote_mysql_identifier(&mm.table),
        quote_mysql_identifier(&mm.member.name)
    )
}

/// The owner key as a parameter.
pub(super) fn owner(mm: &MappedMembers, key: &[u8]) -> Result<Value, StoreError> {
    convert(&mm.as_column(&mm.member), key, key, true)
}

impl MyApplier<'_, '_> {
    /// Applies one write to a mapped set, sorted set or list.
    pub(super) async fn apply_mapped_members(
        &mut self,
        op: &StoreOp,
    ) -> Result<(), StatementFailure> {
        let Target::Members(mm) = &op.target else {
            return Ok(());
        };
        let entry = |e: StoreError| StatementFailure {
            error: e,
            whole_statement: false,
        };
        let key = &op.key[..];
        let t = quote_mysql_identifier(&mm.table);
        let kc = quote_mysql_identifier(&mm.key_column);
        let mc = quote_mysql_identifier(&mm.member.name);
        let doing = format!("write to {}", members_mapped::describe(mm));
        let owner = owner(mm, key).map_err(entry)?;
        let delete_all = format!("DELETE FROM {t} WHERE {kc} = ?");
        let plan = match members_mapped::plan_mapped_members(mm, key, &op.write).map_err(entry)? {
            MembersAction::DeleteAll => {
                return self.exec(&delete_all, vec![owner], &doing).await;
            }
            MembersAction::Changes(plan) => plan,
        };
        let member_column = mm.as_column(&mm.member);
        // Every conversion before the first statement: a refused member changes nothing.
        let removed: Vec<Value> = plan
            .removed
            .iter()
            .map(|m| convert(&member_column, m, key, false))
            .collect::<Result<_, _>>()
            .map_err(entry)?;
        let mut present: Vec<(Value, Option<Value>, usize)> =
            Vec::with_capacity(plan.present.len());
        for row in &plan.present {
            members_mapped::check_member(mm, key, &row.member).map_err(entry)?;
            let member = convert(&member_column, &row.member, key, false).map_err(entry)?;
            let value = match (&mm.value, members_mapped::value_text(mm, key, row)) {
                (Some(column), Ok(Some(text))) => {
                    Some(convert(&mm.as_column(column), &text, key, false).map_err(entry)?)
                }
                (_, Err(e)) => return Err(entry(e)),
                _ => None,
            };
            let size = row.member.len() + row.value.as_ref().map_or(0, Bytes::len);
            present.push((member, value, size));
        }
        let budget = self.budget;
        let size = |m: &Bytes| key.len() + m.len() + 64;
        let mut removed_sizes: Vec<(Value, usize)> = removed
            .into_iter()
            .zip(plan.removed.iter().map(size))
            .collect();
        if plan.replace {
            // The rows whose members the new value lacks, read (and locked) inside the write's
            // transaction; the rest are upserted below, never deleted and inserted again.
            let existing: Vec<Option<Vec<u8>>> = self
                .tx
                .exec(
                    format!(
                        "SELECT {} FROM {t} WHERE {kc} = ? FOR UPDATE",
                        out(&mm.member.name, mm.member.kind)
                    ),
                    mysql_async::Params::Positional(vec![owner.clone()]),
                )
                .await
                .map_err(|e| super::errors::classify(e, &doing))?;
            let existing = existing.into_iter().flatten().map(Bytes::from).collect();
            for member in members_mapped::stale_members(existing, &plan) {
                let value = convert(&member_column, &member, key, false).map_err(entry)?;
                removed_sizes.push((value, size(&member)));
            }
        }
        for chunk in pow2_chunks(&removed_sizes, MAX_ROWS_PER_STATEMENT, budget, |r| r.1) {
            let mut params = vec![owner.clone()];
            params.extend(chunk.iter().map(|(v, _)| v.clone()));
            let sql = format!(
                "DELETE FROM {t} WHERE {kc} = ? AND {mc} IN ({})",
                vec!["?"; chunk.len()].join(", ")
            );
            self.exec(&sql, params, &doing).await?;
        }
        let row_size = |r: &(Value, Option<Value>, usize)| key.len() + r.2 + 96;
        for chunk in pow2_chunks(&present, MAX_ROWS_PER_STATEMENT, budget, row_size) {
            let mut params = Vec::with_capacity(chunk.len() * 3);
            let sql = match &mm.value {
                Some(column) => {
                    for (member, value, _) in chunk {
                        params.push(owner.clone());
                        params.push(member.clone());
                        params.push(value.clone().unwrap_or(Value::NULL));
                    }
                    let vc = quote_mysql_identifier(&column.name);
                    format!(
                        "INSERT INTO {t} ({kc}, {mc}, {vc}) VALUES {} \
                         ON DUPLICATE KEY UPDATE {vc} = VALUES({vc})",
                        vec!["(?, ?, ?)"; chunk.len()].join(", ")
                    )
                }
                None => {
                    for (member, _, _) in chunk {
                        params.push(owner.clone());
                        params.push(member.clone());
                    }
                    // A member already there stays as it is (its owner and member are
                    // unchanged by definition).
                    format!(
                        "INSERT INTO {t} ({kc}, {mc}) VALUES {} \
                         ON DUPLICATE KEY UPDATE {kc} = {kc}",
                        vec!["(?, ?)"; chunk.len()].join(", ")
                    )
                }
            };
            self.exec(&sql, params, &doing).await?;
        }
        Ok(())
    }
}
