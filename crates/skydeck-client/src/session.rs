//! Opening a `skydeck ssh` session: an HTTP request upgraded to the frame
//! stream of `skydeck_types::ssh_session`.

use crate::{Client, ClientError, Result, check_status};
use skydeck_types::ssh_session::{PATH, PROTOCOL};

/// A terminal's size and type, for a session on a pseudo-terminal.
#[derive(Debug, Clone)]
pub struct Terminal {
    pub cols: u16,
    pub rows: u16,
    pub term: Option<String>,
}

impl Client {
    /// Starts `argv` (a login shell when empty, which needs `terminal`) on
    /// `cluster`'s head node; the stream carries its frames.
    pub async fn open_session(
        &self,
        cluster: &str,
        argv: &[String],
        terminal: Option<&Terminal>,
    ) -> Result<reqwest::Upgraded> {
        let mut query: Vec<(&str, String)> = vec![("cluster", cluster.to_owned())];
        query.extend(argv.iter().map(|arg| ("arg", arg.clone())));
        if let Some(terminal) = terminal {
            query.push(("cols", terminal.cols.to_string()));
            query.push(("rows", terminal.rows.to_string()));
            if let Some(term) = &terminal.term {
                query.push(("term", term.clone()));
            }
        }
        let builder = self
            .request(reqwest::Method::GET, PATH)
            // An upgrade exists in HTTP/1.1 only.
            .version(reqwest::Version::HTTP_11)
            .query(&query)
            .header(reqwest::header::CONNECTION, "upgrade")
            .header(reqwest::header::UPGRADE, PROTOCOL);
        let response = self.send(builder).await?;
        if response.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
            check_status(response).await?;
            return Err(ClientError::Decode(format!(
                "the API server did not open a session (it does not know {PATH}: upgrade it)"
            )));
        }
        response
            .upgrade()
            .await
            .map_err(|err| ClientError::Decode(format!("the session's stream did not open: {err}")))
    }
}
