//! Secret references (`env:NAME`, `file:PATH`, `db:NAME`), resolved when used and never
//! logged. Contracts and settings hold only the reference.

use crate::contract::SecretRef;

/// A resolved secret; `Debug` does not show the value.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("cannot read secret file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("secret `{0}` is stored in the database, which this build does not read yet")]
    DbUnsupported(String),
    #[error("`{0}` is not a secret reference (env:NAME, file:PATH or db:NAME)")]
    NotAReference(String),
}

pub fn parse_ref(s: &str) -> Result<SecretRef, SecretError> {
    if let Some(n) = s.strip_prefix("env:").filter(|n| !n.is_empty()) {
        Ok(SecretRef::Env(n.into()))
    } else if let Some(p) = s.strip_prefix("file:").filter(|p| !p.is_empty()) {
        Ok(SecretRef::File(p.into()))
    } else if let Some(n) = s.strip_prefix("db:").filter(|n| !n.is_empty()) {
        Ok(SecretRef::Db(n.into()))
    } else {
        Err(SecretError::NotAReference("(hidden)".into()))
    }
}

pub fn resolve(r: &SecretRef) -> Result<Secret, SecretError> {
    match r {
        SecretRef::Env(name) => std::env::var(name)
            .map(Secret)
            .map_err(|_| SecretError::MissingEnv(name.clone())),
        SecretRef::File(path) => std::fs::read_to_string(path)
            .map(|s| Secret(s.trim_end_matches(['\n', '\r']).to_string()))
            .map_err(|e| SecretError::File {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        SecretRef::Db(name) => Err(SecretError::DbUnsupported(name.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value() {
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "Secret(***)");
    }

    #[test]
    fn file_and_missing_env() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "abc\n").unwrap();
        assert_eq!(resolve(&SecretRef::File(p)).unwrap().expose(), "abc");
        assert!(matches!(
            resolve(&SecretRef::Env("EBOND_SURELY_UNSET_VAR".into())),
            Err(SecretError::MissingEnv(_))
        ));
        assert!(parse_ref("plain").is_err());
    }
}
