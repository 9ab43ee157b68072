//! The last requests this process finished, kept in memory.
//!
//! A client asks for a result right after the request finishes (`/api/get`
//! is usually already waiting), so answering from here saves reading back
//! the row that was just written. A finished request never changes again,
//! so an entry cannot go stale.

use skydeck_store::RequestRecord;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Enough for every client waiting at once; older results come from the
/// database.
const CAPACITY: usize = 256;

#[derive(Default)]
pub struct RecentlyFinished {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    order: VecDeque<String>,
    records: HashMap<String, Arc<RequestRecord>>,
}

impl RecentlyFinished {
    pub fn insert(&self, record: RequestRecord) {
        let mut inner = self.inner.lock().expect("finished lock");
        if inner.order.len() == CAPACITY
            && let Some(oldest) = inner.order.pop_front()
        {
            inner.records.remove(&oldest);
        }
        inner.order.push_back(record.id.clone());
        inner.records.insert(record.id.clone(), Arc::new(record));
    }

    /// Forgets a request that was deleted.
    pub fn remove(&self, id: &str) {
        let mut inner = self.inner.lock().expect("finished lock");
        if inner.records.remove(id).is_some() {
            inner.order.retain(|kept| kept != id);
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<RequestRecord>> {
        self.inner
            .lock()
            .expect("finished lock")
            .records
            .get(id)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skydeck_types::{RequestStatus, ScheduleType};

    fn record(id: &str) -> RequestRecord {
        RequestRecord {
            id: id.to_owned(),
            name: "sky.status".to_owned(),
            entrypoint: String::new(),
            body: serde_json::Value::Null,
            status: RequestStatus::Succeeded,
            schedule_type: ScheduleType::Short,
            user_id: "u".to_owned(),
            cluster_name: None,
            created_at: 0.0,
            started_at: None,
            finished_at: None,
            return_value: None,
            error: None,
            status_msg: None,
            server_id: None,
            attempts: 1,
            workspace: "default".to_owned(),
        }
    }

    #[test]
    fn keeps_the_newest_entries_up_to_capacity() {
        let cache = RecentlyFinished::default();
        for i in 0..=CAPACITY {
            cache.insert(record(&i.to_string()));
        }
        assert!(cache.get("0").is_none(), "the oldest entry is evicted");
        assert!(cache.get("1").is_some());
        assert_eq!(
            cache.get(&CAPACITY.to_string()).unwrap().id,
            CAPACITY.to_string()
        );
        assert_eq!(cache.inner.lock().unwrap().records.len(), CAPACITY);
    }
}
