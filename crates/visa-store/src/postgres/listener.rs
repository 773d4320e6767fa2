//! LISTEN on a connection of its own for the `auth_version` trigger's notifications, so a
//! node forgets cached credentials as soon as another node's change commits. A dropped
//! connection is opened again; each time listening starts, the signal fires (anything may have
//! changed while nobody listened). The node's periodic `auth_version` poll covers the gaps.

use super::Pool;
use postgres::fallible_iterator::FallibleIterator;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// The channel the trigger notifies on (`visa_auth_changed` in `schema`).
const CHANNEL: &str = "visa_auth";
/// How often the thread wakes to see whether its engine is gone, and waits between attempts
/// to connect.
const TICK: Duration = Duration::from_secs(1);

/// Starts the listening thread; it ends within `TICK` of the pool being dropped.
pub(super) fn spawn(pool: Weak<Pool>, signal: Arc<Notify>) {
    let spawned = std::thread::Builder::new().name("visa-pg-listen".into()).spawn(move || listen(&pool, &signal));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the PostgreSQL listener; key changes are polled");
    }
}

fn listen(pool: &Weak<Pool>, signal: &Notify) {
    loop {
        let Some(connected) = pool.upgrade().map(|pool| pool.connect()) else { return };
        let mut conn = match connected {
            Ok(conn) => conn,
            Err(_) => {
                std::thread::sleep(TICK);
                continue;
            }
        };
        if conn.client.batch_execute(&format!("LISTEN {CHANNEL}")).is_err() {
            std::thread::sleep(TICK);
            continue;
        }
        signal.notify_one();
        loop {
            let next = conn.client.notifications().timeout_iter(TICK).next();
            match next {
                Ok(Some(_)) => signal.notify_one(),
                Err(_) => break,
                Ok(None) if pool.strong_count() == 0 => return,
                Ok(None) if conn.client.is_closed() => break,
                Ok(None) => {}
            }
        }
    }
}
