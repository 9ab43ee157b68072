//! Extractors that turn bad input into clear 4xx answers in FastAPI's shape.

use crate::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

/// A JSON body. Malformed JSON and wrong field types are 422 naming the
/// field; an oversized body is 413.
pub struct ApiJson<T>(pub T);

/// Bodies larger than this are decoded on the blocking pool: up to the
/// body limit, decoding takes long enough to hold up an async worker.
const DECODE_INLINE_BYTES: usize = 64 * 1024;

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send + 'static,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
        if bytes.len() <= DECODE_INLINE_BYTES {
            return parse_json(&bytes).map(ApiJson);
        }
        tokio::task::spawn_blocking(move || parse_json(&bytes))
            .await
            .map_err(ApiError::internal)?
            .map(ApiJson)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::validation(
            vec!["body".into()],
            "Field required: send a JSON object as the request body",
            "missing",
        ));
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let inner = err.inner();
        let path = err.path().to_string();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::validation(
                vec!["body".into(), inner.column().into()],
                format!("JSON decode error: {inner}"),
                "json_invalid",
            )
        } else if skydeck_types::names::is_name_error(&inner.to_string())
            || skydeck_types::limits::is_limit_error(&inner.to_string())
        {
            // A name that breaks its rule, or a value over a limit, is the
            // caller's mistake to fix, not a malformed body: 400 with the
            // rule, naming the field.
            let field = path.trim_start_matches('.');
            ApiError::bad_request(format!("Invalid `{field}`: {inner}"))
        } else {
            let mut loc: Vec<serde_json::Value> = vec!["body".into()];
            loc.extend(
                path.split('.')
                    .filter(|p| !p.is_empty() && *p != ".")
                    .map(|p| serde_json::Value::from(p.to_owned())),
            );
            let field = if path == "." { "body".to_owned() } else { path };
            ApiError::validation(
                loc,
                format!("Invalid value for `{field}`: {inner}"),
                "value_error",
            )
        }
    })
}

/// Query parameters, decoded with serde; a wrong type is a 422 naming it.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded_deserializer(query);
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|err| {
                let path = err.path().to_string();
                ApiError::validation(
                    vec!["query".into(), path.clone().into()],
                    format!("Invalid query parameter `{path}`: {}", err.inner()),
                    "value_error",
                )
            })
    }
}

/// Decodes `a=1&b=2` into a flat JSON object of strings, which serde then
/// maps onto the target type (numbers and booleans are parsed from strings).
fn serde_urlencoded_deserializer(query: &str) -> QueryDeserializer {
    let map: serde_json::Map<String, serde_json::Value> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
        .collect();
    QueryDeserializer(map)
}

/// A deserializer over query strings that also accepts Python's `True` and
/// `False`, since the official client sends booleans that way.
struct QueryDeserializer(serde_json::Map<String, serde_json::Value>);

impl<'de> serde::Deserializer<'de> for QueryDeserializer {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_map<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let entries = self.0.into_iter().map(|(k, v)| {
            let text = v.as_str().unwrap_or_default().to_owned();
            (k, QueryValue(text))
        });
        visitor.visit_map(serde::de::value::MapDeserializer::new(entries))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_map(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct enum identifier ignored_any
    }
}

/// One query value: a string that parses as whatever the field wants.
struct QueryValue(String);

impl<'de> serde::de::IntoDeserializer<'de, serde::de::value::Error> for QueryValue {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

macro_rules! parse_number {
    ($($method:ident => $visit:ident),*) => {$(
        fn $method<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            match self.0.parse() {
                Ok(n) => visitor.$visit(n),
                Err(_) => Err(serde::de::Error::custom(format!("expected a number, got {:?}", self.0))),
            }
        }
    )*};
}

impl<'de> serde::Deserializer<'de> for QueryValue {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_string(self.0)
    }

    fn deserialize_bool<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => visitor.visit_bool(true),
            "false" | "0" | "no" | "off" => visitor.visit_bool(false),
            _ => Err(serde::de::Error::custom(format!(
                "expected a boolean, got {:?}",
                self.0
            ))),
        }
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    parse_number!(
        deserialize_i32 => visit_i32, deserialize_i64 => visit_i64,
        deserialize_u32 => visit_u32, deserialize_u64 => visit_u64,
        deserialize_f64 => visit_f64
    );

    serde::forward_to_deserialize_any! {
        i8 i16 i128 u8 u16 u128 f32 char str string bytes byte_buf unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Q {
        id: String,
        #[serde(default)]
        follow: Option<bool>,
        #[serde(default)]
        tail: Option<u32>,
    }

    fn query(q: &str) -> Result<Q, String> {
        serde_path_to_error::deserialize(serde_urlencoded_deserializer(q))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn python_booleans_and_numbers_parse_from_the_query() {
        assert_eq!(
            query("id=ab&follow=True&tail=5").unwrap(),
            Q {
                id: "ab".into(),
                follow: Some(true),
                tail: Some(5)
            }
        );
        assert_eq!(query("id=x&follow=false").unwrap().follow, Some(false));
    }

    #[test]
    fn a_bad_query_value_names_the_parameter() {
        let err = query("id=x&tail=many").unwrap_err();
        assert!(err.contains("tail"), "{err}");
        assert!(
            query("follow=true").is_err(),
            "a missing required field is refused"
        );
    }

    #[test]
    fn json_errors_name_the_field_or_the_syntax_problem() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Body {
            all_users: bool,
        }
        let err = parse_json::<Body>(br#"{"all_users": "yes"}"#).unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            err.detail[0]["loc"],
            serde_json::json!(["body", "all_users"])
        );
        let err = parse_json::<Body>(b"{not json").unwrap_err();
        assert_eq!(err.detail[0]["type"], "json_invalid");
        let err = parse_json::<Body>(b"").unwrap_err();
        assert_eq!(err.detail[0]["type"], "missing");
    }

    #[test]
    fn a_name_that_breaks_its_rule_is_a_400_stating_the_rule() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Body {
            cluster_name: skydeck_types::names::ClusterName,
        }
        let err = parse_json::<Body>(br#"{"cluster_name": "../../state"}"#).unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
        let detail = err.detail.as_str().unwrap();
        assert!(detail.contains("cluster_name"), "{detail}");
        assert!(detail.contains("starts with a letter"), "{detail}");
    }
}
