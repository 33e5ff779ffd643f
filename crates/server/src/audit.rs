//! The audit log: a hash chain of security-relevant events.
//!
//! # Design
//!
//! Every event carries `seq` (1, 2, 3, … without gaps), the hash of the event before it
//! (`prev_hash`; 64 zeros for the first) and its own `hash`: hex SHA-256 over `prev_hash`, a
//! newline, and the event's canonical JSON (an object with sorted keys holding every field but
//! `hash`; `details` is included as the exact JSON text stored). Editing any field of a stored
//! event changes its hash; deleting an event leaves a gap in `seq` and a `prev_hash` that no
//! longer matches. [`verify`] walks the chain and names the first event that does not fit.
//!
//! # Limitations
//!
//! A chain cannot show that its newest events were cut off: `warden audit verify` prints the
//! head (last `seq` and hash) so an operator can keep it elsewhere and compare. Someone who can
//! write the store can also rewrite the whole chain from the edited event on; keep a copy of the
//! head hash off the host (or ship the log) when that matters.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Whether an audited action was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Allowed (and carried out).
    Allow,
    /// Refused.
    Deny,
    /// Attempted and failed on Warden's side.
    Error,
}

impl Decision {
    /// `allow`, `deny` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Error => "error",
        }
    }
}

/// An event to record; the store adds `seq`, `time` and the hashes.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    /// Request id (`X-Request-Id`), when the event comes from a request.
    pub request_id: Option<String>,
    /// Who: `key:<id>`, `jwt:<sub>`, `cli` for local administration, or none when unknown.
    pub principal: Option<String>,
    /// Client address (`IP:port`).
    pub client: Option<String>,
    /// What: `auth`, `execution`, `fetch`, `key.create`, `key.revoke`, `lockdown`,
    /// `rate_limit`, `queue`, `scope`, `execution.read`.
    pub action: String,
    /// `allow`, `deny` or `error`.
    pub decision: &'static str,
    /// Why (the real reason, also for authentication failures).
    pub reason: Option<String>,
    /// More facts (language, outcome, URL, rule, …).
    pub details: serde_json::Value,
}

impl NewEvent {
    /// An event for `action` with `decision`.
    pub fn new(action: &str, decision: Decision) -> Self {
        NewEvent {
            action: action.to_string(),
            decision: decision.as_str(),
            details: serde_json::Value::Object(serde_json::Map::new()),
            ..NewEvent::default()
        }
    }

    /// Sets the reason, cut to [`REASON_MAX`] bytes.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(clip(&reason.into(), REASON_MAX));
        self
    }

    /// Sets the details object; one whose JSON text is longer than [`DETAILS_MAX`] bytes is
    /// replaced by `{"truncated": true, "bytes": N}`. Callers keep their fields short; this
    /// is the backstop that keeps a client-sized string from becoming a client-sized row.
    pub fn details(mut self, details: serde_json::Value) -> Self {
        let bytes = details.to_string().len();
        self.details = if bytes > DETAILS_MAX {
            serde_json::json!({"truncated": true, "bytes": bytes})
        } else {
            details
        };
        self
    }
}

/// Longest audit `reason`, in bytes.
pub const REASON_MAX: usize = 1024;

/// Longest audit `details` JSON text, in bytes.
pub const DETAILS_MAX: usize = 8 << 10;

/// `text` cut to at most `max` bytes at a character boundary, with `…(N bytes)` appended
/// when cut (N the original length): for client-controlled text in audit rows and logs.
pub fn clip(text: &str, max: usize) -> String {
    let head = prefix(text, max);
    if head.len() == text.len() {
        text.to_string()
    } else {
        format!("{head}…({} bytes)", text.len())
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends at a character boundary.
pub fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// RFC 3339 time (UTC).
    pub time: String,
    /// Request id.
    pub request_id: Option<String>,
    /// Principal.
    pub principal: Option<String>,
    /// Client address.
    pub client: Option<String>,
    /// Action.
    pub action: String,
    /// `allow`, `deny` or `error`.
    pub decision: String,
    /// Reason.
    pub reason: Option<String>,
    /// Details: JSON text exactly as hashed.
    pub details: String,
    /// Hash of the previous event.
    pub prev_hash: String,
    /// This event's hash.
    pub hash: String,
}

impl Event {
    /// The hash this event should carry, from its fields and `prev_hash`.
    pub fn compute_hash(&self) -> String {
        let mut canonical: BTreeMap<&str, serde_json::Value> = BTreeMap::new();
        let opt = |v: &Option<String>| v.clone().map_or(serde_json::Value::Null, Into::into);
        canonical.insert("seq", self.seq.into());
        canonical.insert("time", self.time.clone().into());
        canonical.insert("request_id", opt(&self.request_id));
        canonical.insert("principal", opt(&self.principal));
        canonical.insert("client", opt(&self.client));
        canonical.insert("action", self.action.clone().into());
        canonical.insert("decision", self.decision.clone().into());
        canonical.insert("reason", opt(&self.reason));
        canonical.insert("details", self.details.clone().into());
        canonical.insert("prev_hash", self.prev_hash.clone().into());
        // A BTreeMap of strings and scalars serialises with sorted keys and no whitespace.
        let json = serde_json::to_string(&canonical).unwrap_or_default();
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.as_bytes());
        hasher.update(b"\n");
        hasher.update(json.as_bytes());
        hex::encode(hasher.finalize())
    }
}

