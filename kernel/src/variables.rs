//! Runbook variables: `%set NAME=VALUE` defines them, and `$NAME` / `${NAME}`
//! expand in magic arguments, as in IPython (`$$` is a literal `$`). A runbook
//! run by papermill or `runbook-kernel exec` gets its parameters this way.

use std::collections::BTreeMap;

/// The longest value a variable may hold, in characters.
pub const MAX_VALUE_CHARS: usize = 4096;
/// The most variables a session holds.
pub const MAX_VARIABLES: usize = 256;

/// The session's variables, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variables(BTreeMap<String, String>);

/// Why a variable could not be set or expanded, saying what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariableError {
    #[error(
        "'{0}' is not a variable name; accepted: a letter or _ then letters, digits or _ (at most 64)"
    )]
    BadName(String),
    #[error("the value of {name} has {chars} characters; at most {MAX_VALUE_CHARS} are accepted")]
    TooLong { name: String, chars: usize },
    #[error("the value of {0} contains a NUL character, which no magic accepts")]
    Nul(String),
    #[error("at most {MAX_VARIABLES} variables can be set; %set --unset NAME frees one")]
    TooMany,
    #[error("expected NAME=VALUE, got '{0}'; example: %set control=EC2.13")]
    NotAssignment(String),
    #[error(
        "${name} is not defined{known}; define it with %set {name}=VALUE (or write $$ for a literal $)"
    )]
    Unknown { name: String, known: String },
    #[error("'${{' is not closed in '{0}'; write ${{NAME}}, or $$ for a literal $")]
    Unclosed(String),
}

pub fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

impl Variables {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn set(&mut self, name: &str, value: &str) -> Result<(), VariableError> {
        if !is_name(name) {
            return Err(VariableError::BadName(name.to_string()));
        }
        let chars = value.chars().count();
        if chars > MAX_VALUE_CHARS {
            return Err(VariableError::TooLong {
                name: name.to_string(),
                chars,
            });
        }
        if value.contains('\0') {
            return Err(VariableError::Nul(name.to_string()));
        }
        if !self.0.contains_key(name) && self.0.len() >= MAX_VARIABLES {
            return Err(VariableError::TooMany);
        }
        self.0.insert(name.to_string(), value.to_string());
        Ok(())
    }

    /// `NAME=VALUE`, the value kept exactly (it may be empty).
    pub fn assign(&mut self, assignment: &str) -> Result<String, VariableError> {
        let (name, value) = assignment
            .split_once('=')
            .ok_or_else(|| VariableError::NotAssignment(assignment.to_string()))?;
        self.set(name.trim(), value)?;
        Ok(name.trim().to_string())
    }

    pub fn unset(&mut self, name: &str) -> bool {
        self.0.remove(name).is_some()
    }

    /// `text` with `$NAME` and `${NAME}` replaced by their values and `$$` by `$`.
    /// A `$` not followed by a name (`$5`, a lone `$`) stays as written.
    pub fn expand(&self, text: &str) -> Result<String, VariableError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(more) = after.strip_prefix('$') {
                out.push('$');
                rest = more;
            } else if let Some(braced) = after.strip_prefix('{') {
                let end = braced
                    .find('}')
                    .ok_or_else(|| VariableError::Unclosed(text.to_string()))?;
                out.push_str(self.value_of(&braced[..end])?);
                rest = &braced[end + 1..];
            } else {
                let len = after
                    .char_indices()
                    .take_while(|(i, c)| {
                        c.is_ascii_alphanumeric() && (*i > 0 || !c.is_ascii_digit()) || *c == '_'
                    })
                    .map(|(i, c)| i + c.len_utf8())
                    .last()
                    .unwrap_or(0);
                if len == 0 {
                    out.push('$');
                    rest = after;
                } else {
                    out.push_str(self.value_of(&after[..len])?);
                    rest = &after[len..];
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    fn value_of(&self, name: &str) -> Result<&str, VariableError> {
        self.get(name).ok_or_else(|| VariableError::Unknown {
            name: name.to_string(),
            known: if self.0.is_empty() {
                " (no variables are set)".to_string()
            } else {
                format!(
                    " (set: {})",
                    self.0.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            },
        })
    }
}

/// Whether `text` refers to a variable (so it can only be checked once earlier
/// lines of the cell have run).
pub fn refers_to_variables(text: &str) -> bool {
    text.contains('$')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn vars() -> Variables {
        let mut v = Variables::default();
        v.assign("control=EC2.13").unwrap();
        v.assign("severity=CRITICAL,HIGH").unwrap();
        v.assign("note=two words").unwrap();
        v
    }

    #[test]
    fn names_and_braces_expand_and_dollar_dollar_is_a_dollar() {
        let v = vars();
        assert_eq!(v.expand("--control $control").unwrap(), "--control EC2.13");
        assert_eq!(v.expand("${control}x").unwrap(), "EC2.13x");
        assert_eq!(v.expand("$severity,LOW").unwrap(), "CRITICAL,HIGH,LOW");
        assert_eq!(
            v.expand("cost $$5 and $5 and $").unwrap(),
            "cost $5 and $5 and $"
        );
        assert_eq!(v.expand("$note").unwrap(), "two words");
        assert_eq!(v.expand("no refs").unwrap(), "no refs");
    }

    #[test]
    fn unknown_names_and_bad_input_are_named() {
        let v = vars();
        let err = v.expand("$nope").unwrap_err().to_string();
        assert!(
            err.contains("$nope is not defined") && err.contains("control"),
            "{err}"
        );
        assert!(matches!(
            v.expand("${control"),
            Err(VariableError::Unclosed(_))
        ));
        let mut v = Variables::default();
        assert!(matches!(v.assign("1x=2"), Err(VariableError::BadName(_))));
        assert!(matches!(
            v.assign("novalue"),
            Err(VariableError::NotAssignment(_))
        ));
        assert!(matches!(
            v.set("x", &"y".repeat(MAX_VALUE_CHARS + 1)),
            Err(VariableError::TooLong { .. })
        ));
        v.assign("empty=").unwrap();
        assert_eq!(v.get("empty"), Some(""));
        assert_eq!(v.expand("[$empty]").unwrap(), "[]");
    }
}
