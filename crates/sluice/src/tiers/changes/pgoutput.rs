//! The messages of PostgreSQL's `pgoutput` plugin (protocol version 1) that change capture
//! needs: relations (a table's columns, sent before its first change in a session), inserts,
//! updates, deletes and truncates. Begin and commit arrive already parsed from the
//! replication client; other messages (types, origins) are skipped.

use bytes::Bytes;

/// A table as the stream describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// The relation's OID, which changes refer to.
    pub id: u32,
    /// Its schema.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its columns' names, in order.
    pub columns: Vec<String>,
}

/// A column value of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datum {
    /// NULL.
    Null,
    /// A TOASTed value the change did not touch: not sent.
    Unchanged,
    /// The value in PostgreSQL's text output form.
    Text(Bytes),
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A table's description.
    Relation(Relation),
    /// A row inserted.
    Insert { relation: u32, new: Vec<Datum> },
    /// A row updated: its old key (or whole old row) when the table's replica identity sends
    /// one (the key changed, or `REPLICA IDENTITY FULL`), and the new row.
    Update {
        relation: u32,
        old: Option<Vec<Datum>>,
        new: Vec<Datum>,
    },
    /// A row deleted: its key (or whole row), as the replica identity says.
    Delete { relation: u32, old: Vec<Datum> },
    /// Tables truncated.
    Truncate { relations: Vec<u32> },
    /// Anything else (types, origins, begin and commit if they come this way).
    Other,
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| Malformed(format!("message ends at byte {}", self.data.len())))?;
        let out = &self.data[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Malformed> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, Malformed> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn cstring(&mut self) -> Result<String, Malformed> {
        let rest = &self.data[self.at..];
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| Malformed("a name is not NUL-terminated".into()))?;
        let s = String::from_utf8_lossy(&rest[..len]).into_owned();
        self.at += len + 1;
        Ok(s)
    }
    fn tuple(&mut self, data: &Bytes) -> Result<Vec<Datum>, Malformed> {
        let n = self.u16()? as usize;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(match self.u8()? {
                b'n' => Datum::Null,
                b'u' => Datum::Unchanged,
                b't' | b'b' => {
                    let len = self.u32()? as usize;
                    let start = self.at;
                    self.take(len)?;
                    Datum::Text(data.slice(start..start + len))
                }
                other => return Err(Malformed(format!("column kind {:?}", other as char))),
            });
        }
        Ok(out)
    }
}

/// Decodes one `pgoutput` message.
pub fn decode(data: &Bytes) -> Result<Message, Malformed> {
    let mut c = Cursor { data, at: 0 };
    Ok(match c.u8()? {
        b'R' => {
            let id = c.u32()?;
            let namespace = c.cstring()?;
            let name = c.cstring()?;
            let _replica_identity = c.u8()?;
            let n = c.u16()? as usize;
            let mut columns = Vec::with_capacity(n);
            for _ in 0..n {
                let _flags = c.u8()?;
                columns.push(c.cstring()?);
                let _type_oid = c.u32()?;
                let _type_modifier = c.u32()?;
            }
            Message::Relation(Relation {
                id,
                namespace,
                name,
                columns,
            })
        }
        b'I' => {
            let relation = c.u32()?;
            expect(&mut c, b'N')?;
            Message::Insert {
                relation,
                new: c.tuple(data)?,
            }
        }
        b'U' => {
            let relation = c.u32()?;
            let mut old = None;
            let mut kind = c.u8()?;
            if kind == b'K' || kind == b'O' {
                old = Some(c.tuple(data)?);
                kind = c.u8()?;
            }
            if kind != b'N' {
                return Err(Malformed(format!(
                    "update without a new tuple ({:?})",
                    kind as char
                )));
            }
            Message::Update {
                relation,
                old,
                new: c.tuple(data)?,
            }
        }
        b'D' => {
            let relation = c.u32()?;
            let kind = c.u8()?;
            if kind != b'K' && kind != b'O' {
                return Err(Malformed(format!(
                    "delete with tuple kind {:?}",
                    kind as char
                )));
            }
            Message::Delete {
                relation,
                old: c.tuple(data)?,
            }
        }
        b'T' => {
            let n = c.u32()? as usize;
            let _options = c.u8()?;
            let relations = (0..n).map(|_| c.u32()).collect::<Result<_, _>>()?;
            Message::Truncate { relations }
        }
        _ => Message::Other,
    })
}

