//! Parsing and checking of the tenant settings both runtimes read: the
//! bundled host from its TOML (`crates/config/src/lib.rs`) and the Spin app from
//! its variables (`components/app/src/settings.rs`). Plain types, so the
//! host calls this natively and the app as part of its component; one
//! rule and one error text per setting, whichever runtime reads it.
//!
//! Error texts start after the setting's name: each caller prefixes the
//! name as its user writes it (`settings.tie_breakers` in the host's
//! configuration, `configuration "tie_breakers"` for a Spin variable).

/// A rule that settles a number several contacts share (the WIT
/// `tie-breaker`; each runtime maps it onto its own binding of that enum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TieBreaker {
    /// `assigned-user`: the only candidate assigned to the call's CRM user.
    AssignedUser,
    /// `recent-conversation`: the only candidate with the newest conversation.
    RecentConversation,
    /// `first-contact`: the oldest contact with the number; always decides.
    FirstContact,
}

/// The tie-breakers a tenant gets by default, in order: the product rule
/// ("the first contact with that number wins", calls land within seconds)
/// comes last, so a call is never held for review unless the tenant drops
/// `first-contact` from its list.
pub const DEFAULT_TIE_BREAKERS: [&str; 3] =
    ["assigned-user", "recent-conversation", "first-contact"];

/// The longest `call_reference_prefix` accepted (it prefixes HighLevel's
/// `altId`).
pub const MAX_CALL_REFERENCE_PREFIX: usize = 64;

/// A setting that cannot be used, with what to write instead. The text
/// follows the setting's name (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// `no_match_policy` is neither `skip` nor `create-contact`.
    #[error("is {0:?}: use \"skip\" or \"create-contact\"")]
    NoMatchPolicy(String),
    /// `tie_breakers` names a rule that does not exist.
    #[error(
        "has {0:?}: use \"assigned-user\", \"recent-conversation\" and/or \"first-contact\" (a list without \"first-contact\" sends undecided shared numbers to review)"
    )]
    UnknownTieBreaker(String),
    /// `tie_breakers` names a rule twice.
    #[error("lists {0:?} twice: list each once")]
    RepeatedTieBreaker(String),
    /// A `crm_user_overrides` extension is empty or has surrounding spaces.
    #[error("has the extension {0:?}: write the 3CX extension number without spaces, e.g. \"101\"")]
    OverrideExtension(String),
    /// A `crm_user_overrides` user id is empty or has spaces.
    #[error(
        "maps extension {extension:?} to {user:?}: give the HighLevel user id (Settings > My Staff, or GET /users/), without spaces"
    )]
    OverrideUser {
        /// The extension whose user id is wrong.
        extension: String,
        /// The user id as written.
        user: String,
    },
    /// The Spin app's `crm_user_overrides_json` is no JSON object of strings.
    #[error(
        "is no JSON object of extension to user id ({0}): write one such as {{\"101\":\"<HighLevel user id>\"}}"
    )]
    OverridesJson(String),
    /// A base URL that is not `https://host[:port]` (plain `http://` only
    /// to a loopback test server), or has a path.
    #[error(
        "is {0:?}: use https://host[:port] with no path (plain http:// is only accepted for loopback test servers)"
    )]
    BaseUrl(String),
    /// `call_reference_prefix` has a character outside the allowed set, or
    /// is too long.
    #[error(
        "is {0:?}: use at most 64 letters, digits, '.', ':', '_' or '-' (e.g. \"pbx-b\"), or \"\" for none"
    )]
    CallReferencePrefix(String),
    /// `page_size` is 0 or above what 3CX v20 serves.
    #[error("is {0}: use 1 to 100 (3CX v20 answers 400 to a page larger than 100 rows)")]
    PageSize(u32),
}

/// The largest page 3CX v20 serves: a larger `$top` is answered 400
/// (NOTES §8).
pub const MAX_PAGE_SIZE: u32 = 100;

