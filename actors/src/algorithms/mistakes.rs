//! Mistakes: recurring mistake patterns of one learner.
//!
//! Wrong answers carry tags (e.g. `sign-error`, `off-by-one`, from the rubric or a
//! grader). A pattern is a (skill, tag) pair seen in at least `min_frequency` wrong
//! answers within the last `lookback_days` before `now`. Tags are trimmed and
//! lowercased and counted once per answer, so one answer cannot make a pattern alone.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{AlgoError, AlgoKey};

/// Params of mistakes v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MistakesParams {
    /// Wrong answers a (skill, tag) needs to count as a pattern (seed: 3).
    pub min_frequency: u32,
    /// How far back to look, in days (seed: 90).
    pub lookback_days: u32,
}

impl Default for MistakesParams {
    fn default() -> Self {
        MistakesParams {
            min_frequency: 3,
            lookback_days: 90,
        }
    }
}

impl MistakesParams {
    /// Check ranges.
    pub fn validate(&self) -> Result<(), AlgoError> {
        if self.min_frequency == 0 {
            return Err(AlgoError::InvalidParams {
                key: AlgoKey::Mistakes,
                field: "min_frequency",
                reason: "must be at least 1".into(),
            });
        }
        if self.lookback_days == 0 || self.lookback_days > 36_500 {
            return Err(AlgoError::InvalidParams {
                key: AlgoKey::Mistakes,
                field: "lookback_days",
                reason: "must be within 1..=36500".into(),
            });
        }
        Ok(())
    }
}

/// One wrong answer of the learner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WrongAnswer {
    /// When it was given.
    pub at: DateTime<Utc>,
    /// The item.
    pub item_id: String,
    /// The skill / focus area.
    pub skill_id: String,
    /// Mistake tags.
    pub tags: Vec<String>,
}

/// A recurring mistake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MistakePattern {
    /// The skill / focus area.
    pub skill_id: String,
    /// The normalised tag.
    pub tag: String,
    /// Wrong answers in the window with this tag.
    pub count: u32,
    /// Distinct items among them.
    pub distinct_items: u32,
    /// `count` / wrong answers in the window (all skills).
    pub share: f64,
    /// Earliest occurrence in the window.
    pub first_seen: DateTime<Utc>,
    /// Latest occurrence in the window.
    pub last_seen: DateTime<Utc>,
}

/// Patterns in `(now − lookback_days, now]`, most frequent first (then most recent,
/// then skill and tag), whatever order `wrong` is in.
pub fn mine(
    params: &MistakesParams,
    wrong: &[WrongAnswer],
    now: DateTime<Utc>,
) -> Vec<MistakePattern> {
    let since = now - Duration::days(i64::from(params.lookback_days));
    struct Acc {
        count: u32,
        items: BTreeSet<String>,
        first: DateTime<Utc>,
        last: DateTime<Utc>,
    }
    let mut groups: BTreeMap<(String, String), Acc> = BTreeMap::new();
    let mut total = 0u32;
    for answer in wrong.iter().filter(|a| a.at > since && a.at <= now) {
        total = total.saturating_add(1);
        let tags: BTreeSet<String> = answer
            .tags
            .iter()
            .map(|t| t.trim().to_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        for tag in tags {
            let acc = groups
                .entry((answer.skill_id.clone(), tag))
                .or_insert_with(|| Acc {
                    count: 0,
                    items: BTreeSet::new(),
                    first: answer.at,
                    last: answer.at,
                });
            acc.count = acc.count.saturating_add(1);
            acc.items.insert(answer.item_id.clone());
            acc.first = acc.first.min(answer.at);
            acc.last = acc.last.max(answer.at);
        }
    }
    let mut patterns: Vec<MistakePattern> = groups
        .into_iter()
        .filter(|(_, acc)| acc.count >= params.min_frequency)
        .map(|((skill_id, tag), acc)| MistakePattern {
            skill_id,
            tag,
            count: acc.count,
            distinct_items: u32::try_from(acc.items.len()).unwrap_or(u32::MAX),
            share: f64::from(acc.count) / f64::from(total.max(1)),
            first_seen: acc.first,
            last_seen: acc.last,
        })
        .collect();
    patterns.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| b.last_seen.cmp(&a.last_seen))
            .then_with(|| a.skill_id.cmp(&b.skill_id))
            .then_with(|| a.tag.cmp(&b.tag))
    });
    patterns
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
            .single()
            .expect("valid time")
    }

    fn wrong(days_ago: i64, item: &str, skill: &str, tags: &[&str]) -> WrongAnswer {
        WrongAnswer {
            at: now() - Duration::days(days_ago),
            item_id: item.into(),
            skill_id: skill.into(),
            tags: tags.iter().map(|t| (*t).to_string()).collect(),
        }
    }

    #[test]
    fn finds_patterns_at_min_frequency_within_lookback() {
        let answers = vec![
            wrong(1, "q1", "algebra", &["sign-error"]),
            wrong(10, "q2", "algebra", &["Sign-Error ", "units"]),
            wrong(30, "q1", "algebra", &["sign-error"]),
            wrong(89, "q3", "algebra", &["units"]),
            wrong(91, "q4", "algebra", &["units"]), // outside the window
            wrong(2, "q5", "geometry", &["units"]),
        ];
        let p = mine(&MistakesParams::default(), &answers, now());
        assert_eq!(p.len(), 1, "{p:?}");
        let sign = &p[0];
        assert_eq!(
            (sign.skill_id.as_str(), sign.tag.as_str()),
            ("algebra", "sign-error")
        );
        assert_eq!((sign.count, sign.distinct_items), (3, 2));
        assert_eq!(sign.first_seen, now() - Duration::days(30));
        assert_eq!(sign.last_seen, now() - Duration::days(1));
        assert!((sign.share - 3.0 / 5.0).abs() < 1e-12);
    }

    #[test]
    fn a_tag_repeated_in_one_answer_counts_once_and_future_answers_are_ignored() {
        let answers = vec![
            wrong(1, "q1", "s", &["x", "x", "X"]),
            wrong(2, "q2", "s", &["x"]),
            wrong(-1, "q3", "s", &["x"]),
        ];
        assert!(mine(&MistakesParams::default(), &answers, now()).is_empty());
    }

    #[test]
    fn order_is_by_count_then_recency_and_independent_of_input_order() {
        let mut answers = Vec::new();
        for d in 0..4 {
            answers.push(wrong(d + 5, "a", "s", &["often"]));
        }
        for d in 0..3 {
            answers.push(wrong(d + 20, "b", "s", &["older"]));
            answers.push(wrong(d + 1, "c", "s", &["newer"]));
        }
        let p = MistakesParams::default();
        let forward = mine(&p, &answers, now());
        answers.reverse();
        assert_eq!(forward, mine(&p, &answers, now()));
        let tags: Vec<_> = forward.iter().map(|m| m.tag.as_str()).collect();
        assert_eq!(tags, vec!["often", "newer", "older"]);
    }

    #[test]
    fn zero_min_frequency_is_refused() {
        let p = MistakesParams {
            min_frequency: 0,
            ..MistakesParams::default()
        };
        assert!(p.validate().is_err());
    }
}