fn expect(c: &mut Cursor<'_>, want: u8) -> Result<(), Malformed> {
    let got = c.u8()?;
    if got != want {
        return Err(Malformed(format!(
            "expected {:?}, got {:?}",
            want as char, got as char
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relation_bytes() -> Bytes {
        let mut b = vec![b'R'];
        b.extend_from_slice(&16384u32.to_be_bytes());
        b.extend_from_slice(b"public\0products\0");
        b.push(b'd');
        b.extend_from_slice(&2u16.to_be_bytes());
        for name in ["id", "price"] {
            b.push(1);
            b.extend_from_slice(name.as_bytes());
            b.push(0);
            b.extend_from_slice(&23u32.to_be_bytes());
            b.extend_from_slice(&u32::MAX.to_be_bytes());
        }
        Bytes::from(b)
    }

    fn tuple(values: &[Option<&str>]) -> Vec<u8> {
        let mut b = (values.len() as u16).to_be_bytes().to_vec();
        for v in values {
            match v {
                None => b.push(b'n'),
                Some(v) => {
                    b.push(b't');
                    b.extend_from_slice(&(v.len() as u32).to_be_bytes());
                    b.extend_from_slice(v.as_bytes());
                }
            }
        }
        b
    }

    #[test]
    fn relations_inserts_updates_deletes_and_truncates_decode() {
        assert_eq!(
            decode(&relation_bytes()).unwrap(),
            Message::Relation(Relation {
                id: 16384,
                namespace: "public".into(),
                name: "products".into(),
                columns: vec!["id".into(), "price".into()],
            })
        );
        let mut insert = vec![b'I'];
        insert.extend_from_slice(&16384u32.to_be_bytes());
        insert.push(b'N');
        insert.extend(tuple(&[Some("7"), None]));
        assert_eq!(
            decode(&Bytes::from(insert)).unwrap(),
            Message::Insert {
                relation: 16384,
                new: vec![Datum::Text(Bytes::from_static(b"7")), Datum::Null],
            }
        );
        let mut update = vec![b'U'];
        update.extend_from_slice(&16384u32.to_be_bytes());
        update.push(b'K');
        update.extend(tuple(&[Some("7"), None]));
        update.push(b'N');
        update.extend(tuple(&[Some("8"), Some("1.5")]));
        let Message::Update { old, new, .. } = decode(&Bytes::from(update)).unwrap() else {
            panic!("not an update");
        };
        assert_eq!(old.unwrap()[0], Datum::Text(Bytes::from_static(b"7")));
        assert_eq!(new[1], Datum::Text(Bytes::from_static(b"1.5")));
        let mut delete = vec![b'D'];
        delete.extend_from_slice(&16384u32.to_be_bytes());
        delete.push(b'K');
        delete.extend(tuple(&[Some("8"), None]));
        assert!(matches!(
            decode(&Bytes::from(delete)).unwrap(),
            Message::Delete {
                relation: 16384,
                ..
            }
        ));
        let mut truncate = vec![b'T'];
        truncate.extend_from_slice(&2u32.to_be_bytes());
        truncate.push(0);
        truncate.extend_from_slice(&1u32.to_be_bytes());
        truncate.extend_from_slice(&2u32.to_be_bytes());
        assert_eq!(
            decode(&Bytes::from(truncate)).unwrap(),
            Message::Truncate {
                relations: vec![1, 2]
            }
        );
    }

    #[test]
    fn truncated_or_garbled_messages_are_errors_not_panics() {
        let full = relation_bytes();
        for end in 0..full.len() {
            let _ = decode(&full.slice(..end));
        }
        assert!(decode(&full.slice(..10)).is_err());
        let mut bad = vec![b'I'];
        bad.extend_from_slice(&1u32.to_be_bytes());
        bad.push(b'N');
        bad.extend_from_slice(&1u16.to_be_bytes());
        bad.push(b't');
        bad.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&Bytes::from(bad)).is_err());
        assert_eq!(
            decode(&Bytes::from_static(b"Yxyz")).unwrap(),
            Message::Other
        );
    }
}
