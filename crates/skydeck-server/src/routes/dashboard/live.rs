//! Live tables: a list page opens a server-sent-event stream that sends
//! the table's rows again whenever they change, so statuses move without
//! a reload. The rows are the list page's own, rendered by the same
//! handler for the same viewer and filters, so a stream shows exactly
//! what a reload would and nothing more.
//!
//! A hidden browser tab closes its stream (see dashboard.js) and opens it
//! again with `resume=true` when shown, so a tab in the background costs
//! the server nothing; a resumed stream starts with the rows as they are.

use super::Viewer;
use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the rows are rendered again to look for a change.
const EVERY: Duration = Duration::from_secs(2);
/// The most of a page read to find its rows.
const PAGE_LIMIT: usize = 4 << 20;

/// What a live stream's address adds to its page's own query.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(default)]
pub struct LiveQuery {
    /// The tab was hidden: send the rows at once, not only once they
    /// change (a fresh page already has them).
    resume: bool,
}

/// A stream of `rows` events: the `<tbody>` of what `render` answers,
/// each time it differs from the last one sent (the page has the first,
/// unless the stream is resumed). It ends when the browser goes away or
/// the server stops.
pub fn updates<F, Fut>(viewer: Viewer, live: LiveQuery, render: F) -> Response
where
    F: Fn(Viewer) -> Fut + Send + 'static,
    Fut: Future<Output = Response> + Send,
{
    let (tx, mut rx) = mpsc::channel::<Bytes>(1);
    let shutdown = viewer.state.shutdown.clone();
    tokio::spawn(async move {
        let mut last: Option<String> = None;
        let mut send_first = live.resume;
        loop {
            if let Some(rows) = rows_of(render(viewer.clone()).await).await
                && last.as_ref() != Some(&rows)
            {
                if (last.is_some() || send_first) && tx.send(event(&rows)).await.is_err() {
                    return;
                }
                send_first = false;
                last = Some(rows);
            }
            tokio::select! {
                () = tokio::time::sleep(EVERY) => {}
                () = tx.closed() => return,
                () = shutdown.cancelled() => return,
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|chunk| chunk.map(Ok::<_, std::convert::Infallible>))
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The `<tbody>…</tbody>` of a rendered list page; `None` for an error
/// page (the stream then sends nothing until the list renders again).
async fn rows_of(page: Response) -> Option<String> {
    if !page.status().is_success() {
        return None;
    }
    let bytes = axum::body::to_bytes(page.into_body(), PAGE_LIMIT)
        .await
        .ok()?;
    let html = std::str::from_utf8(&bytes).ok()?;
    let start = html.find("<tbody>")?;
    let end = html[start..].find("</tbody>")? + start + "</tbody>".len();
    Some(html[start..end].to_owned())
}

/// One server-sent event; every line of the data is prefixed, as the
/// format requires.
fn event(rows: &str) -> Bytes {
    let mut text = String::with_capacity(rows.len() + 32);
    text.push_str("event: rows\n");
    for line in rows.split('\n') {
        text.push_str("data: ");
        text.push_str(line);
        text.push('\n');
    }
    text.push('\n');
    Bytes::from(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_of_an_event_is_data() {
        let sent = event("<tbody><tr><td>a\nb</td></tr></tbody>");
        assert_eq!(
            sent,
            "event: rows\ndata: <tbody><tr><td>a\ndata: b</td></tr></tbody>\n\n"
        );
    }
}
