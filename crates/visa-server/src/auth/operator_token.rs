//! The operator token: from `VISA_OPERATOR_TOKEN`, else `<data-dir>/operator-token`
//! (generated there, mode 0600, on first start). It can create accounts, credit balances and
//! revoke keys anywhere, so the server refuses to run on one that may be known to others:
//! shorter than `MIN_LENGTH`, or read from a file that is a symlink, belongs to another user
//! or that others can read or write (whoever could read it holds it; replace it).

use std::path::Path;
use visa_core::key::random_token;

pub const FILE: &str = "operator-token";
/// 24 characters of a random token are over 128 bits; anything shorter is guessable in a
/// brute-force budget or was typed by hand.
pub const MIN_LENGTH: usize = 24;

/// The token to run with: `configured` if set, else the data dir's file (created if absent).
pub fn resolve(configured: Option<&str>, data_dir: &Path, may_generate: bool) -> anyhow::Result<String> {
    if let Some(token) = configured.map(str::trim).filter(|t| !t.is_empty()) {
        ensure_strong(token, "VISA_OPERATOR_TOKEN")?;
        return Ok(token.to_owned());
    }
    let path = data_dir.join(FILE);
    match std::fs::symlink_metadata(&path) {
        Ok(metadata) => {
            ensure_private(&path, &metadata)?;
            let token = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?
                .trim()
                .to_owned();
            ensure_strong(&token, &path.display().to_string())?;
            tracing::info!(path = %path.display(), "operator token read from file");
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !may_generate => Err(anyhow::anyhow!(
            "a server on a shared database needs the operator token every node uses: set VISA_OPERATOR_TOKEN \
             (or put it in {}); it is never generated per node",
            path.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = random_token("visa_operator");
            crate::write_private_file(&path, &token)?;
            tracing::info!(path = %path.display(), "operator token generated (mode 0600)");
            Ok(token)
        }
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

fn ensure_strong(token: &str, source: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        token.chars().count() >= MIN_LENGTH,
        "the operator token in {source} is {} characters; use at least {MIN_LENGTH} random ones \
         (e.g. `openssl rand -hex 32`), or unset it to have one generated",
        token.chars().count()
    );
    Ok(())
}

#[cfg(unix)]
fn ensure_private(path: &Path, metadata: &std::fs::Metadata) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let replace = "remove it (a new one is generated at start) or write a new token with mode 0600";
    anyhow::ensure!(
        metadata.file_type().is_file(),
        "{} is not a regular file (a symlink?); the operator token must be a file of its own: {replace}",
        path.display()
    );
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    anyhow::ensure!(
        metadata.uid() == me,
        "{} belongs to user {}, not to the server's user {me}: {replace}",
        path.display(),
        metadata.uid()
    );
    let mode = metadata.mode() & 0o777;
    anyhow::ensure!(
        mode & 0o077 == 0,
        "{} is readable or writable by others (mode {mode:o}), so the token may be known: {replace}",
        path.display()
    );
    Ok(())
}

#[cfg(not(unix))]
fn ensure_private(_: &Path, _: &std::fs::Metadata) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_tokens_are_refused_wherever_they_come_from() {
        let dir = tempfile::tempdir().unwrap();
        let error = resolve(Some("hunter2"), dir.path(), true).unwrap_err().to_string();
        assert!(error.contains("VISA_OPERATOR_TOKEN is 7 characters"), "{error}");
        assert_eq!(
            resolve(Some("a-long-enough-operator-token"), dir.path(), true).unwrap(),
            "a-long-enough-operator-token"
        );
        std::fs::write(dir.path().join(FILE), "short\n").unwrap();
        #[cfg(unix)]
        std::fs::set_permissions(dir.path().join(FILE), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        assert!(resolve(None, dir.path(), true).unwrap_err().to_string().contains("5 characters"));
    }

    #[test]
    fn a_node_on_a_shared_database_never_generates_its_own_token() {
        let dir = tempfile::tempdir().unwrap();
        let error = resolve(None, dir.path(), false).unwrap_err().to_string();
        assert!(error.contains("VISA_OPERATOR_TOKEN") && error.contains("never generated per node"), "{error}");
        assert!(!dir.path().join(FILE).exists(), "nothing was written");
        assert_eq!(
            resolve(Some("a-long-enough-operator-token"), dir.path(), false).unwrap(),
            "a-long-enough-operator-token"
        );
    }

    #[test]
    fn a_generated_token_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let token = resolve(None, dir.path(), true).unwrap();
        assert!(token.len() >= MIN_LENGTH);
        assert_eq!(resolve(None, dir.path(), true).unwrap(), token);
    }

    #[cfg(unix)]
    #[test]
    fn a_token_file_others_can_read_or_a_symlink_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        std::fs::write(&path, "visa_operator_0123456789abcdef0123").unwrap();
        for mode in [0o644, 0o640, 0o602] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = resolve(None, dir.path(), true).unwrap_err().to_string();
            assert!(error.contains(&format!("mode {mode:o}")), "{error}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        resolve(None, dir.path(), true).unwrap();

        let elsewhere = tempfile::tempdir().unwrap();
        let target = elsewhere.path().join("token");
        std::fs::rename(&path, &target).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(resolve(None, dir.path(), true).unwrap_err().to_string().contains("not a regular file"));
    }
}
