//! Which command-line tool a request came from, so that what the server
//! tells its user names commands of that tool: `sky start c1` for the
//! official client, `skydeck start c1` for ours.
//!
//! The server writes its hints in SkyPilot's words (it is a SkyPilot API
//! server, and any caller that does not say otherwise is taken for `sky`);
//! [`ClientTool::render`] turns them into the caller's.

use serde::{Deserialize, Serialize};

/// The header `skydeck` sends on every request: `skydeck/<version>`. The
/// official client sends no such header.
pub const HEADER_CLIENT: &str = "x-skydeck-client";

/// The product name in [`HEADER_CLIENT`].
const SKYDECK_PRODUCT: &str = "skydeck";

/// The command-line tool a caller uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientTool {
    /// The official SkyPilot client (and anything that does not say).
    #[default]
    Sky,
    /// Skydeck's own CLI.
    Skydeck,
}

/// Names a SkyPilot hint carries that differ for `skydeck`: the program
/// (only where it starts a quoted command) and environment variables.
const SKY_TO_SKYDECK: &[(&str, &str)] = &[
    ("`sky ", "`skydeck "),
    (
        "SKYPILOT_SERVICE_ACCOUNT_TOKEN",
        "SKYDECK_SERVICE_ACCOUNT_TOKEN",
    ),
    (
        "SKYPILOT_API_SERVER_ENDPOINT",
        "SKYDECK_API_SERVER_ENDPOINT",
    ),
];

impl ClientTool {
    /// The caller's tool from the value of its [`HEADER_CLIENT`] header.
    pub fn from_header(value: Option<&str>) -> Self {
        let product = value
            .and_then(|v| v.split('/').next())
            .map(str::trim)
            .unwrap_or_default();
        if product.eq_ignore_ascii_case(SKYDECK_PRODUCT) {
            Self::Skydeck
        } else {
            Self::Sky
        }
    }

    /// What `skydeck` sends in [`HEADER_CLIENT`].
    pub fn skydeck_header_value() -> String {
        format!("{SKYDECK_PRODUCT}/{}", crate::version::SKYDECK_VERSION)
    }

    /// The program name, as the user types it.
    pub fn program(self) -> &'static str {
        match self {
            Self::Sky => "sky",
            Self::Skydeck => "skydeck",
        }
    }

    /// `message`, written in SkyPilot's words (hints such as
    /// "run `sky status --refresh`"), in this tool's words.
    pub fn render(self, message: &str) -> String {
        match self {
            Self::Sky => message.to_owned(),
            Self::Skydeck => SKY_TO_SKYDECK
                .iter()
                .fold(message.to_owned(), |text, (sky, skydeck)| {
                    text.replace(sky, skydeck)
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_names_skydeck_and_anything_else_is_sky() {
        assert_eq!(
            ClientTool::from_header(Some(&ClientTool::skydeck_header_value())),
            ClientTool::Skydeck
        );
        assert_eq!(
            ClientTool::from_header(Some("Skydeck")),
            ClientTool::Skydeck
        );
        assert_eq!(ClientTool::from_header(None), ClientTool::Sky);
        assert_eq!(ClientTool::from_header(Some("curl/8")), ClientTool::Sky);
        assert_eq!(
            ClientTool::from_header(Some("skydeckish/1")),
            ClientTool::Sky
        );
    }

    #[test]
    fn hints_name_the_callers_commands() {
        let hint = "Cluster \"c1\" is STOPPED; start it with `sky start c1`, or set \
                    SKYPILOT_SERVICE_ACCOUNT_TOKEN.";
        assert_eq!(ClientTool::Sky.render(hint), hint);
        assert_eq!(
            ClientTool::Skydeck.render(hint),
            "Cluster \"c1\" is STOPPED; start it with `skydeck start c1`, or set \
             SKYDECK_SERVICE_ACCOUNT_TOKEN."
        );
        // Commands only skydeck has stay as they are for either tool, and
        // the word "sky" outside a quoted command is left alone.
        let own = "see `skydeck users list`; the sky is blue";
        assert_eq!(ClientTool::Sky.render(own), own);
        assert_eq!(ClientTool::Skydeck.render(own), own);
    }
}
