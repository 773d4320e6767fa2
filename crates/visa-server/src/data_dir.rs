//! The data dir: one server per dir, and private to its owner.
//!
//! `serve` holds an exclusive OS lock on `<data-dir>/lock` for its whole life (the kernel
//! releases it when the process dies, `kill -9` included). A second server on the same dir is
//! refused before it opens the database, so it can never sweep the first one's in-flight calls
//! into `reconcile_required`.
//!
//! The dir is 0700 and every file in it 0600 (the database, its WAL and shared memory, the
//! lock, the operator token), whatever the umask: the database holds members' password hashes,
//! the audit log and stored results. `make_private` runs at start, after the database exists,
//! and says when it had to tighten something that was looser.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

pub const LOCK_FILE: &str = "lock";

/// Held while the server runs; dropping it releases the lock.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Makes the data dir 0700 and every file in it 0600, warning about each that was looser.
pub fn make_private(dir: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let tighten = |path: &Path, mode: u32| -> anyhow::Result<()> {
            let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
            if current & !mode != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{current:o}"), "tightening permissions to {mode:o}");
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            }
            Ok(())
        };
        tighten(dir, 0o700)?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                tighten(&entry.path(), 0o600)?;
            }
        }
    }
    Ok(())
}

/// Options that create a file 0600 (owner only, whatever the umask) and refuse, rather than
/// follow, a symlink in its place (it could point anywhere).
pub fn private_file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    options
}

/// Creates `path` empty with mode 0600 unless it exists: SQLite then gives the database's
/// `-wal` and `-shm` files the same mode, so none of them is ever readable by others, not
/// even for the moment before `make_private` runs.
pub fn create_private(path: &Path) -> anyhow::Result<()> {
    match private_file_options().write(true).create_new(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(anyhow::anyhow!("cannot create {}: {e}", path.display())),
    }
}

impl DataDirLock {
    /// Creates the data dir if needed and takes its lock, writing this process's id into the
    /// lock file; refuses, naming the holder's pid, when another process holds it.
    pub fn acquire(dir: &Path) -> anyhow::Result<Self> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|e| anyhow::anyhow!("cannot create data dir {}: {e}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let pid = if holder.is_empty() { "unknown".to_owned() } else { holder.to_owned() };
                anyhow::bail!(
                    "data dir {} is in use by another visa-cli serve (pid {pid}); stop it, or use another --data-dir",
                    dir.display()
                );
            }
            Err(TryLockError::Error(e)) => anyhow::bail!("cannot lock {}: {e}", path.display()),
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        file.sync_all()?;
        Ok(Self { _file: file })
    }
}

/// Writes `contents` to `path`, readable and writable by the owner only (0600 on Unix).
/// A symlink at `path` is refused, not followed (it could point anywhere).
pub fn write_private_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = private_file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    // `mode` applies only when the file is created; an older file is tightened too.
    #[cfg(unix)]
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}
