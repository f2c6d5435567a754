//! The action call HighLevel sends, read and validated.
//!
//! ```json
//! {"data": {"contactId"?, "messageId"?, "notes"?, "tags"?, "sentiment"?, "score"?},
//!  "extras": {"locationId", "contactId", "workflowId"},
//!  "meta": {"key", "version"}}
//! ```
//!
//! HighLevel form fields arrive as strings, and a field the workflow author
//! left blank arrives as `""`: empty values count as absent. `tags` may be a
//! JSON array or a comma-separated string; `score` a number or numeric text.

use serde_json::Value;

/// Most tags one call may add.
pub const MAX_TAGS: usize = 20;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 64;
/// Longest contact or message id accepted. HighLevel ids are ~20 characters.
const MAX_ID_CHARS: usize = 64;

/// The action's form fields, by their HighLevel reference keys (the keys
/// of `data`). Every read of `data` goes through this list, so it is all
/// write-back reads; the marketplace kit
/// (`marketplace/actions/update-call-record.json`) lists the same fields,
/// which this crate's tests check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// `contactId`: the contact, else `extras.contactId`.
    ContactId,
    /// `messageId`: the call's message, named in the note.
    MessageId,
    /// `notes`: the note's text.
    Notes,
    /// `tags`: tags to add.
    Tags,
    /// `sentiment`: positive, neutral, negative or mixed.
    Sentiment,
    /// `score`: the sentiment's score, -1 to 1.
    Score,
}

impl Field {
    /// Every field, in the form's order.
    pub const ALL: [Field; 6] = [
        Field::ContactId,
        Field::MessageId,
        Field::Notes,
        Field::Tags,
        Field::Sentiment,
        Field::Score,
    ];

    /// Its reference key in `data`.
    pub const fn key(self) -> &'static str {
        match self {
            Field::ContactId => "contactId",
            Field::MessageId => "messageId",
            Field::Notes => "notes",
            Field::Tags => "tags",
            Field::Sentiment => "sentiment",
            Field::Score => "score",
        }
    }

    fn read(self, data: &serde_json::Map<String, Value>) -> Option<&Value> {
        data.get(self.key())
    }
}

/// How the call went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sentiment {
    /// positive
    Positive,
    /// neutral
    Neutral,
    /// negative
    Negative,
    /// mixed
    Mixed,
}

impl Sentiment {
    /// The value written to the CRM and returned to the workflow.
    pub fn as_str(self) -> &'static str {
        match self {
            Sentiment::Positive => "positive",
            Sentiment::Neutral => "neutral",
            Sentiment::Negative => "negative",
            Sentiment::Mixed => "mixed",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "positive" => Some(Sentiment::Positive),
            "neutral" => Some(Sentiment::Neutral),
            "negative" => Some(Sentiment::Negative),
            "mixed" => Some(Sentiment::Mixed),
            _ => None,
        }
    }
}

/// A valid update, ready to apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    /// The contact: `data.contactId`, else `extras.contactId`.
    pub contact_id: String,
    /// The call's message id, mentioned in the note.
    pub message_id: Option<String>,
    /// Notes text.
    pub notes: Option<String>,
    /// Tags to add, trimmed and without duplicates.
    pub tags: Vec<String>,
    /// Sentiment.
    pub sentiment: Option<Sentiment>,
    /// Sentiment score in [-1, 1]; only with a sentiment.
    pub score: Option<f64>,
}

impl Update {
    /// The custom field value: `positive` or `positive (0.80)`.
    pub fn sentiment_value(&self) -> Option<String> {
        let sentiment = self.sentiment?.as_str();
        Some(match self.score {
            Some(score) => format!("{sentiment} ({score:.2})"),
            None => sentiment.to_string(),
        })
    }

    /// The note text: a heading naming the call, then the notes.
    pub fn note_body(&self) -> Option<String> {
        let notes = self.notes.as_deref()?;
        Some(match &self.message_id {
            Some(id) => format!("Call notes (message {id}):\n{notes}"),
            None => format!("Call notes:\n{notes}"),
        })
    }
}

/// `extras.locationId`, when it is a string.
pub fn location_id(body: &Value) -> Option<&str> {
    body.pointer("/extras/locationId").and_then(Value::as_str)
}

