//! The `connectzero:pipeline/credentials` capability: components ask for
//! short-lived tokens and report the ones a service refused. The runtime
//! needs nothing else of a tenant's token source; the host's OAuth and
//! 3CX client (`connectzero::credentials::Credentials`) implement
//! [`TokenSource`].

use crate::bindings::host_provided::connectzero::pipeline::credentials;
use crate::bindings::types::{Service, StageError};
use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A tenant's token source, as components reach it.
pub trait TokenSource: Send + Sync + 'static {
    /// A bearer token for `service`, fetched or refreshed when needed, for
    /// a component's invocation. A fetch it starts runs to its end even
    /// when the invocation is stopped meanwhile (it owns the source).
    /// (Named apart from the sources' own `access_token`, which an
    /// `Arc<Source>` receiver would otherwise resolve to this method.)
    fn invocation_token(
        self: Arc<Self>,
        service: Service,
    ) -> Pin<Box<dyn Future<Output = Result<String, StageError>> + Send>>;

    /// A component reported that `service` answered 401 to `token`: drop
    /// it so the next request fetches a fresh one.
    fn token_rejected(&self, service: Service, token: &str);

    /// Itself, for the operator features that work the concrete source
    /// (the OAuth install, the doctor).
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// What the `credentials` functions work with during one call: the
/// tenant's token source, when the component was granted one, and the
/// invocation's allowance (a token fetch is an upstream wait).
pub struct CredentialsView<'a> {
    /// The grant; `None` refuses every request.
    pub credentials: Option<&'a Arc<dyn TokenSource>>,
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
        Ok(credentials.invocation_token(service).await)
    }

    fn token_rejected(&mut self, service: Service, token: String) -> wasmtime::Result<()> {
        if let Some(credentials) = self.credentials {
            credentials.token_rejected(service, &token);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credentials::Host;
    use std::sync::Mutex;
    use std::time::Duration;

    /// A token source that hands out one token and remembers refusals.
    #[derive(Default)]
    struct Fixed {
        rejected: Mutex<Vec<(Service, String)>>,
    }

    impl TokenSource for Fixed {
        fn invocation_token(
            self: Arc<Self>,
            service: Service,
        ) -> Pin<Box<dyn Future<Output = Result<String, StageError>> + Send>> {
            Box::pin(async move { Ok(format!("token-for-{service:?}")) })
        }

        fn token_rejected(&self, service: Service, token: &str) {
            self.rejected
                .lock()
                .unwrap()
                .push((service, token.to_string()));
        }

        fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
            self
        }
    }

    #[tokio::test]
    async fn a_granted_component_gets_the_sources_tokens_and_reports_refusals() {
        let fixed = Arc::new(Fixed::default());
        let source: Arc<dyn TokenSource> = fixed.clone();
        let allowance = crate::allowance::Allowance::new(Duration::from_secs(30));
        let mut view = CredentialsView {
            credentials: Some(&source),
            allowance: &allowance,
        };
        let token = view.access_token(Service::Crm).await.unwrap().unwrap();
        assert_eq!(token, format!("token-for-{:?}", Service::Crm));
        view.token_rejected(Service::Pbx, "old".into()).unwrap();
        assert_eq!(
            *fixed.rejected.lock().unwrap(),
            [(Service::Pbx, "old".to_string())]
        );
    }

    #[tokio::test]
    async fn a_component_without_the_grant_is_refused_and_says_why() {
        let allowance = crate::allowance::Allowance::new(Duration::from_secs(30));
        let mut view = CredentialsView {
            credentials: None,
            allowance: &allowance,
        };
        let refused = view.access_token(Service::Pbx).await.unwrap().unwrap_err();
        assert!(
            matches!(&refused, StageError::InvalidSettings(why) if why.contains("not granted credentials")),
            "{refused:?}"
        );
        // Reporting a refusal without a grant is a no-op, not a trap.
        view.token_rejected(Service::Pbx, "t".into()).unwrap();
    }
}
