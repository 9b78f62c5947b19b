//! postcard encoding of what the stores keep, with openraft's error on failure.

use openraft::{AnyError, StorageIOError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StorageError;

/// Encodes `value`; `what` builds the error openraft should see if that fails.
pub(crate) fn encode<T: Serialize>(
    value: &T,
    what: fn(AnyError) -> StorageIOError<u64>,
) -> Result<Vec<u8>, StorageError> {
    postcard::to_allocvec(value).map_err(|e| what(AnyError::new(&e)).into())
}

/// Decodes `bytes`: bytes the engine returned that do not decode are corruption, reported.
pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    what: fn(AnyError) -> StorageIOError<u64>,
) -> Result<T, StorageError> {
    postcard::from_bytes(bytes).map_err(|e| what(AnyError::new(&e)).into())
}

/// Maps an engine error to openraft's storage error of kind `what`.
pub(crate) fn engine_err(
    what: fn(AnyError) -> StorageIOError<u64>,
) -> impl Fn(engine_api::Error) -> StorageError {
    move |e| what(AnyError::new(&e)).into()
}
