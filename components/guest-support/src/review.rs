//! The park reason of a call whose number several contacts share and no
//! tie-breaker settled (the post stage answered `needs-review`): one text
//! for both runtimes (the tick component, `components/tick`, takes the
//! place from its options), which differ only in where an operator
//! settles the call.

/// Prefix of the park reason; the host's status page and review rows find
/// these calls by it.
pub const NEEDS_REVIEW: &str = "needs review";

/// Where a call parked for review waits to be settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReviewPlace {
    /// The bundled host: the "Needs review" list of its status page.
    StatusPage,
    /// A Spin app: no status page; the call stays parked, its candidates
    /// in the key-value store (`post/review/<call key>`, written by the
    /// post component).
    KeyValueStore,
}

/// e.g. "needs review: 2 contacts share this number (contacts a1, b2);
/// assign the call under Needs review on the status page". Contact ids,
/// not names: the reason is logged, and names are personal data.
pub fn needs_review_reason<'a>(
    contact_ids: impl IntoIterator<Item = &'a str>,
    place: ReviewPlace,
) -> String {
    let ids: Vec<&str> = contact_ids.into_iter().collect();
    let what_next = match place {
        ReviewPlace::StatusPage => "assign the call under Needs review on the status page",
        ReviewPlace::KeyValueStore => {
            "the call stays parked, its candidates kept under post/review/<call key> in the app's key-value store (this runtime has no review page)"
        }
    };
    format!(
        "{NEEDS_REVIEW}: {} contacts share this number (contacts {}); {what_next}",
        ids.len(),
        ids.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_names_the_contacts_and_where_the_call_waits() {
        let host = needs_review_reason(["a1", "b2"], ReviewPlace::StatusPage);
        assert_eq!(
            host,
            "needs review: 2 contacts share this number (contacts a1, b2); assign the call under Needs review on the status page"
        );
        let spin = needs_review_reason(["a1", "b2", "c3"], ReviewPlace::KeyValueStore);
        assert!(spin.starts_with(NEEDS_REVIEW), "{spin}");
        assert!(
            spin.contains("3 contacts") && spin.contains("a1, b2, c3"),
            "{spin}"
        );
        // Spin has no status page: the text must not send anyone to one.
        assert!(!spin.contains("status page"), "{spin}");
        assert!(spin.contains("post/review/"), "{spin}");
    }
}
