//! Settings read through `wasi:config/store`.
//!
//! Spin variable names cannot contain `-`, so every key is written with `_`
//! (`crm_location_id`); the bundled host accepts the same names. Only
//! components whose world imports `wasi:config/store` may call these.

use crate::StageError;
use crate::bindings::wasi::config::store;

/// The value of `key`, trimmed; `None` when unset or empty.
pub fn get(key: &str) -> Result<Option<String>, StageError> {
    let value = store::get(key).map_err(|e| {
        StageError::InvalidSettings(format!("reading configuration {key:?} failed: {e:?}"))
    })?;
    Ok(value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty()))
}

/// The value of `key`, or an error naming the missing setting.
pub fn require(key: &str) -> Result<String, StageError> {
    required(key, get(key)?)
}

/// The value of `key` parsed as `T`, or `default` when unset.
pub fn parse_or<T: std::str::FromStr>(key: &str, default: T) -> Result<T, StageError> {
    parsed_or(key, get(key)?, default)
}

/// `value`, read for `key` from any source, or the error naming the
/// missing setting.
pub fn required(key: &str, value: Option<String>) -> Result<String, StageError> {
    value.ok_or_else(|| {
        StageError::InvalidSettings(format!(
            "configuration {key:?} is not set: set the variable of that name (on Spin: SPIN_VARIABLE_{} or the app's variables; for a tenant kept in the app's store, its setting of that name)",
            key.to_ascii_uppercase()
        ))
    })
}

/// `value`, read for `key` from any source, parsed as `T`; `default`
/// when unset.
pub fn parsed_or<T: std::str::FromStr>(
    key: &str,
    value: Option<String>,
    default: T,
) -> Result<T, StageError> {
    match value {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            StageError::InvalidSettings(format!(
                "configuration {key:?} is {text:?}, which is not a valid value"
            ))
        }),
    }
}
