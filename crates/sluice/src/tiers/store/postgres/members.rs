//! A set, sorted set or list mapped onto a PostgreSQL table (see `members_mapped.rs`): the owner's
//! rows read with one query, a write applied as at most three statements (every row of the
//! owner deleted when the value was replaced, the removed members deleted, the present ones
//! upserted), each member list sent as one array.

use tokio_postgres::types::ToSql;

use super::schema::{PgColumn, PgTable};
use super::sql::{column_bytes, convert, quote, Column, MappedSql, Param};
use crate::error::StoreError;
use crate::tiers::store::members_mapped::{self, MembersAction};
use crate::tiers::store::{ColumnType, MappedMembers, StoreWrite};

/// The SQL of one mapped member table.
pub(super) struct MembersSql<'t> {
    table: &'t PgTable,
    key: &'t PgColumn,
    member: &'t PgColumn,
    /// A sorted set's score or a list's element column.
    value: Option<&'t PgColumn>,
}

/// The statements and their parameters one write stands for, in order.
pub(super) struct MembersStatements<'a> {
    pub(super) statements: Vec<(String, Vec<Box<dyn ToSql + Sync + Send + 'a>>)>,
}

fn param_type(c: &PgColumn) -> &'static str {
    if c.kind == ColumnType::Blob {
        "bytea"
    } else {
        "text"
    }
}

