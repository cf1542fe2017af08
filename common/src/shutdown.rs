//! The one shutdown path: SIGINT or SIGTERM starts a graceful stop; a second signal exits
//! at once. Long-lived tasks hold a [`Shutdown`] and stop when it fires.

use tokio::sync::watch;

/// Fires once, for every clone.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// Triggers a [`Shutdown`]. Dropping it also triggers it.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }
}

impl Drop for ShutdownTrigger {
    fn drop(&mut self) {
        let _ = self.tx.send(true);
    }
}

impl Shutdown {
    /// A shutdown that fires when the trigger is used or dropped.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger { tx }, Shutdown { rx })
    }

    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown has been triggered.
    pub async fn wait(&mut self) {
        // An error means the trigger is gone, which also means stop.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }

    /// A shutdown driven by SIGINT/SIGTERM. The second signal exits the process with
    /// status 130 without draining.
    pub fn on_signals() -> Shutdown {
        let (trigger, shutdown) = Shutdown::new();
        tokio::spawn(async move {
            signal().await;
            tracing::info!("shutdown requested, draining (signal again to exit now)");
            trigger.trigger();
            signal().await;
            tracing::warn!("second signal, exiting without draining");
            std::process::exit(130);
        });
        shutdown
    }
}

/// Resolves on the next SIGINT or SIGTERM.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_trigger() {
        let (trigger, shutdown) = Shutdown::new();
        let mut a = shutdown.clone();
        let mut b = shutdown;
        assert!(!a.is_triggered());
        trigger.trigger();
        a.wait().await;
        b.wait().await;
        assert!(b.is_triggered());
    }

    #[tokio::test]
    async fn dropping_the_trigger_fires() {
        let (trigger, mut shutdown) = Shutdown::new();
        drop(trigger);
        shutdown.wait().await;
    }
}