/// Check `page_size`: 1 to [`MAX_PAGE_SIZE`].
pub fn check_page_size(page_size: u32) -> Result<u32, SettingsError> {
    if (1..=MAX_PAGE_SIZE).contains(&page_size) {
        Ok(page_size)
    } else {
        Err(SettingsError::PageSize(page_size))
    }
}

/// What to do with a call whose number no contact has (the WIT
/// `no-match-policy`; each runtime maps it onto its own binding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoMatchPolicy {
    /// `skip`: record the call as skipped (the default).
    Skip,
    /// `create-contact`: create the contact, then post to it.
    CreateContact,
}

/// `no_match_policy` as written: `skip` or `create-contact`.
pub fn no_match_policy(value: &str) -> Result<NoMatchPolicy, SettingsError> {
    match value {
        "skip" => Ok(NoMatchPolicy::Skip),
        "create-contact" => Ok(NoMatchPolicy::CreateContact),
        other => Err(SettingsError::NoMatchPolicy(other.to_string())),
    }
}

impl TieBreaker {
    /// The setting's spelling, e.g. `assigned-user`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AssignedUser => DEFAULT_TIE_BREAKERS[0],
            Self::RecentConversation => DEFAULT_TIE_BREAKERS[1],
            Self::FirstContact => DEFAULT_TIE_BREAKERS[2],
        }
    }
}

/// The tie-breakers named in `names`, in order: each exactly as spelt
/// (`assigned-user`, `recent-conversation`), at most once. An empty list
/// is valid: every shared number then goes to review.
pub fn tie_breakers<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<TieBreaker>, SettingsError> {
    let mut out = Vec::new();
    for name in names {
        let breaker = match name {
            "assigned-user" => TieBreaker::AssignedUser,
            "recent-conversation" => TieBreaker::RecentConversation,
            "first-contact" => TieBreaker::FirstContact,
            other => return Err(SettingsError::UnknownTieBreaker(other.to_string())),
        };
        if out.contains(&breaker) {
            return Err(SettingsError::RepeatedTieBreaker(name.to_string()));
        }
        out.push(breaker);
    }
    Ok(out)
}

/// The tie-breakers of a comma-separated list (a Spin variable holds one
/// string, where the host's TOML has an array): spaces around a name and
/// empty items are ignored, so `""` means none, and so does `none` (the
/// host's `tenant settings --set` spelling; a Spin variable left empty
/// reads as unset); unset (`None`) means [`DEFAULT_TIE_BREAKERS`]. Each
/// name is then checked by [`tie_breakers`].
pub fn tie_breakers_from_list(value: Option<&str>) -> Result<Vec<TieBreaker>, SettingsError> {
    match value {
        None => tie_breakers(DEFAULT_TIE_BREAKERS),
        Some(list) if list.trim() == "none" => Ok(Vec::new()),
        Some(list) => tie_breakers(list.split(',').map(str::trim).filter(|n| !n.is_empty())),
    }
}

/// Check one `crm_user_overrides` entry, extension → HighLevel user id.
/// The extension must be non-empty without surrounding spaces and the user
/// id non-empty without any space: a stray space would make the entry
/// never match (the extension) or be refused by HighLevel (the id), so it
/// is refused here with what to fix rather than silently trimmed.
pub fn check_crm_user_override(extension: &str, user: &str) -> Result<(), SettingsError> {
    if extension.trim().is_empty() || extension.trim() != extension {
        return Err(SettingsError::OverrideExtension(extension.to_string()));
    }
    if user.trim().is_empty() || user.chars().any(char::is_whitespace) {
        return Err(SettingsError::OverrideUser {
            extension: extension.to_string(),
            user: user.to_string(),
        });
    }
    Ok(())
}

/// `crm_user_overrides` as a JSON object of extension → user id (the Spin
/// app's `crm_user_overrides_json`), each entry checked by
/// [`check_crm_user_override`]; blank means none. Sorted by extension.
pub fn crm_user_overrides_json(json: &str) -> Result<Vec<(String, String)>, SettingsError> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let map: std::collections::BTreeMap<String, String> =
        serde_json::from_str(json).map_err(|e| SettingsError::OverridesJson(e.to_string()))?;
    for (extension, user) in &map {
        check_crm_user_override(extension, user)?;
    }
    Ok(map.into_iter().collect())
}