/// One converted parameter as an owned value.
fn single(p: Param<'_>) -> Box<dyn ToSql + Sync + Send + '_> {
    match p {
        Param::Text(t) => Box::new(t.into_owned()),
        Param::Bytes(b) => Box::new(b),
    }
}

impl<'t> MembersSql<'t> {
    pub(super) fn new(table: &'t PgTable, mm: &MappedMembers) -> Result<Self, StoreError> {
        let col = |name: &str| {
            table.column(name).ok_or_else(|| {
                StoreError::permanent(format!(
                    "PostgreSQL table {} has no column {name:?}",
                    mm.table
                ))
            })
        };
        Ok(MembersSql {
            table,
            key: col(&mm.key_column)?,
            member: col(&mm.member.name)?,
            value: mm.value.as_ref().map(|s| col(&s.name)).transpose()?,
        })
    }

    fn owner_is(&self) -> String {
        format!(
            "{} = $1::{}::{}",
            quote(&self.key.name),
            param_type(self.key),
            self.key.cast
        )
    }

    /// Every member of one owner, with its score or element (NULL for a set), as reads render
    /// them.
    pub(super) fn select(&self) -> String {
        format!(
            "SELECT {}, {} FROM {} WHERE {}",
            MappedSql::out(self.member),
            self.value
                .map(MappedSql::out)
                .unwrap_or_else(|| "NULL::text".into()),
            self.table.qualified,
            self.owner_is()
        )
    }

    /// Every owner that has a member.
    pub(super) fn scan(&self) -> String {
        format!(
            "SELECT DISTINCT {} FROM {} WHERE {} IS NOT NULL",
            MappedSql::out(self.key),
            self.table.qualified,
            quote(&self.member.name)
        )
    }

    /// The owner key as the one parameter of [`MembersSql::select`].
    pub(super) fn owner_param<'k>(
        &self,
        mm: &MappedMembers,
        key: &'k [u8],
    ) -> Result<Box<dyn ToSql + Sync + Send + 'k>, StoreError> {
        let member_column = mm.as_column(&mm.member);
        Ok(single(convert(
            &member_column,
            Some(self.key),
            key,
            key,
            true,
        )?))
    }

    /// The rows a select returned, as `(member, score text or element)`.
    pub(super) fn rows(
        &self,
        rows: &[tokio_postgres::Row],
    ) -> Vec<(bytes::Bytes, Option<bytes::Bytes>)> {
        rows.iter()
            .filter_map(|r| {
                let member = column_bytes(r, 0, self.member.kind)?;
                let kind = self.value.map_or(ColumnType::Text, |v| v.kind);
                Some((member, column_bytes(r, 1, kind)))
            })
            .collect()
    }

    /// The statements of one write, with their converted parameters; a permanent error for a
    /// member, score or element its column cannot hold exactly.
    pub(super) fn statements<'a>(
        &self,
        mm: &MappedMembers,
        key: &'a [u8],
        write: &StoreWrite,
        values: &'a mut Vec<bytes::Bytes>,
        members: &'a mut Vec<bytes::Bytes>,
    ) -> Result<MembersStatements<'a>, StoreError> {
        let t = &self.table.qualified;
        let kc = quote(&self.key.name);
        let mc = quote(&self.member.name);
        let owner_is = self.owner_is();
        let delete_all = format!("DELETE FROM {t} WHERE {owner_is}");
        let member_column = mm.as_column(&mm.member);
        let owner = || self.owner_param(mm, key);
        let plan = match members_mapped::plan_mapped_members(mm, key, write)? {
            MembersAction::DeleteAll => {
                return Ok(MembersStatements {
                    statements: vec![(delete_all, vec![owner()?])],
                })
            }
            MembersAction::Changes(plan) => plan,
        };
        // The member bytes and score texts or elements live in the caller's vectors, which the
        // statements' parameters borrow.
        let removed_from = members.len();
        members.extend(plan.removed.iter().cloned());
        let present_from = members.len();
        for row in &plan.present {
            members_mapped::check_member(mm, key, &row.member)?;
            members.push(row.member.clone());
        }
        for row in &plan.present {
            if let Some(value) = members_mapped::value_text(mm, key, row)? {
                values.push(bytes::Bytes::copy_from_slice(&value));
            }
        }
        let members: &'a [bytes::Bytes] = members;
        let values: &'a [bytes::Bytes] = values;
        let mut statements = Vec::new();
        let member_array = |members: &'a [bytes::Bytes]| -> Result<_, StoreError> {
            let mut column = Column::default();
            for m in members {
                column.push(convert(&member_column, Some(self.member), m, key, false)?);
            }
            Ok(column)
        };
        let (mp, mcast) = (param_type(self.member), &self.member.cast);
        let removed = &members[removed_from..present_from];
        if !removed.is_empty() {
            let column = member_array(removed)?;
            statements.push((
                format!("DELETE FROM {t} WHERE {owner_is} AND {mc} = ANY($2::{mp}[]::{mcast}[])"),
                vec![owner()?, column.into_sql(self.member.kind)],
            ));
        }
        let present = &members[present_from..];
        if plan.replace {
            // The rows whose members the new value lacks; the rest are upserted below, never
            // deleted and inserted again.
            let column = member_array(present)?;
            statements.push((
                format!("DELETE FROM {t} WHERE {owner_is} AND {mc} <> ALL($2::{mp}[]::{mcast}[])"),
                vec![owner()?, column.into_sql(self.member.kind)],
            ));
        }
        if !present.is_empty() {
            let column = member_array(present)?;
            let (kp, kcast) = (param_type(self.key), &self.key.cast);
            let sql = match self.value {
                Some(value) => format!(
                    "INSERT INTO {t} ({kc}, {mc}, {vc}) \
                     SELECT $1::{kp}::{kcast}, u.m::{mcast}, u.v::{vcast} \
                     FROM UNNEST($2::{mp}[], $3::{vp}[]) AS u(m, v) \
                     ON CONFLICT ({kc}, {mc}) DO UPDATE SET {vc} = EXCLUDED.{vc}",
                    vc = quote(&value.name),
                    vcast = value.cast,
                    vp = param_type(value),
                ),
                None => format!(
                    "INSERT INTO {t} ({kc}, {mc}) \
                     SELECT $1::{kp}::{kcast}, u.m::{mcast} FROM UNNEST($2::{mp}[]) AS u(m) \
                     ON CONFLICT ({kc}, {mc}) DO NOTHING"
                ),
            };
            let mut params = vec![owner()?, column.into_sql(self.member.kind)];
            if let (Some(value), Some(info)) = (self.value, &mm.value) {
                let as_column = mm.as_column(info);
                let mut column = Column::default();
                for v in values {
                    column.push(convert(&as_column, Some(value), v, key, false)?);
                }
                params.push(column.into_sql(value.kind));
            }
            statements.push((sql, params));
        }
        Ok(MembersStatements { statements })
    }
}
