//! The WAL stays bounded under a steady stream of commits: the writer's own checkpoints let
//! SQLite restart the log, so it does not grow with every transaction ever committed.

use time::OffsetDateTime;
use visa_core::money::Micros;
use visa_core::secret::SecretHash;
use visa_store::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_restarts_instead_of_growing_without_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let store = SqliteStore::open(&path).unwrap();
    let now = OffsetDateTime::now_utc();
    let audit = AuditContext { actor: Actor::Operator, ip: None, user_agent: None, now };
    let new = NewAccount { login: "wal".into(), password_hash: None, approved: true, credit: Micros::ZERO };
    let (account, member) = store.create_account(new, audit).await.unwrap();
    // One commit per session (a table page and a random page of its unique index each):
    // well over the writer's 8192-frame checkpoint line in total.
    for n in 0..6_000u32 {
        let mut hash = [0u8; 32];
        hash[..4].copy_from_slice(&n.wrapping_mul(2_654_435_761).to_be_bytes());
        let session = NewSession {
            account_id: account.id,
            member_id: member.id,
            token_hash: SecretHash(hash),
            created_at: now,
            expires_at: now + time::Duration::hours(1),
        };
        store.create_session(session).await.unwrap();
    }
    // Without restarts this run leaves a WAL of ~100 MB; the checkpoint line is 32 MiB.
    let wal = std::fs::metadata(dir.path().join("wal.db-wal")).unwrap().len();
    assert!(wal <= 36 * 1024 * 1024, "the WAL grew to {wal} bytes instead of restarting");
}
