//! A task over its limits (`skydeck_types::task::limits`) is refused when
//! it is submitted, with a 400 naming the limit, rather than stored and
//! failed later. Reading a task is CPU work: callers run this on the
//! blocking pool.

use crate::error::ApiError;
use skydeck_types::limits::LIMIT_ERROR_PREFIX;
use skydeck_types::task::{limits::check_text_size, parse_tasks};

/// 400 when `task_yaml` breaks a limit; any other mistake in it is left
/// for the operation to report, as SkyPilot does.
pub fn refuse_over_limits(task_yaml: &str) -> Result<(), ApiError> {
    let refuse =
        |err: skydeck_types::task::TaskError| ApiError::bad_request(format!("Invalid task: {err}"));
    check_text_size(task_yaml).map_err(refuse)?;
    match parse_tasks(task_yaml) {
        Err(err) if err.to_string().contains(LIMIT_ERROR_PREFIX) => Err(refuse(err)),
        _ => Ok(()),
    }
}

/// [`refuse_over_limits`], then `then`, on the blocking pool.
pub async fn checked<T: Send + 'static>(
    task_yaml: String,
    then: impl FnOnce(String) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || {
        refuse_over_limits(&task_yaml)?;
        then(task_yaml)
    })
    .await
    .map_err(ApiError::internal)?
}
