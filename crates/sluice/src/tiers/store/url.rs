//! Store URLs: which backend one names, and how it may be shown in logs and error messages.

use std::path::PathBuf;

/// The backend a store URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite://PATH` (or `sqlite:PATH`): the file.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`.
    Postgres,
    /// `mysql://…` or `mariadb://…`.
    MySql,
}

impl Backend {
    /// The backend `url` names, or the scheme it does not know.
    pub fn of(url: &str) -> Result<Backend, String> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            return Ok(Backend::Sqlite(PathBuf::from(path)));
        }
        match url.split("://").next().unwrap_or(url) {
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            "mysql" | "mariadb" => Ok(Backend::MySql),
            scheme => Err(scheme.to_string()),
        }
    }
}

/// A URL with any password replaced by `***`, for logs and error messages.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') { ":***" } else { "" };
            let tail = tail.split('?').next().unwrap_or("");
            format!("{scheme}://{user}{masked}@{host}{tail}")
        }
        None => format!(
            "{scheme}://{authority}{}",
            tail.split('?').next().unwrap_or("")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_are_told_by_scheme() {
        assert_eq!(
            Backend::of("sqlite:///tmp/a.db"),
            Ok(Backend::Sqlite(PathBuf::from("/tmp/a.db")))
        );
        assert_eq!(
            Backend::of("sqlite:a.db"),
            Ok(Backend::Sqlite(PathBuf::from("a.db")))
        );
        assert_eq!(Backend::of("postgresql://h/d"), Ok(Backend::Postgres));
        assert_eq!(Backend::of("mariadb://h/d"), Ok(Backend::MySql));
        assert_eq!(Backend::of("redis://h"), Err("redis".to_string()));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://me:secret@db:5432/app?sslmode=disable"),
            "postgres://me:***@db:5432/app"
        );
        assert_eq!(
            redact_url("mysql://root@127.0.0.1/test"),
            "mysql://root@127.0.0.1/test"
        );
    }
}
