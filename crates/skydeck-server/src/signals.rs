//! Wake-ups keyed by request id: "its log grew" and "it finished".
//!
//! A waiter subscribes *before* it reads the state it waits on, so a change
//! between the read and the wait is never missed. Entries exist only while
//! someone waits, so the map stays as small as the number of open streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Default)]
pub struct Signals {
    waiting: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Signals {
    pub fn subscribe(self: &Arc<Self>, id: &str) -> Subscription {
        let notify = self
            .waiting
            .lock()
            .expect("signals lock")
            .entry(id.to_owned())
            .or_default()
            .clone();
        Subscription {
            signals: self.clone(),
            id: id.to_owned(),
            notify,
        }
    }

    /// Wakes everyone waiting on `id`.
    pub fn notify(&self, id: &str) {
        let notify = self.waiting.lock().expect("signals lock").get(id).cloned();
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.waiting.lock().expect("signals lock").len()
    }
}

pub struct Subscription {
    signals: Arc<Signals>,
    id: String,
    notify: Arc<Notify>,
}

impl Subscription {
    /// A future that completes at the next `notify` for this id. Create it,
    /// then check the state, then await it.
    pub fn notified(&self) -> std::pin::Pin<Box<tokio::sync::futures::Notified<'_>>> {
        let mut notified = Box::pin(self.notify.notified());
        notified.as_mut().enable();
        notified
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut waiting = self.signals.waiting.lock().expect("signals lock");
        // Two holders left means the map and us: nobody else waits.
        if Arc::strong_count(&self.notify) <= 2 {
            waiting.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_notification_after_subscribing_is_never_missed() {
        let signals = Arc::new(Signals::default());
        let sub = signals.subscribe("r1");
        let notified = sub.notified();
        signals.notify("r1");
        tokio::time::timeout(std::time::Duration::from_secs(5), notified)
            .await
            .expect("the notification must be delivered");
    }

    #[tokio::test]
    async fn entries_live_only_while_someone_waits() {
        let signals = Arc::new(Signals::default());
        let a = signals.subscribe("r1");
        let b = signals.subscribe("r1");
        drop(a);
        assert_eq!(signals.len(), 1);
        drop(b);
        assert_eq!(signals.len(), 0);
        signals.notify("r1");
        assert_eq!(signals.len(), 0, "notify must not create entries");
    }
}
