//! How the queue tells whoever listens (the queue runner) that it has news:
//! a producer that committed an entry announces it, and the listener takes
//! it up by its id without reading the whole of new/. The server and the
//! sendmail entry point announce; only the daemon listens.

use std::sync::Arc;

/// What the queue announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueNews {
    /// This process queued the entry with this id.
    Queued(String),
    /// Everything should be tried now, deferred mail too (SIGUSR1,
    /// `tinymta flush`).
    Flush,
}

/// Hands the queue's news to its listener; cheap, never blocks.
#[derive(Clone)]
pub struct QueueWaker {
    listener: Option<Arc<dyn Fn(QueueNews) + Send + Sync>>,
}

impl QueueWaker {
    /// A waker whose news goes to `listener`, which must not block.
    pub fn new(listener: impl Fn(QueueNews) + Send + Sync + 'static) -> QueueWaker {
        QueueWaker {
            listener: Some(Arc::new(listener)),
        }
    }

    /// A waker no one listens to (`sendmail -bs`): the daemon finds new
    /// mail by watching the spool instead.
    pub fn detached() -> QueueWaker {
        QueueWaker { listener: None }
    }

    /// An entry was committed into new/.
    pub fn queued(&self, id: &str) {
        self.announce(QueueNews::Queued(id.to_string()));
    }

    /// Runs the whole queue now, deferred messages too.
    pub fn flush(&self) {
        self.announce(QueueNews::Flush);
    }

    fn announce(&self, news: QueueNews) {
        if let Some(listener) = &self.listener {
            listener(news);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn news_reaches_the_listener_and_a_detached_waker_drops_it() {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let ear = Arc::clone(&heard);
        let waker = QueueWaker::new(move |news| ear.lock().unwrap().push(news));
        waker.clone().queued("A1");
        waker.flush();
        QueueWaker::detached().queued("B2");
        assert_eq!(
            *heard.lock().unwrap(),
            [QueueNews::Queued("A1".to_string()), QueueNews::Flush]
        );
    }
}