/// Check a `call_reference_prefix`: at most [`MAX_CALL_REFERENCE_PREFIX`]
/// ASCII letters, digits, `.`, `:`, `_` or `-`; `""` is none. Not trimmed:
/// a space is refused like any other character outside that set, as the
/// prefix becomes part of the key HighLevel stores.
pub fn check_call_reference_prefix(prefix: &str) -> Result<&str, SettingsError> {
    if prefix.len() > MAX_CALL_REFERENCE_PREFIX
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".:_-".contains(c))
    {
        return Err(SettingsError::CallReferencePrefix(prefix.to_string()));
    }
    Ok(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tie_breakers_keep_their_order_and_refuse_unknown_or_repeated_names() {
        assert_eq!(
            tie_breakers(["recent-conversation", "assigned-user"]).unwrap(),
            [TieBreaker::RecentConversation, TieBreaker::AssignedUser]
        );
        assert_eq!(tie_breakers([]).unwrap(), []);
        let e = tie_breakers(["oldest"]).unwrap_err();
        assert_eq!(e, SettingsError::UnknownTieBreaker("oldest".into()));
        assert!(e.to_string().contains("\"assigned-user\""), "{e}");
        // Exact spelling in a list: the host's TOML array is not trimmed.
        assert!(tie_breakers([" assigned-user"]).is_err());
        let e = tie_breakers(["assigned-user", "assigned-user"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "lists \"assigned-user\" twice: list each once"
        );
        assert_eq!(
            DEFAULT_TIE_BREAKERS,
            [
                TieBreaker::AssignedUser.name(),
                TieBreaker::RecentConversation.name(),
                TieBreaker::FirstContact.name()
            ]
        );
    }

    #[test]
    fn a_comma_separated_list_defaults_when_unset_and_means_none_when_empty() {
        assert_eq!(
            tie_breakers_from_list(None).unwrap(),
            [
                TieBreaker::AssignedUser,
                TieBreaker::RecentConversation,
                TieBreaker::FirstContact
            ]
        );
        assert_eq!(tie_breakers_from_list(Some("")).unwrap(), []);
        assert_eq!(tie_breakers_from_list(Some("none")).unwrap(), []);
        assert_eq!(
            tie_breakers_from_list(Some(" recent-conversation , ")).unwrap(),
            [TieBreaker::RecentConversation]
        );
        assert_eq!(
            tie_breakers_from_list(Some("assigned-user,oldest")).unwrap_err(),
            SettingsError::UnknownTieBreaker("oldest".into())
        );
        assert_eq!(
            tie_breakers_from_list(Some("assigned-user, assigned-user")).unwrap_err(),
            SettingsError::RepeatedTieBreaker("assigned-user".into())
        );
    }

    #[test]
    fn a_user_override_with_stray_spaces_is_refused_with_what_to_fix() {
        check_crm_user_override("101", "0IHuJvc2ofPAAA8GzTRi").unwrap();
        for extension in ["", " ", " 101", "101 "] {
            assert_eq!(
                check_crm_user_override(extension, "u1").unwrap_err(),
                SettingsError::OverrideExtension(extension.into()),
                "{extension:?}"
            );
        }
        for user in ["", "  ", " u1", "u 1"] {
            let e = check_crm_user_override("102", user).unwrap_err();
            assert!(matches!(e, SettingsError::OverrideUser { .. }), "{user:?}");
            let text = e.to_string();
            assert!(
                text.contains("\"102\"") && text.contains("user id"),
                "{text}"
            );
        }
    }

    #[test]
    fn user_overrides_from_json_are_checked_like_the_hosts() {
        assert_eq!(crm_user_overrides_json("  ").unwrap(), []);
        assert_eq!(
            crm_user_overrides_json(r#"{"102":"u2","101":"u1"}"#).unwrap(),
            [
                ("101".to_string(), "u1".to_string()),
                ("102".to_string(), "u2".to_string())
            ]
        );
        // What the Spin app used to accept (and then never matched).
        assert_eq!(
            crm_user_overrides_json(r#"{" 101":"u1"}"#).unwrap_err(),
            SettingsError::OverrideExtension(" 101".into())
        );
        assert!(matches!(
            crm_user_overrides_json(r#"{"101":" u1 "}"#).unwrap_err(),
            SettingsError::OverrideUser { .. }
        ));
        let e = crm_user_overrides_json("[1]").unwrap_err();
        assert!(matches!(e, SettingsError::OverridesJson(_)), "{e}");
        assert!(e.to_string().contains("{\"101\":"), "{e}");
    }

    #[test]
    fn a_page_larger_than_3cx_serves_is_refused_with_the_range() {
        assert_eq!(check_page_size(100), Ok(100));
        assert_eq!(check_page_size(1), Ok(1));
        for bad in [0, 101, 1000] {
            let e = check_page_size(bad).unwrap_err().to_string();
            assert!(e.contains("1 to 100"), "{e}");
        }
    }

    #[test]
    fn a_call_reference_prefix_is_checked_untrimmed() {
        assert_eq!(
            check_call_reference_prefix("pbx-b.example.com:5001"),
            Ok("pbx-b.example.com:5001")
        );
        assert_eq!(check_call_reference_prefix(""), Ok(""));
        assert_eq!(
            check_call_reference_prefix(&"a".repeat(64)).map(str::len),
            Ok(64)
        );
        for bad in [" pbx-b", "pbx-b ", "bad prefix!", "a/b", &"a".repeat(65)] {
            let e = check_call_reference_prefix(bad).unwrap_err();
            assert_eq!(e, SettingsError::CallReferencePrefix(bad.to_string()));
            assert!(e.to_string().contains("at most 64"), "{e}");
        }
    }
}

/// A 3CX or HighLevel base URL as both runtimes accept it: HTTPS, or plain
/// HTTP to a loopback address (the simulators), with a host and no path
/// (a trailing `/` is dropped). Secrets and tokens travel to it, so
/// plain HTTP anywhere else is refused.
pub fn check_base_url(url: &str) -> Result<String, SettingsError> {
    let refused = || SettingsError::BaseUrl(url.to_string());
    // Spaces are refused rather than trimmed: the value is used as written.
    if url.contains(char::is_whitespace) {
        return Err(refused());
    }
    let url = url.trim_end_matches('/');
    let (https, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        _ => return Err(refused()),
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) || rest.contains(char::is_whitespace)
    {
        return Err(refused());
    }
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or_else(refused)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(refused)?)),
            }
        }
        None => match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        },
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
        || host.contains([':', '[', ']']) && host.parse::<std::net::Ipv6Addr>().is_err()
    {
        return Err(refused());
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if host.is_empty() || (!https && !loopback) {
        return Err(refused());
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod base_url_tests {
    use super::*;

    #[test]
    fn https_or_loopback_http_without_a_path() {
        for good in [
            "https://pbx.example.com",
            "https://pbx.example.com:5001/",
            "http://127.0.0.1:8080",
            "http://localhost:9",
            "http://[::1]:9",
        ] {
            assert!(check_base_url(good).is_ok(), "{good}");
        }
        assert_eq!(
            check_base_url("https://x.example/").unwrap(),
            "https://x.example"
        );
        for bad in [
            "http://pbx.example.com",
            "http://10.0.0.5:5000",
            "https://pbx.example.com/xapi",
            "ftp://pbx.example.com",
            "pbx.example.com",
            "https://",
            "https://user@pbx.example.com",
            "https://pbx.example.com?x=1",
            " https://pbx.example.com",
            "https://pbx.example.com/ ",
            "http://[::1].evil.example",
            "http://[::1]x",
            "http://localhost:abc",
            "https://pbx.example.com:",
        ] {
            let error = check_base_url(bad).unwrap_err().to_string();
            assert!(error.contains("https://host"), "{bad}: {error}");
        }
    }
}
