//! `wasi:config/store` (0.2.0-draft-2024-09-27, the version Spin provides):
//! read-only configuration values granted to one invocation.

use crate::bindings::host_provided::wasi::config::store;
use wasmtime::component::{HasData, Linker};

/// What the configuration functions read during one call: the values the
/// stage was granted (`state::Grants::config`), nothing else.
pub struct ConfigView<'a> {
    /// The granted keys and values.
    pub values: &'a [(String, String)],
}

/// The configuration interface's [`HasData`]: its functions get a
/// [`ConfigView`].
pub struct ConfigGrant;

impl HasData for ConfigGrant {
    type Data<'a> = ConfigView<'a>;
}

/// Link `wasi:config/store`, with `view` picking the granted values out of
/// the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> ConfigView<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, ConfigGrant>(linker, view)
}

impl store::Host for ConfigView<'_> {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, store::Error>> {
        Ok(Ok(self
            .values
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())))
    }

    fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, store::Error>> {
        Ok(Ok(self.values.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::Host;

    #[test]
    fn a_component_reads_only_what_it_was_granted() {
        let granted = vec![
            ("crm_location_id".to_string(), "loc1".to_string()),
            ("token_key".to_string(), "k".to_string()),
        ];
        let mut view = ConfigView { values: &granted };
        assert_eq!(
            view.get("crm_location_id".into()).unwrap().unwrap(),
            Some("loc1".to_string())
        );
        // A key it was not given is absent, not an error: the component
        // decides whether that is fatal.
        assert_eq!(view.get("pbx_client_secret".into()).unwrap().unwrap(), None);
        assert_eq!(view.get_all().unwrap().unwrap(), granted);
        let mut nothing = ConfigView { values: &[] };
        assert!(nothing.get_all().unwrap().unwrap().is_empty());
    }
}
