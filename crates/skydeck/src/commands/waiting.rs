//! A request the server accepted may wait for a free worker (all of its
//! pool busy with other launches). Without a word the CLI would look hung:
//! say once that it waits, which request it is and how to cancel it, then
//! let the request's own output follow when it starts.

use skydeck_client::{Client, ClientError};
use skydeck_types::RequestStatus;
use std::time::Duration;

/// Most requests start at once: only one still waiting after this is worth
/// a line.
const GRACE: Duration = Duration::from_secs(1);
/// How often to look again while it waits.
const POLL: Duration = Duration::from_secs(1);

/// Runs `work` (following or waiting on request `id`), telling the user
/// once if the request waits for a worker meanwhile.
pub async fn noting_the_wait<T>(client: &Client, id: &str, work: impl Future<Output = T>) -> T {
    tokio::select! {
        out = work => out,
        never = note_while_pending(client, id) => match never {},
    }
}

/// Waits for request `id`'s value, noting the wait as above.
pub async fn wait(client: &Client, id: &str) -> Result<serde_json::Value, ClientError> {
    noting_the_wait(client, id, client.wait(id)).await
}

/// Never returns: once the request runs (or cannot be looked at), it just
/// lets `work` finish.
async fn note_while_pending(client: &Client, id: &str) -> std::convert::Infallible {
    let mut told = false;
    tokio::time::sleep(GRACE).await;
    loop {
        let status = client
            .api_status(&[id.to_owned()], true, None)
            .await
            .ok()
            .and_then(|found| found.into_iter().find(|r| r.request_id == id))
            .map(|r| r.status);
        match status {
            Some(RequestStatus::Pending | RequestStatus::Waiting) => {
                if !told {
                    eprintln!("{}", waiting_message(id));
                    told = true;
                }
            }
            _ => break,
        }
        tokio::time::sleep(POLL).await;
    }
    std::future::pending().await
}

fn waiting_message(id: &str) -> String {
    format!(
        "⏳ Request {id} is waiting for a free worker on the API server (it is busy with \
         other requests); it starts as soon as one is free.\n   Cancel it with: skydeck api \
         cancel {id}"
    )
}

#[cfg(test)]
mod tests {
    use super::waiting_message;

    #[test]
    fn the_message_names_the_request_and_how_to_cancel_it() {
        let message = waiting_message("1a2b");
        assert!(message.contains("Request 1a2b is waiting"), "{message}");
        assert!(message.contains("skydeck api cancel 1a2b"), "{message}");
    }
}
