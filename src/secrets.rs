//! Secrets: references (`env:NAME`, `file:PATH`, `db:NAME`) resolved when used and never
//! logged, and secrets at rest — values stored in the database sealed with AES-256-GCM under a
//! master key from `EBOND_MASTER_KEY` or a key file created with mode 0600 on first use.

use crate::contract::SecretRef;
use crate::store::{Db, StoreError};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// A resolved secret; `Debug` does not show the value.
#[derive(Clone)]
pub struct Secret(secrecy::SecretString);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        use secrecy::ExposeSecret;
        self.0.expose_secret()
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
    #[error(
        "no secret `{name}` is stored for partner {partner}; set it with `ebond partner secret set {partner} {name}`"
    )]
    MissingDb { partner: String, name: String },
    #[error("`{0}` is not a secret reference (env:NAME, file:PATH or db:NAME)")]
    NotAReference(String),
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("a stored secret could not be decrypted (wrong master key, or tampered with)")]
    Unseal,
    #[error("encryption failed: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn parse_ref(s: &str) -> Result<SecretRef, SecretError> {
    SecretRef::parse(s).ok_or_else(|| SecretError::NotAReference("(hidden)".into()))
}

/// Resolves `env:` and `file:` references (no database needed).
pub fn resolve_local(r: &SecretRef) -> Result<Secret, SecretError> {
    match r {
        SecretRef::Env(name) => std::env::var(name).map(Secret::new).map_err(|_| SecretError::MissingEnv(name.clone())),
        SecretRef::File(path) => std::fs::read_to_string(path)
            .map(|s| Secret::new(s.trim_end_matches(['\n', '\r']).to_string()))
            .map_err(|e| SecretError::File { path: path.display().to_string(), reason: e.to_string() }),
        SecretRef::Db(name) => Err(SecretError::MissingDb { partner: "(none)".into(), name: name.clone() }),
    }
}

/// The AES-256 key that seals secrets stored in the database.
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

const SEAL_VERSION: &str = "v1";

impl MasterKey {
    /// `EBOND_MASTER_KEY` (base64 of 32 bytes) if set, else `file` — created with 32 random
    /// bytes and mode 0600 when it does not exist.
    pub fn load(file: &Path) -> Result<MasterKey, SecretError> {
        if let Ok(b64) = std::env::var("EBOND_MASTER_KEY") {
            return Self::from_b64(b64.trim())
                .map_err(|_| SecretError::MasterKey("EBOND_MASTER_KEY must be base64 of 32 bytes".into()));
        }
        match std::fs::read_to_string(file) {
            Ok(text) => Self::from_b64(text.trim())
                .map_err(|_| SecretError::MasterKey(format!("{} does not hold base64 of 32 bytes", file.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match Self::create(file) {
                // Another process created it first: read theirs once it is written.
                Err(SecretError::MasterKey(m)) if m.contains("exists") => {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    let text = std::fs::read_to_string(file)
                        .map_err(|e| SecretError::MasterKey(format!("cannot read {}: {e}", file.display())))?;
                    Self::from_b64(text.trim()).map_err(|_| {
                        SecretError::MasterKey(format!("{} does not hold base64 of 32 bytes", file.display()))
                    })
                }
                other => other,
            },
            Err(e) => Err(SecretError::MasterKey(format!("cannot read {}: {e}", file.display()))),
        }
    }

    fn from_b64(text: &str) -> Result<MasterKey, ()> {
        let bytes = B64.decode(text).map_err(|_| ())?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| ())?;
        Ok(MasterKey(key))
    }

    fn create(file: &Path) -> Result<MasterKey, SecretError> {
        use std::io::Write;
        let mut key = [0u8; 32];
        openssl::rand::rand_bytes(&mut key)?;
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| SecretError::MasterKey(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f =
            options.open(file).map_err(|e| SecretError::MasterKey(format!("cannot create {}: {e}", file.display())))?;
        f.write_all(B64.encode(key).as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| SecretError::MasterKey(format!("cannot write {}: {e}", file.display())))?;
        tracing::info!(path = %file.display(), "master key created (mode 0600); back it up: without it stored secrets are lost");
        Ok(MasterKey(key))
    }

    /// AES-256-GCM with a random 96-bit nonce; `context` (partner and name) is authenticated
    /// so a sealed value cannot be moved to another secret.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<String, SecretError> {
        let mut nonce = [0u8; 12];
        openssl::rand::rand_bytes(&mut nonce)?;
        let mut tag = [0u8; 16];
        let ct = encrypt_aead(Cipher::aes_256_gcm(), &self.0, Some(&nonce), context.as_bytes(), plaintext, &mut tag)?;
        let mut blob = Vec::with_capacity(12 + ct.len() + 16);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        blob.extend_from_slice(&tag);
        Ok(format!("{SEAL_VERSION}:{}", B64.encode(blob)))
    }

    pub fn open(&self, context: &str, sealed: &str) -> Result<Secret, SecretError> {
        let b64 = sealed.strip_prefix("v1:").ok_or(SecretError::Unseal)?;
        let blob = B64.decode(b64).map_err(|_| SecretError::Unseal)?;
        if blob.len() < 28 {
            return Err(SecretError::Unseal);
        }
        let (nonce, rest) = blob.split_at(12);
        let (ct, tag) = rest.split_at(rest.len() - 16);
        let plain = decrypt_aead(Cipher::aes_256_gcm(), &self.0, Some(nonce), context.as_bytes(), ct, tag)
            .map_err(|_| SecretError::Unseal)?;
        String::from_utf8(plain).map(Secret::new).map_err(|_| SecretError::Unseal)
    }
}

fn context(partner: &str, name: &str) -> String {
    format!("ebond-secret:{partner}:{name}")
}

/// Resolves any secret reference for a partner, `db:` ones from the database.
#[derive(Clone)]
pub struct Secrets {
    db: Db,
    key_file: PathBuf,
    key: Arc<OnceLock<Arc<MasterKey>>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").field("key_file", &self.key_file).finish_non_exhaustive()
    }
}

impl Secrets {
    pub fn new(db: Db, settings: &crate::config::Settings) -> Secrets {
        let key_file =
            settings.security.master_key_file.clone().unwrap_or_else(|| settings.data_dir.join("master.key"));
        Secrets { db, key_file, key: Arc::new(OnceLock::new()) }
    }

