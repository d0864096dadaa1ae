//! Key templates and keyspace routing: the first stage of the data path.
//!
//! A template such as `product:{id}:price` is literal text around exactly one capture. The
//! capture is the primary key of the mapped row; the literal parts must match byte for byte.

use crate::error::ConfigError;

/// A parsed key template: `prefix{capture}suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    prefix: Vec<u8>,
    capture_name: String,
    suffix: Vec<u8>,
}

impl KeyTemplate {
    /// Parses a template with exactly one `{name}` capture.
    pub fn parse(text: &str) -> Result<KeyTemplate, String> {
        let opens = text.matches('{').count();
        let closes = text.matches('}').count();
        if opens != 1 || closes != 1 {
            return Err(format!(
                "template {text:?} has {opens} captures; write exactly one, e.g. \"product:{{id}}:price\""
            ));
        }
        let open = text.find('{').unwrap_or(0);
        let close = text.find('}').unwrap_or(0);
        if close < open {
            return Err(format!("template {text:?} has '}}' before '{{'"));
        }
        let name = &text[open + 1..close];
        if name.is_empty() {
            return Err(format!(
                "template {text:?} has an unnamed capture; name it, e.g. {{id}}"
            ));
        }
        Ok(KeyTemplate {
            prefix: text.as_bytes()[..open].to_vec(),
            capture_name: name.to_string(),
            suffix: text.as_bytes()[close + 1..].to_vec(),
        })
    }

    /// The capture of `key`, if the key matches; the capture is never empty.
    pub fn capture<'k>(&self, key: &'k [u8]) -> Option<&'k [u8]> {
        if key.len() <= self.prefix.len() + self.suffix.len()
            || !key.starts_with(&self.prefix)
            || !key.ends_with(&self.suffix)
        {
            return None;
        }
        Some(&key[self.prefix.len()..key.len() - self.suffix.len()])
    }

    /// Byte range of the capture within `key`, if the key matches.
    pub fn capture_range(&self, key: &[u8]) -> Option<std::ops::Range<usize>> {
        self.capture(key)
            .map(|_| self.prefix.len()..key.len() - self.suffix.len())
    }

    /// The key whose capture is `capture`.
    pub fn render(&self, capture: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + capture.len() + self.suffix.len());
        key.extend_from_slice(&self.prefix);
        key.extend_from_slice(capture);
        key.extend_from_slice(&self.suffix);
        key
    }

    /// The capture's name, e.g. `id`.
    pub fn capture_name(&self) -> &str {
        &self.capture_name
    }

    /// The template as written.
    pub fn text(&self) -> String {
        format!(
            "{}{{{}}}{}",
            String::from_utf8_lossy(&self.prefix),
            self.capture_name,
            String::from_utf8_lossy(&self.suffix)
        )
    }
}

/// Checks that `name` is a plain SQL identifier (optionally `schema.table`), so it can be
/// quoted into SQL without any chance of injection.
pub fn validate_identifier(field: &str, name: &str) -> Result<(), ConfigError> {
    let ok_part = |p: &str| {
        let mut chars = p.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && p.len() <= 63
    };
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 2 || !parts.iter().all(|p| ok_part(p)) {
        return Err(ConfigError::invalid(
            field,
            format!(
                "{name:?} is not a plain SQL identifier; use letters, digits and '_' (optionally schema.table), starting with a letter or '_'"
            ),
        ));
    }
    Ok(())
}

/// Quotes a validated identifier for SQL (`"schema"."table"`).
pub fn quote_identifier(name: &str) -> String {
    name.split('.')
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_captures_the_middle() {
        let t = KeyTemplate::parse("product:{id}:price").unwrap();
        assert_eq!(t.capture(b"product:42:price"), Some(&b"42"[..]));
        assert_eq!(t.capture(b"product::price"), None);
        assert_eq!(t.capture(b"product:42:cost"), None);
        assert_eq!(t.render(b"7"), b"product:7:price".to_vec());
        assert_eq!(t.text(), "product:{id}:price");
    }

    #[test]
    fn template_needs_exactly_one_capture() {
        assert!(KeyTemplate::parse("product:price").is_err());
        assert!(KeyTemplate::parse("a:{x}:{y}").is_err());
        assert!(KeyTemplate::parse("a:{}").is_err());
        assert!(KeyTemplate::parse("user:{id}").is_ok());
    }

    #[test]
    fn identifiers_are_plain() {
        assert!(validate_identifier("t", "products").is_ok());
        assert!(validate_identifier("t", "public.products").is_ok());
        assert!(validate_identifier("t", "products; drop table x").is_err());
        assert!(validate_identifier("t", "1abc").is_err());
        assert!(validate_identifier("t", "a\"b").is_err());
        assert_eq!(
            quote_identifier("public.products"),
            "\"public\".\"products\""
        );
    }
}
