//! The answer caches ([`AnswerCache`]): plans by exact question ([`CacheKey`]: the normalized question, the
//! catalog version, who asks in which database), and by question vector for a question close enough to one
//! answered before in the same scope (the semantic cache). Bounded in number, oldest out first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::{Asker, CacheHit, Plan};
use crate::embed::{cosine, Vector};

pub use crate::compare::normalize_question;

/// What a cached plan is stored and found by: (normalized question, catalog version, who asks in which database).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct CacheKey {
    /// The question as [`normalize_question`] leaves it.
    question: String,
    /// The version of the catalog the plan was made for: once the tables change, the plan is not served.
    catalog_version: u64,
    /// Who asks where: the user, a newline, the current database.
    scope: String,
}

impl CacheKey {
    /// The key of `question` asked by `asker` (in their current database) over a catalog of `catalog_version`.
    pub(super) fn new(question: &str, catalog_version: u64, asker: &Asker) -> CacheKey {
        CacheKey {
            question: normalize_question(question),
            catalog_version,
            scope: format!("{}\n{}", asker.credentials.user, asker.current_database()),
        }
    }

    /// Whether a plan stored under `self` may answer a question asked under `other` when the questions are
    /// similar: the same user in the same database, over the same catalog version.
    fn same_scope(&self, other: &CacheKey) -> bool {
        self.scope == other.scope && self.catalog_version == other.catalog_version
    }
}

/// One question of the semantic cache: its vector and the key its plan is stored under.
struct SemanticEntry {
    key: CacheKey,
    vector: Vector,
}

struct Caches {
    exact: HashMap<CacheKey, Plan>,
    /// The keys of `exact`, oldest first.
    order: VecDeque<CacheKey>,
    /// The questions of `exact` that came with a vector.
    semantic: Vec<SemanticEntry>,
}

/// The plans answered before, for the same question again (exact) or a similar one (semantic).
pub(super) struct AnswerCache {
    caches: Mutex<Caches>,
    /// Plans kept at most (`exact_cache_entries`); 0 keeps none.
    limit: usize,
    /// Cosine similarity at or above which a cached question's plan is reused (`semantic_cache_threshold`);
    /// `None` turns the semantic cache off.
    semantic_threshold: Option<f32>,
}

impl AnswerCache {
    pub(super) fn new(limit: usize, semantic_threshold: Option<f32>) -> AnswerCache {
        AnswerCache {
            caches: Mutex::new(Caches {
                exact: HashMap::new(),
                order: VecDeque::new(),
                semantic: Vec::new(),
            }),
            limit,
            semantic_threshold,
        }
    }

    /// The plan stored under `key`, as an exact hit.
    pub(super) fn exact(&self, key: &CacheKey) -> Option<Plan> {
        let caches = self.caches.lock().expect("cache lock");
        caches.exact.get(key).map(|plan| Plan {
            cached: Some(CacheHit::Exact),
            ..plan.clone()
        })
    }