/// The first event that breaks the chain, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// An event's fields do not match its hash: it was edited.
    #[error("event {seq}: its hash does not match its contents (edited)")]
    Edited {
        /// The event.
        seq: i64,
    },
    /// An event's `prev_hash` is not the previous event's hash.
    #[error("event {seq}: prev_hash does not match event {prev}'s hash (an event was edited, inserted or deleted before it)")]
    Link {
        /// The event.
        seq: i64,
        /// The event before it in the store.
        prev: i64,
    },
    /// `seq` jumps: events in between were deleted.
    #[error(
        "event {seq}: expected seq {expected}; events {expected}..{seq} are missing (deleted)"
    )]
    Gap {
        /// The event found.
        seq: i64,
        /// The seq expected.
        expected: i64,
    },
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// Events checked.
    pub events: u64,
    /// Seq of the last event (0 when empty).
    pub last_seq: i64,
    /// Hash of the last event ([`GENESIS_HASH`] when empty).
    pub last_hash: String,
}

/// Checks events given in `seq` order, continuing from `head` (start with [`ChainHead::empty`]).
///
/// # Errors
///
/// The first [`ChainBreak`].
pub fn verify<'a>(
    mut head: ChainHead,
    events: impl IntoIterator<Item = &'a Event>,
) -> Result<ChainHead, ChainBreak> {
    for event in events {
        let expected = head.last_seq + 1;
        if event.seq != expected {
            return Err(ChainBreak::Gap {
                seq: event.seq,
                expected,
            });
        }
        if event.prev_hash != head.last_hash {
            return Err(ChainBreak::Link {
                seq: event.seq,
                prev: head.last_seq,
            });
        }
        if event.compute_hash() != event.hash {
            return Err(ChainBreak::Edited { seq: event.seq });
        }
        head = ChainHead {
            events: head.events + 1,
            last_seq: event.seq,
            last_hash: event.hash.clone(),
        };
    }
    Ok(head)
}

impl ChainHead {
    /// The head of an empty chain.
    pub fn empty() -> Self {
        ChainHead {
            events: 0,
            last_seq: 0,
            last_hash: GENESIS_HASH.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn client_sized_reasons_and_details_are_bounded() {
        let event = NewEvent::new("auth", Decision::Deny)
            .reason("é".repeat(5000))
            .details(serde_json::json!({"route": "a".repeat(DETAILS_MAX)}));
        let reason = event.reason.unwrap();
        assert!(reason.len() <= REASON_MAX + 32, "{}", reason.len());
        assert!(reason.ends_with("…(10000 bytes)"), "{reason}");
        assert_eq!(event.details["truncated"], true);
        let small = NewEvent::new("auth", Decision::Deny).details(serde_json::json!({"a": 1}));
        assert_eq!(small.details["a"], 1);
        assert_eq!(clip("short", 10), "short");
    }

    fn chain(n: i64) -> Vec<Event> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let mut e = Event {
                    seq,
                    time: format!("2026-01-01T00:00:0{seq}Z"),
                    request_id: Some(format!("r{seq}")),
                    principal: Some("key:abc".into()),
                    client: None,
                    action: "execution".into(),
                    decision: "allow".into(),
                    reason: None,
                    details: r#"{"language":"python"}"#.into(),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = e.compute_hash();
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        let events = chain(4);
        let head = verify(ChainHead::empty(), &events).unwrap();
        assert_eq!(head.events, 4);
        assert_eq!(head.last_hash, events[3].hash);
        assert_eq!(verify(ChainHead::empty(), &[]).unwrap(), ChainHead::empty());
    }

    #[test]
    fn an_edited_field_is_found() {
        let mut events = chain(4);
        events[2].decision = "deny".into();
        assert_eq!(
            verify(ChainHead::empty(), &events),
            Err(ChainBreak::Edited { seq: 3 })
        );
        let mut events = chain(4);
        events[1].details = r#"{"language":"bash"}"#.into();
        assert_eq!(
            verify(ChainHead::empty(), &events),
            Err(ChainBreak::Edited { seq: 2 })
        );
    }

    #[test]
    fn an_edit_with_a_recomputed_hash_breaks_the_next_link() {
        let mut events = chain(4);
        events[1].reason = Some("forged".into());
        events[1].hash = events[1].compute_hash();
        assert_eq!(
            verify(ChainHead::empty(), &events),
            Err(ChainBreak::Link { seq: 3, prev: 2 })
        );
    }

    #[test]
    fn a_deleted_event_is_found() {
        let mut events = chain(4);
        events.remove(1);
        assert_eq!(
            verify(ChainHead::empty(), &events),
            Err(ChainBreak::Gap {
                seq: 3,
                expected: 2
            })
        );
    }
}
