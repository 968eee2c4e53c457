//! The local signing key: an ECDSA P-256 key in a PKCS#8 PEM file of the data directory,
//! made on first start (readable by its owner only) and kept across restarts, so that a
//! document sealed yesterday still verifies today.

use std::path::Path;

use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};

use crate::sealing::{KeySigner, SignError};

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "signing-key.pem";

/// The signer of the key in `path`, made there if there is none. A file that is not a
/// P-256 PKCS#8 key is an error naming the file (never replaced: documents signed with it
/// would stop verifying).
pub fn load_or_create(path: &Path) -> Result<KeySigner, SignError> {
    let failed = |e: std::io::Error| SignError::Key(format!("{}: {e}", path.display()));
    match std::fs::read_to_string(path) {
        Ok(pem) => read(path, &pem),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let signer = KeySigner::random();
            let pem = signer
                .signing_key()
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| SignError::Key(format!("encoding the new key: {e}")))?;
            // Written whole beside it, then linked into place, which fails if another
            // process linked its own first: the file is never seen half written, and two
            // processes starting at once end on the same key.
            let tmp = path.with_extension(format!("tmp-{}", ulid::Ulid::new()));
            write_private(&tmp, pem.as_bytes()).map_err(failed)?;
            let linked = std::fs::hard_link(&tmp, path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => Ok(signer),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path, &std::fs::read_to_string(path).map_err(failed)?),
                Err(e) => Err(failed(e)),
            }
        }
        Err(e) => Err(failed(e)),
    }
}

fn read(path: &Path, pem: &str) -> Result<KeySigner, SignError> {
    p256::ecdsa::SigningKey::from_pkcs8_pem(pem)
        .map(KeySigner::new)
        .map_err(|e| SignError::Key(format!("{}: not a P-256 PKCS#8 key: {e}", path.display())))
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealing::Signer as _;

    #[test]
    fn the_key_is_made_once_and_read_back_the_same() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(KEY_FILE);
        let first = load_or_create(&path).expect("made");
        let again = load_or_create(&path).expect("read");
        assert_eq!(first.key_id(), again.key_id());
        assert_eq!(first.verifying_key(), again.verifying_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "readable by its owner only: {mode:o}");
        }
    }

    #[test]
    fn processes_starting_at_once_end_on_one_key() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(KEY_FILE);
        let kids: Vec<Vec<u8>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4).map(|_| s.spawn(|| load_or_create(&path).expect("a key"))).collect();
            handles.into_iter().map(|h| h.join().expect("joined").key_id().to_vec()).collect()
        });
        assert!(kids.windows(2).all(|w| w[0] == w[1]), "one key: {kids:?}");
        let leftovers = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(leftovers, 1, "no temporary file is left");
    }

    #[test]
    fn a_file_that_is_not_a_key_is_refused_and_kept() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(KEY_FILE);
        std::fs::write(&path, "not a key").expect("write");
        let err = load_or_create(&path).expect_err("refused");
        assert!(err.to_string().contains(KEY_FILE), "{err}");
        assert_eq!(std::fs::read_to_string(&path).expect("kept"), "not a key");
    }
}
