//! The `connectzero:pipeline/credentials` interface as components call
//! it: the per-call view of a tenant's token source and its linking.

use super::Credentials;
use crate::bindings::host_provided::connectzero::pipeline::credentials;
use crate::bindings::types::{Service, StageError};
use std::sync::Arc;
/// What the `credentials` functions work with during one call: the
/// tenant's token source, when the component was granted one, and the
/// invocation's allowance (a token fetch is an upstream wait).
pub struct CredentialsView<'a> {
    /// The grant; `None` refuses every request.
    pub credentials: Option<&'a Arc<Credentials>>,
    /// Token fetches are credited to it.
    pub allowance: &'a crate::allowance::Allowance,
}

/// The `credentials` interface's [`wasmtime::component::HasData`].
pub struct CredentialsGrant;

impl wasmtime::component::HasData for CredentialsGrant {
    type Data<'a> = CredentialsView<'a>;
}

/// Link `connectzero:pipeline/credentials`, with `view` picking the grant
/// out of the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> CredentialsView<'_>,
) -> wasmtime::Result<()> {
    credentials::add_to_linker::<T, CredentialsGrant>(linker, view)
}

impl credentials::Host for CredentialsView<'_> {
    async fn access_token(
        &mut self,
        service: Service,
    ) -> wasmtime::Result<Result<String, StageError>> {
        let Some(credentials) = self.credentials.cloned() else {
            return Ok(Err(StageError::InvalidSettings(
                "this component was not granted credentials".into(),
            )));
        };
        // A refresh, or waiting for another host's, is an upstream wait.
        let _wait = self.allowance.credited();
        Ok(credentials.access_token_for_invocation(service).await)
    }

    fn token_rejected(&mut self, service: Service, token: String) -> wasmtime::Result<()> {
        if let Some(credentials) = self.credentials {
            credentials.token_rejected(service, &token);
        }
        Ok(())
    }
}
