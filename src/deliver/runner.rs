//! The queue runner: one thread that walks the queue and delivers what it can.
//! It runs at start-up (a box that rebooted resumes its queue), whenever a new
//! message is queued, and every `queue_interval` otherwise.
//!
//! Until forwarding lands, only local recipients are delivered; others stay
//! queued.

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread;

use super::local::deliver_local;
use crate::config::Config;
use crate::spool::queue::RecipientState;
use crate::spool::{Spool, SpoolError};
use crate::time::unix_now;

/// Wakes the queue runner; cheap, never blocks, and many wakes in a row
/// while the runner is busy make one more run, not many.
#[derive(Clone)]
pub struct QueueWaker(SyncSender<()>);

impl QueueWaker {
    pub fn wake(&self) {
        match self.0.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => log::error!("the queue runner is gone"),
        }
    }
}

pub struct QueueRunner {
    config: Arc<Config>,
    spool: Arc<Spool>,
}

impl QueueRunner {
    pub fn new(config: Arc<Config>, spool: Arc<Spool>) -> QueueRunner {
        QueueRunner { config, spool }
    }

    /// Starts the runner's thread; it runs the queue at once.
    pub fn start(self) -> std::io::Result<QueueWaker> {
        let (sender, receiver) = sync_channel(1);
        thread::Builder::new()
            .name("queue".to_string())
            .spawn(move || self.run_forever(receiver))?;
        Ok(QueueWaker(sender))
    }

    fn run_forever(self, wakes: Receiver<()>) {
        loop {
            // A panic here must not stop delivery for good.
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_once()));
            if run.is_err() {
                log::error!("queue run panicked; retrying at the next run");
            }
            match wakes.recv_timeout(self.config.queue_interval) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Walks the whole queue once.
    pub fn run_once(&self) {
        let ids = match self.spool.list() {
            Ok(ids) => ids,
            Err(e) => {
                log::error!("cannot list the queue: {e}");
                return;
            }
        };
        for id in ids {
            if let Err(e) = self.process(&id) {
                log::error!("{id}: {e}");
            }
        }
    }

    fn process(&self, id: &str) -> Result<(), SpoolError> {
        let mut envelope = self.spool.read_envelope(id)?;
        let sender = envelope.sender_text();
        let delay = unix_now().saturating_sub(envelope.arrival);
        let mut changed = false;
        for recipient in &mut envelope.recipients {
            if recipient.state != RecipientState::Queued
                || !self.config.is_local_domain(&recipient.address.domain)
            {
                continue;
            }
            changed = true;
            recipient.attempts += 1;
            let mut message = self.spool.open_message(id)?;
            match deliver_local(
                &self.config.mailbox_dir,
                &self.config.hostname,
                &sender,
                &recipient.address,
                &mut message,
            ) {
                Ok(path) => {
                    recipient.state = RecipientState::Delivered;
                    recipient.last_error = None;
                    log::info!(
                        "{id}: to=<{}> relay=local path={} delay={delay}s status=delivered",
                        recipient.address,
                        path.display()
                    );
                }
                Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                    recipient.state = RecipientState::Failed;
                    recipient.last_error = Some(format!("550 5.1.3 {e}"));
                    log::warn!(
                        "{id}: to=<{}> relay=local status=failed ({e})",
                        recipient.address
                    );
                }
                Err(e) => {
                    recipient.last_error = Some(format!("451 4.3.0 local delivery: {e}"));
                    log::warn!(
                        "{id}: to=<{}> relay=local status=deferred ({e})",
                        recipient.address
                    );
                }
            }
        }
        if envelope.is_done() {
            self.spool.remove(id)
        } else if changed {
            self.spool.update_envelope(&envelope)
        } else {
            Ok(())
        }
    }
}
