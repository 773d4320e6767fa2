//! The process signals `serve` answers.

/// The process signals `serve` answers: SIGTERM and SIGINT stop it gracefully, SIGHUP reloads
/// the TLS files. Installed before the server starts, so that a signal arriving right after
/// it logs "listening" is not the default disposition (which would kill it mid-call).
pub struct Signals {
    #[cfg(unix)]
    streams: [tokio::signal::unix::Signal; 3],
}

#[derive(PartialEq, Eq)]
pub(crate) enum Signal {
    Stop,
    Reload,
}

impl Signals {
    pub fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams =
                [signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?, signal(SignalKind::hangup())?];
            Ok(Self { streams })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    pub(crate) async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            let [term, int, hup] = &mut self.streams;
            tokio::select! {
                _ = term.recv() => Signal::Stop,
                _ = int.recv() => Signal::Stop,
                _ = hup.recv() => Signal::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}