    /// The master key, loaded (or created) on first use; a failure is not cached, so a fixed
    /// key file is picked up without a restart.
    pub fn master_key(&self) -> Result<Arc<MasterKey>, SecretError> {
        if let Some(k) = self.key.get() {
            return Ok(k.clone());
        }
        let key = Arc::new(MasterKey::load(&self.key_file)?);
        Ok(self.key.get_or_init(|| key).clone())
    }

    /// Seals and stores a partner's secret.
    pub fn store(&self, partner: &str, name: &str, value: &str) -> Result<(), SecretError> {
        let sealed = self.master_key()?.seal(&context(partner, name), value.as_bytes())?;
        let now = crate::util::now_ms();
        let (partner, name) = (partner.to_string(), name.to_string());
        self.db.write_now(move |c| c.put_secret(&partner, &name, &sealed, now).map_err(StoreError::from))?;
        Ok(())
    }

    /// Resolves `r` for `partner` (blocking: call from a blocking context for `db:`).
    pub fn resolve_blocking(&self, partner: &str, r: &SecretRef) -> Result<Secret, SecretError> {
        match r {
            SecretRef::Db(name) => {
                let sealed = self.db.read_now(|c| c.get_secret(partner, name).map_err(StoreError::from))?;
                let sealed =
                    sealed.ok_or_else(|| SecretError::MissingDb { partner: partner.into(), name: name.clone() })?;
                self.master_key()?.open(&context(partner, name), &sealed)
            }
            other => resolve_local(other),
        }
    }

    pub async fn resolve(&self, partner: &str, r: &SecretRef) -> Result<Secret, SecretError> {
        match r {
            SecretRef::Db(_) => {
                let (this, partner, r) = (self.clone(), partner.to_string(), r.clone());
                tokio::task::spawn_blocking(move || this.resolve_blocking(&partner, &r))
                    .await
                    .map_err(|e| SecretError::Store(StoreError::Join(e.to_string())))?
            }
            other => resolve_local(other),
        }
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
        assert_eq!(resolve_local(&SecretRef::File(p)).unwrap().expose(), "abc");
        assert!(matches!(
            resolve_local(&SecretRef::Env("EBOND_SURELY_UNSET_VAR".into())),
            Err(SecretError::MissingEnv(_))
        ));
        assert!(parse_ref("plain").is_err());
    }

    #[test]
    fn master_key_file_is_created_0600_and_seals() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys/master.key");
        let key = MasterKey::load(&file).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let sealed = key.seal("ctx-a", b"s3cret").unwrap();
        assert!(!sealed.contains("s3cret"));
        assert_eq!(key.open("ctx-a", &sealed).unwrap().expose(), "s3cret");
        assert!(key.open("ctx-b", &sealed).is_err(), "bound to its context");
        let again = MasterKey::load(&file).unwrap();
        assert_eq!(again.open("ctx-a", &sealed).unwrap().expose(), "s3cret", "same key on reload");
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push('A');
        assert!(key.open("ctx-a", &tampered).is_err());
    }
}
