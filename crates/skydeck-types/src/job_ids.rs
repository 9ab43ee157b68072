//! Job ids in a request body as SkyPilot's server reads them: its bodies
//! are pydantic models whose `List[int]` also takes integers written as
//! strings, and its own dashboard sends a job page's id as the string
//! from its address (`job_ids: ["7"]`). Either form parses into a number
//! here; anything else is refused, naming the value.

use serde::Deserialize;
use serde::de::Deserializer;

/// Every form a client may write an id in, so that each wrong one gets
/// an error naming it rather than serde's "did not match any variant".
#[derive(Deserialize)]
#[serde(untagged)]
enum Written {
    Number(u64),
    Negative(i64),
    Fraction(f64),
    Text(String),
}

impl Written {
    fn into_id<E: serde::de::Error>(self) -> Result<u64, E> {
        let refused = |shown: String| {
            E::custom(format!(
                "{shown} is not a job id: job ids are whole numbers such as 7"
            ))
        };
        match self {
            Written::Number(id) => Ok(id),
            Written::Negative(n) => Err(refused(n.to_string())),
            Written::Fraction(x) => Err(refused(x.to_string())),
            Written::Text(text) => text
                .trim()
                .parse()
                .map_err(|_| refused(format!("{text:?}"))),
        }
    }
}

/// For `#[serde(deserialize_with = "job_ids::optional")]` on an
/// `Option<Vec<u64>>`.
pub fn optional<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<u64>>, D::Error> {
    let written: Option<Vec<Written>> = Option::deserialize(deserializer)?;
    written
        .map(|ids| ids.into_iter().map(Written::into_id).collect())
        .transpose()
}

/// For `#[serde(deserialize_with = "job_ids::optional_one")]` on an
/// `Option<u64>`.
pub fn optional_one<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let written: Option<Written> = Option::deserialize(deserializer)?;
    written.map(Written::into_id).transpose()
}

#[cfg(test)]
mod tests {
    #[derive(Debug, serde::Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "super::optional")]
        job_ids: Option<Vec<u64>>,
    }

    #[derive(Debug, serde::Deserialize)]
    struct OneBody {
        #[serde(default, deserialize_with = "super::optional_one")]
        job_id: Option<u64>,
    }

    fn parse(json: &str) -> Result<Option<Vec<u64>>, String> {
        serde_json::from_str::<Body>(json)
            .map(|body| body.job_ids)
            .map_err(|err| err.to_string())
    }

    #[test]
    fn numbers_and_numbers_written_as_strings_are_ids() {
        assert_eq!(
            parse(r#"{"job_ids": [1, "7", 3]}"#),
            Ok(Some(vec![1, 7, 3]))
        );
        assert_eq!(parse(r#"{"job_ids": null}"#), Ok(None));
        assert_eq!(parse("{}"), Ok(None));
    }

    #[test]
    fn one_id_reads_the_same() {
        let one = |json: &str| serde_json::from_str::<OneBody>(json).map(|b| b.job_id);
        assert_eq!(one(r#"{"job_id": "7"}"#).unwrap(), Some(7));
        assert_eq!(one(r#"{"job_id": 7}"#).unwrap(), Some(7));
        assert_eq!(one(r#"{"job_id": null}"#).unwrap(), None);
        assert!(one(r#"{"job_id": "seven"}"#).is_err());
    }

    #[test]
    fn anything_else_is_refused_by_name() {
        let err = parse(r#"{"job_ids": ["7; rm -rf /"]}"#).unwrap_err();
        assert!(err.contains("\"7; rm -rf /\" is not a job id"), "{err}");
        for (written, named) in [("-1", "-1"), ("\"-1\"", "\"-1\""), ("1.5", "1.5")] {
            let err = parse(&format!(r#"{{"job_ids": [{written}]}}"#)).unwrap_err();
            assert!(err.contains(&format!("{named} is not a job id")), "{err}");
        }
        assert!(parse(r#"{"job_ids": [true]}"#).is_err());
    }
}
