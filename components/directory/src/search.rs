//! HighLevel contact search (`POST /contacts/search`, operationId
//! `search-contacts-advanced`): the request and the ordering of the answer.

use guest_support::bindings::connectzero::pipeline::types::ContactRef;
use serde::Deserialize;
use serde_json::{Value, json};

/// `Version` header of the contacts API.
pub const CONTACTS_VERSION: &str = "2021-07-28";

/// Most contacts read for one number; more than this sharing a number is a
/// data problem the operator sees flagged anyway.
const PAGE_LIMIT: u32 = 100;

/// A contact as the search answers it (only what the matcher needs).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    id: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    contact_name: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    date_added: Option<String>,
    /// `assignedTo`: the HighLevel user the contact is assigned to.
    #[serde(default)]
    assigned_to: Option<String>,
}

/// The search's answer.
#[derive(Deserialize)]
pub struct SearchResponse {
    /// The contacts found.
    pub contacts: Vec<Contact>,
}

/// The body of a search for contacts whose `field` equals `value`.
pub fn request(location_id: &str, field: &str, value: &str) -> Value {
    json!({
        "locationId": location_id,
        "page": 1,
        "pageLimit": PAGE_LIMIT,
        "filters": [{"field": field, "operator": "eq", "value": value}],
    })
}

/// Sort by `dateAdded`, then id, so "the first contact" never depends on
/// the order the API happened to answer in, and hand each contact's id,
/// display name, phone, e-mail and assigned user to `make`. The bundled
/// host's directory (`host/src/directory.rs`) uses it too, with its own
/// contact type.
pub fn oldest_first_as<T>(
    mut contacts: Vec<Contact>,
    make: impl Fn(String, String, Option<String>, Option<String>, Option<String>) -> T,
) -> Vec<T> {
    // Dates compared as instants (the API's texts may differ in
    // precision or offset); a contact without a readable date is never
    // "the first" over one with a date.
    let added = |c: &Contact| {
        c.date_added
            .as_deref()
            .and_then(|d| guest_support::time::parse_rfc3339_ms(d).ok())
    };
    contacts.sort_by(|a, b| {
        let (da, db) = (added(a), added(b));
        (da.is_none(), da, &a.id).cmp(&(db.is_none(), db, &b.id))
    });
    contacts
        .into_iter()
        .map(|c| {
            let joined = format!(
                "{} {}",
                c.first_name.unwrap_or_default(),
                c.last_name.unwrap_or_default()
            );
            let name = c
                .contact_name
                .or(c.name)
                .unwrap_or_else(|| joined.trim().to_string());
            let assigned_to = c.assigned_to.filter(|a| !a.trim().is_empty());
            make(c.id, name, c.phone, c.email, assigned_to)
        })
        .collect()
}

/// [`oldest_first_as`] into the WIT `contact-ref`.
pub fn oldest_first(contacts: Vec<Contact>) -> Vec<ContactRef> {
    oldest_first_as(contacts, |id, name, phone, email, assigned_to| ContactRef {
        id,
        name,
        phone,
        email,
        assigned_to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_are_ordered_oldest_first_then_by_id() {
        let answer: SearchResponse = serde_json::from_value(json!({"contacts": [
            {"id": "b", "firstName": "Bo", "dateAdded": "2024-02-01T00:00:00.000Z"},
            {"id": "c", "contactName": "Cy Lee", "dateAdded": "2024-01-01T00:00:00.000Z"},
            {"id": "a", "firstName": "Ann", "lastName": "Lee", "dateAdded": "2024-02-01T00:00:00.000Z"},
        ]}))
        .unwrap();
        let sorted = oldest_first(answer.contacts);
        let ids: Vec<&str> = sorted.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
        assert_eq!(sorted[0].name, "Cy Lee");
        assert_eq!(sorted[1].name, "Ann Lee");
    }

    #[test]
    fn dates_are_instants_and_a_contact_without_one_is_never_first() {
        let answer: SearchResponse = serde_json::from_value(json!({"contacts": [
            {"id": "a", "firstName": "No date"},
            {"id": "b", "firstName": "Later", "dateAdded": "2024-01-01T00:00:00.500Z"},
            {"id": "c", "firstName": "Earlier", "dateAdded": "2024-01-01T00:00:00Z"},
        ]}))
        .unwrap();
        let ids: Vec<String> = oldest_first(answer.contacts)
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["c", "b", "a"]);
    }

    #[test]
    fn the_assigned_user_is_kept() {
        let answer: SearchResponse = serde_json::from_value(json!({"contacts": [
            {"id": "a", "assignedTo": "u1"},
            {"id": "b", "assignedTo": ""},
        ]}))
        .unwrap();
        let sorted = oldest_first(answer.contacts);
        assert_eq!(sorted[0].assigned_to.as_deref(), Some("u1"));
        assert_eq!(sorted[1].assigned_to, None);
    }

    #[test]
    fn the_request_filters_one_field_in_one_location() {
        let body = request("loc1", "phone", "+14155550101");
        assert_eq!(body["locationId"], "loc1");
        assert_eq!(body["filters"][0]["field"], "phone");
        assert_eq!(body["filters"][0]["operator"], "eq");
        assert_eq!(body["filters"][0]["value"], "+14155550101");
    }
}
