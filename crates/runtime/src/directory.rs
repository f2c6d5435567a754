//! The `connectzero:matcher/directory` capability: a matcher's read-only
//! view of the tenant's CRM contacts. The runtime needs nothing else of a
//! directory; the host's HighLevel contact search
//! (`connectzero::directory::Directory`) implements [`ContactDirectory`].

use crate::bindings::host_provided::connectzero::matcher::directory;
use crate::bindings::types::{ContactRef, StageError};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The answer of a directory search.
pub type Found<'a> = Pin<Box<dyn Future<Output = Result<Vec<ContactRef>, StageError>> + Send + 'a>>;

/// A tenant's contact directory, as matchers reach it.
pub trait ContactDirectory: Send + Sync + 'static {
    /// Every contact whose phone is `e164`, oldest first.
    fn find_by_phone<'a>(&'a self, e164: &'a str) -> Found<'a>;

    /// Every contact whose e-mail is `email` (case-insensitive), oldest first.
    fn find_by_email<'a>(&'a self, email: &'a str) -> Found<'a>;
}

/// What the `directory` functions work with during one call: the
/// tenant's directory, when the component was granted it, and the
/// invocation's allowance (a search is an upstream wait).
pub struct DirectoryView<'a> {
    /// The grant; `None` refuses every search.
    pub directory: Option<&'a Arc<dyn ContactDirectory>>,
    /// Searches are credited to it.
    pub allowance: &'a crate::allowance::Allowance,
}

/// The `directory` interface's [`wasmtime::component::HasData`].
pub struct DirectoryGrant;

impl wasmtime::component::HasData for DirectoryGrant {
    type Data<'a> = DirectoryView<'a>;
}

/// Link `connectzero:matcher/directory`, with `view` picking the grant
/// out of the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> DirectoryView<'_>,
) -> wasmtime::Result<()> {
    directory::add_to_linker::<T, DirectoryGrant>(linker, view)
}

impl DirectoryView<'_> {
    fn directory(&self) -> Result<Arc<dyn ContactDirectory>, StageError> {
        self.directory.cloned().ok_or_else(|| {
            StageError::InvalidSettings("this component was not granted the directory".into())
        })
    }
}

impl directory::Host for DirectoryView<'_> {
    async fn find_by_phone(
        &mut self,
        e164: String,
    ) -> wasmtime::Result<Result<Vec<ContactRef>, StageError>> {
        // The search (and its wait for the rate limiter) is credited to
        // the invocation's allowance, as any upstream answer is.
        let _wait = self.allowance.credited();
        Ok(match self.directory() {
            Ok(d) => d.find_by_phone(&e164).await,
            Err(e) => Err(e),
        })
    }

    async fn find_by_email(
        &mut self,
        email: String,
    ) -> wasmtime::Result<Result<Vec<ContactRef>, StageError>> {
        let _wait = self.allowance.credited();
        Ok(match self.directory() {
            Ok(d) => d.find_by_email(&email).await,
            Err(e) => Err(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use directory::Host;
    use std::time::Duration;

    /// A directory of one contact, found by its phone or e-mail.
    struct One;

    impl ContactDirectory for One {
        fn find_by_phone<'a>(&'a self, e164: &'a str) -> Found<'a> {
            Box::pin(async move { Ok(contact_if(e164 == "+14155550101")) })
        }

        fn find_by_email<'a>(&'a self, email: &'a str) -> Found<'a> {
            Box::pin(async move { Ok(contact_if(email == "ann@example.com")) })
        }
    }

    fn contact_if(hit: bool) -> Vec<ContactRef> {
        hit.then(|| ContactRef {
            id: "c1".into(),
            name: "Ann Lee".into(),
            phone: Some("+14155550101".into()),
            email: Some("ann@example.com".into()),
            assigned_to: None,
        })
        .into_iter()
        .collect()
    }

    #[tokio::test]
    async fn a_granted_matcher_searches_the_tenants_directory() {
        let one: Arc<dyn ContactDirectory> = Arc::new(One);
        let allowance = crate::allowance::Allowance::new(Duration::from_secs(30));
        let mut view = DirectoryView {
            directory: Some(&one),
            allowance: &allowance,
        };
        let by_phone = view
            .find_by_phone("+14155550101".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_phone[0].id, "c1");
        let by_email = view
            .find_by_email("ann@example.com".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_email[0].id, "c1");
        assert!(
            view.find_by_phone("+1999".into())
                .await
                .unwrap()
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_component_without_the_grant_is_refused_and_says_why() {
        let allowance = crate::allowance::Allowance::new(Duration::from_secs(30));
        let mut view = DirectoryView {
            directory: None,
            allowance: &allowance,
        };
        let refused = view
            .find_by_email("ann@example.com".into())
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(&refused, StageError::InvalidSettings(why) if why.contains("not granted the directory")),
            "{refused:?}"
        );
    }
}