    /// The plan of the cached question of `key`'s scope most similar to `vector`, as a semantic hit, when that
    /// similarity reaches the threshold.
    pub(super) fn semantic(&self, key: &CacheKey, vector: Option<&Vector>) -> Option<Plan> {
        let threshold = self.semantic_threshold?;
        let vector = vector?;
        let caches = self.caches.lock().expect("cache lock");
        let found = caches
            .semantic
            .iter()
            .filter(|entry| entry.key.same_scope(key))
            .map(|entry| (cosine(vector, &entry.vector), entry))
            .filter(|(similarity, _)| *similarity >= threshold)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, entry)| &entry.key)?;
        caches.exact.get(found).map(|plan| Plan {
            cached: Some(CacheHit::Semantic),
            ..plan.clone()
        })
    }

    /// Stores `plan` under `key` (and under `vector` for the semantic cache when the key is new); past the
    /// limit, the oldest plans leave both caches.
    pub(super) fn remember(&self, key: &CacheKey, plan: &Plan, vector: Option<Vector>) {
        if self.limit == 0 {
            return;
        }
        let mut caches = self.caches.lock().expect("cache lock");
        if caches.exact.insert(key.clone(), plan.clone()).is_none() {
            caches.order.push_back(key.clone());
            if let Some(vector) = vector {
                caches.semantic.push(SemanticEntry {
                    key: key.clone(),
                    vector,
                });
            }
        }
        while caches.order.len() > self.limit {
            if let Some(old) = caches.order.pop_front() {
                caches.exact.remove(&old);
                caches.semantic.retain(|entry| entry.key != old);
            }
        }
    }

    /// Drops the plan stored under `key` from both caches.
    pub(super) fn forget(&self, key: &CacheKey) {
        let mut caches = self.caches.lock().expect("cache lock");
        caches.exact.remove(key);
        caches.order.retain(|k| k != key);
        caches.semantic.retain(|entry| &entry.key != key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clickhouse::Credentials;

    fn asker(user: &str, database: &str) -> Asker {
        Asker {
            credentials: Credentials::new(user, ""),
            database: database.into(),
            session: None,
            tenant: None,
        }
    }

    fn vector(values: &[f32]) -> Vector {
        values.into()
    }

    /// The SQL of the plan a lookup found, if any.
    fn sql(found: Option<Plan>) -> Option<String> {
        found.map(|plan| plan.sql)
    }

    #[test]
    fn questions_normalize_for_the_exact_cache() {
        assert_eq!(normalize_question("  Top 5   Tenants? "), "top 5 tenants");
        assert_eq!(normalize_question("top 5 tenants"), "top 5 tenants");
        assert_ne!(
            normalize_question("top 5 tenants"),
            normalize_question("top 6 tenants")
        );
    }

    #[test]
    fn an_exact_hit_is_found_by_the_normalized_question() {
        let cache = AnswerCache::new(10, None);
        let alice = asker("alice", "analytics");
        let plan = Plan::for_tests("Top 5 tenants?", "SELECT 1");
        cache.remember(&CacheKey::new("Top 5 tenants?", 7, &alice), &plan, None);

        let hit = cache
            .exact(&CacheKey::new("  top 5   TENANTS ", 7, &alice))
            .expect("exact hit");
        assert_eq!(hit.cached, Some(CacheHit::Exact));
        assert_eq!(hit.sql, "SELECT 1");
        assert_eq!(hit.question, "Top 5 tenants?");
        assert!(cache.exact(&CacheKey::new("top 6 tenants", 7, &alice)).is_none());
    }

    #[test]
    fn another_user_database_or_catalog_version_misses_the_exact_cache() {
        let cache = AnswerCache::new(10, None);
        let plan = Plan::for_tests("top tenants", "SELECT 1");
        cache.remember(&CacheKey::new("top tenants", 7, &asker("alice", "")), &plan, None);

        // An empty database is `default`.
        assert!(cache
            .exact(&CacheKey::new("top tenants", 7, &asker("alice", "default")))
            .is_some());
        assert!(cache
            .exact(&CacheKey::new("top tenants", 7, &asker("bob", "default")))
            .is_none());
        assert!(cache
            .exact(&CacheKey::new("top tenants", 7, &asker("alice", "sales")))
            .is_none());
        assert!(cache
            .exact(&CacheKey::new("top tenants", 8, &asker("alice", "default")))
            .is_none());
        // The user and the database are kept apart, not run together.
        let cache = AnswerCache::new(10, None);
        cache.remember(&CacheKey::new("top tenants", 7, &asker("a", "bc")), &plan, None);
        assert!(cache
            .exact(&CacheKey::new("top tenants", 7, &asker("ab", "c")))
            .is_none());
    }

    #[test]
    fn the_semantic_cache_serves_a_close_question_of_the_same_scope_only() {
        let cache = AnswerCache::new(10, Some(0.9));
        let alice = asker("alice", "analytics");
        let plan = Plan::for_tests("revenue per tenant", "SELECT 1");
        let key = CacheKey::new("revenue per tenant", 7, &alice);
        cache.remember(&key, &plan, Some(vector(&[1.0, 0.0])));

        let asked = |question: &str, version: u64, asker: &Asker, v: &[f32]| {
            cache.semantic(&CacheKey::new(question, version, asker), Some(&vector(v)))
        };
        // Similarity 0.95, above the threshold.
        let hit = asked("tenant revenue", 7, &alice, &[0.95, 0.312_25]).expect("semantic hit");
        assert_eq!(hit.cached, Some(CacheHit::Semantic));
        assert_eq!(hit.sql, "SELECT 1");
        // Similarity 0.8, below it.
        assert!(asked("tenant revenue", 7, &alice, &[0.8, 0.6]).is_none());
        // Close, but another user, another database, another catalog version.
        assert!(asked("tenant revenue", 7, &asker("bob", "analytics"), &[0.95, 0.312_25]).is_none());
        assert!(asked("tenant revenue", 7, &asker("alice", "sales"), &[0.95, 0.312_25]).is_none());
        assert!(asked("tenant revenue", 8, &alice, &[0.95, 0.312_25]).is_none());
        // No vector for the question, or the semantic cache off.
        assert!(cache.semantic(&key, None).is_none());
        let off = AnswerCache::new(10, None);
        off.remember(&key, &plan, Some(vector(&[1.0, 0.0])));
        assert!(off.semantic(&key, Some(&vector(&[1.0, 0.0]))).is_none());
    }

    #[test]
    fn the_semantic_cache_serves_the_most_similar_question() {
        let cache = AnswerCache::new(10, Some(0.9));
        let alice = asker("alice", "analytics");
        let far = Plan::for_tests("revenue per tenant", "SELECT 1");
        let near = Plan::for_tests("revenue by tenant", "SELECT 2");
        cache.remember(
            &CacheKey::new(&far.question, 7, &alice),
            &far,
            Some(vector(&[0.96, 0.28])),
        );
        cache.remember(
            &CacheKey::new(&near.question, 7, &alice),
            &near,
            Some(vector(&[1.0, 0.0])),
        );
        let key = CacheKey::new("tenant revenue", 7, &alice);
        assert_eq!(
            sql(cache.semantic(&key, Some(&vector(&[1.0, 0.0])))).as_deref(),
            Some("SELECT 2")
        );
    }

    #[test]
    fn the_oldest_plan_leaves_both_caches_when_the_limit_is_passed() {
        let cache = AnswerCache::new(2, Some(0.9));
        let alice = asker("alice", "analytics");
        let plans = [
            (Plan::for_tests("first", "SELECT 1"), [1.0, 0.0, 0.0]),
            (Plan::for_tests("second", "SELECT 2"), [0.0, 1.0, 0.0]),
            // Similar to the first (0.96), less than the first to itself.
            (Plan::for_tests("third", "SELECT 3"), [0.96, 0.0, 0.28]),
        ];
        for (plan, v) in &plans {
            cache.remember(&CacheKey::new(&plan.question, 7, &alice), plan, Some(vector(v)));
        }
        let exact = |question: &str| sql(cache.exact(&CacheKey::new(question, 7, &alice)));
        assert_eq!(exact("first"), None);
        assert_eq!(exact("second").as_deref(), Some("SELECT 2"));
        assert_eq!(exact("third").as_deref(), Some("SELECT 3"));
        // The first question's vector left too: the closest vector still cached is the third's.
        let key = CacheKey::new("one more", 7, &alice);
        assert_eq!(
            sql(cache.semantic(&key, Some(&vector(&[1.0, 0.0, 0.0])))).as_deref(),
            Some("SELECT 3")
        );
        let caches = cache.caches.lock().unwrap();
        assert_eq!(
            (caches.exact.len(), caches.order.len(), caches.semantic.len()),
            (2, 2, 2)
        );
    }

    #[test]
    fn a_plan_stored_again_does_not_count_twice_and_a_zero_limit_keeps_nothing() {
        let cache = AnswerCache::new(2, None);
        let alice = asker("alice", "analytics");
        let first = Plan::for_tests("first", "SELECT 1");
        let second = Plan::for_tests("second", "SELECT 2");
        cache.remember(&CacheKey::new("first", 7, &alice), &first, None);
        cache.remember(&CacheKey::new("second", 7, &alice), &second, None);
        cache.remember(&CacheKey::new("first", 7, &alice), &first, None);
        assert!(cache.exact(&CacheKey::new("first", 7, &alice)).is_some());
        assert!(cache.exact(&CacheKey::new("second", 7, &alice)).is_some());

        let none = AnswerCache::new(0, Some(0.9));
        none.remember(&CacheKey::new("first", 7, &alice), &first, Some(vector(&[1.0])));
        assert!(none.exact(&CacheKey::new("first", 7, &alice)).is_none());
    }

    #[test]
    fn forget_removes_the_exact_and_the_semantic_entry() {
        let cache = AnswerCache::new(2, Some(0.9));
        let alice = asker("alice", "analytics");
        let first = Plan::for_tests("first", "SELECT 1");
        let second = Plan::for_tests("second", "SELECT 2");
        let key = |question: &str| CacheKey::new(question, 7, &alice);
        cache.remember(&key("first"), &first, Some(vector(&[1.0, 0.0])));
        cache.remember(&key("second"), &second, Some(vector(&[0.96, 0.28])));

        cache.forget(&key("first"));
        assert!(cache.exact(&key("first")).is_none());
        // The first question's vector is gone: the closest one left is the second's.
        assert_eq!(
            sql(cache.semantic(&key("again"), Some(&vector(&[1.0, 0.0])))).as_deref(),
            Some("SELECT 2")
        );
        // It left the eviction order too: stored again, it does not push itself (or the second) out.
        cache.remember(&key("first"), &first, None);
        assert!(cache.exact(&key("first")).is_some());
        assert!(cache.exact(&key("second")).is_some());
    }
}
