//! Follow-ups: the last plan answered in each session, by (user, session) ([`Sessions`]), and whether a
//! question reads as a refinement of the one before it ([`is_follow_up`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::cache::normalize_question;
use super::{Asker, Plan, Previous};

/// Whether a question reads as a refinement of the one before (`and only for acme?`, `what about last week`,
/// `same for globex`): it starts with words that continue a conversation. Anything else stands alone (a short
/// question such as `count me` is a question of its own); `SETTINGS aurora_follow_up = 1` says otherwise.
pub fn is_follow_up(question: &str) -> bool {
    const OPENERS: &[&str] = &[
        "and",
        "but",
        "only",
        "now",
        "also",
        "same",
        "instead",
        "then",
        "just",
        "except",
        "without",
        "excluding",
        "what about",
        "how about",
        "what if",
        "split",
        "break it down",
        "sort",
        "order by",
        "limit it",
        "filter",
        "restrict",
        "exclude",
        "include",
    ];
    let lower = normalize_question(question);
    let words: Vec<&str> = lower.split_whitespace().collect();
    let starts = OPENERS.iter().any(|opener| {
        let opener: Vec<&str> = opener.split_whitespace().collect();
        words.len() >= opener.len()
            && words
                .iter()
                .zip(&opener)
                .all(|(w, o)| w.trim_matches(|c: char| !c.is_alphanumeric()) == *o)
    });
    starts
}

/// The last question answered in each session, by (user, session), for follow-ups; bounded in number and age.
pub(super) struct Sessions {
    /// The plans without their conversation (a session keeps what a follow-up or a mark needs, not the prompt).
    entries: Mutex<HashMap<(String, String), (Plan, Instant)>>,
}

impl Sessions {
    const MAX: usize = 10_000;
    const TTL: Duration = Duration::from_secs(30 * 60);

    /// No session yet.
    pub(super) fn new() -> Sessions {
        Sessions {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn key(asker: &Asker) -> Option<(String, String)> {
        Some((asker.credentials.user.clone(), asker.session.clone()?))
    }

    pub(super) fn get(&self, asker: &Asker) -> Option<Previous> {
        self.last(asker).map(|plan| Previous {
            question: plan.question,
            sql: plan.written_sql,
        })
    }

    /// The session's last answered plan (without its conversation).
    pub(super) fn last(&self, asker: &Asker) -> Option<Plan> {
        let key = Self::key(asker)?;
        let entries = self.entries.lock().expect("sessions lock");
        entries
            .get(&key)
            .filter(|(_, at)| at.elapsed() < Self::TTL)
            .map(|(plan, _)| plan.clone())
    }

    pub(super) fn put(&self, asker: &Asker, plan: &Plan) {
        let Some(key) = Self::key(asker) else { return };
        let mut entries = self.entries.lock().expect("sessions lock");
        if entries.len() >= Self::MAX {
            entries.retain(|_, (_, at)| at.elapsed() < Self::TTL);
            if entries.len() >= Self::MAX {
                if let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
                {
                    entries.remove(&oldest);
                }
            }
        }
        let kept = Plan {
            conversation: Vec::new(),
            answer: String::new(),
            ..plan.clone()
        };
        entries.insert(key, (kept, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_ups_are_told_by_their_first_words_or_their_length() {
        for q in [
            "and only for acme?",
            "And what about globex",
            "only purchases",
            "what about last week?",
            "same for November",
            "split it by plan",
        ] {
            assert!(is_follow_up(q), "{q}");
        }
        for q in [
            "How many events are there in total?",
            "top 5 tenants by revenue in October 2026",
            "Which tenant ids are on the enterprise plan?",
            "count me",
            "by country",
        ] {
            assert!(!is_follow_up(q), "{q}");
        }
    }

    #[test]
    fn a_follow_up_prompt_carries_the_previous_question_and_sql_before_the_new_one() {
        let previous = Previous {
            question: "revenue per tenant".into(),
            sql: "SELECT tenant_id, sum(revenue) FROM analytics.events GROUP BY tenant_id".into(),
        };
        let user = crate::context::with_previous(
            "Tables:\nanalytics.events\n\nQuestion: and only acme?\nJSON:",
            &previous.question,
            &previous.sql,
        );
        let at = |needle: &str| {
            user.find(needle)
                .unwrap_or_else(|| panic!("{needle} missing in {user}"))
        };
        assert!(at("Previous question: revenue per tenant") < at("Its SQL: SELECT tenant_id"));
        assert!(at("Its SQL: SELECT tenant_id") < at("Question: and only acme?"));
        assert!(user.starts_with("Tables:"));
    }
}