/// Validate the call. `Err` lists every problem, each naming its field.
pub fn parse(body: &Value, max_notes_chars: usize) -> Result<Update, String> {
    let mut problems = Vec::new();
    let empty = serde_json::Map::new();
    let data = match body.get("data") {
        Some(Value::Object(data)) => data,
        None | Some(Value::Null) => &empty,
        Some(_) => return Err("data must be an object of the action's fields".into()),
    };
    let mut text = |field: Field| -> Option<String> {
        match field.read(data) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                problems.push(format!(
                    "data.{} must be text, not {}",
                    field.key(),
                    kind(other)
                ));
                None
            }
        }
    };
    let contact_id = text(Field::ContactId).map(|s| s.trim().to_string());
    let message_id = text(Field::MessageId).map(|s| s.trim().to_string());
    let notes = text(Field::Notes);
    let sentiment_text = text(Field::Sentiment);
    let extras_contact = match body.pointer("/extras/contactId") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    };

    let contact_id = contact_id.or(extras_contact);
    match &contact_id {
        None => problems.push(
            "contact id missing: set data.contactId, or run the action on a contact so extras.contactId is sent".into(),
        ),
        Some(id) if !is_id(id) => problems.push(format!(
            "contact id {id:?} is not a HighLevel id (letters, digits, '-' and '_', at most {MAX_ID_CHARS})"
        )),
        Some(_) => {}
    }
    if let Some(id) = &message_id
        && !is_id(id)
    {
        problems.push(format!(
            "data.messageId {id:?} is not a HighLevel id (letters, digits, '-' and '_', at most {MAX_ID_CHARS})"
        ));
    }
    if let Some(notes) = &notes {
        let chars = notes.chars().count();
        if chars > max_notes_chars {
            problems.push(format!(
                "data.notes is {chars} characters; at most {max_notes_chars} are accepted, shorten the notes"
            ));
        }
    }
    let tags = tags(Field::Tags.read(data), &mut problems);
    let sentiment = sentiment_text.and_then(|s| {
        let parsed = Sentiment::parse(s.trim());
        if parsed.is_none() {
            problems.push(format!(
                "data.sentiment {:?} must be one of positive, neutral, negative, mixed",
                s.trim()
            ));
        }
        parsed
    });
    let score = score(Field::Score.read(data), &mut problems);
    let given = |field: Field| field.read(data).is_some_and(|v| !is_blank(v));
    if score.is_some() && !given(Field::Sentiment) {
        problems.push(
            "data.score was given without data.sentiment: send a sentiment with the score".into(),
        );
    }
    if problems.is_empty() && notes.is_none() && tags.is_empty() && sentiment.is_none() {
        problems.push(
            "nothing to update: give at least one of data.notes, data.tags or data.sentiment"
                .into(),
        );
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    Ok(Update {
        contact_id: contact_id.unwrap_or_default(),
        message_id,
        notes,
        tags,
        sentiment,
        score,
    })
}

fn tags(value: Option<&Value>, problems: &mut Vec<String>) -> Vec<String> {
    let raw: Vec<String> = match value {
        None | Some(Value::Null) => return Vec::new(),
        // A form field: "vip, follow-up". Blank pieces (a trailing comma) are dropped.
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect(),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s) => out.push(s.trim().to_string()),
                    None => {
                        problems.push(format!("data.tags[{i}] must be text, not {}", kind(item)))
                    }
                }
            }
            out
        }
        Some(other) => {
            problems.push(format!(
                "data.tags must be a list of tags or comma-separated text, not {}",
                kind(other)
            ));
            return Vec::new();
        }
    };
    let mut tags: Vec<String> = Vec::new();
    for tag in raw {
        let chars = tag.chars().count();
        if chars == 0 || chars > MAX_TAG_CHARS {
            problems.push(format!(
                "data.tags: tag {tag:?} must be 1 to {MAX_TAG_CHARS} characters"
            ));
        } else if tag.contains(',') {
            problems.push(format!("data.tags: tag {tag:?} must not contain a comma"));
        } else if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.len() > MAX_TAGS {
        problems.push(format!(
            "data.tags has {} tags; at most {MAX_TAGS} may be added at once",
            tags.len()
        ));
    }
    tags
}

fn score(value: Option<&Value>, problems: &mut Vec<String>) -> Option<f64> {
    let number = match value {
        None | Some(Value::Null) => return None,
        Some(Value::String(s)) if s.trim().is_empty() => return None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match number {
        Some(n) if n.is_finite() && (-1.0..=1.0).contains(&n) => Some(n),
        _ => {
            problems.push(format!(
                "data.score {} must be a number from -1 to 1",
                value.map(Value::to_string).unwrap_or_default()
            ));
            None
        }
    }
}

/// Absent in effect: null, blank text, an empty list.
fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// Ids go into request paths: only characters that cannot change the path.
fn is_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_CHARS
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[path = "action_tests.rs"]
mod tests;
