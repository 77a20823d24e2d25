//! The deterministic rubric grader and the [`Grader`] seam.

use serde::{Deserialize, Serialize};

use super::normalize::{compact, keyword_haystack, normalize_text, parse_number, word_count};
use super::{AnswerKind, Item, Misconception};

/// Score at or above which an answer counts as correct (the seed's mastery threshold).
pub const PASS_SCORE: u8 = 80;

/// [`Grade::grader`] for [`RubricGrader`]; bump the suffix when the rubric rules change.
pub const RUBRIC_GRADER_NAME: &str = "rubric-v1";

/// The result of grading one answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grade {
    /// 0–100.
    pub score: u8,
    /// `score >= PASS_SCORE`.
    pub correct: bool,
    /// Specific feedback: what was right or missing, the misconception's feedback when
    /// a tagged wrong answer matched, and the item's explanation.
    pub feedback: String,
    /// Tag of the [`Misconception`] the answer matched, if any.
    pub matched_misconception: Option<String>,
    /// For keyword items: the concepts found (each as written in the rubric).
    pub matched_keywords: Vec<String>,
    /// For keyword items: the concepts missing.
    pub missing_keywords: Vec<String>,
    /// Which grader produced this ([`RUBRIC_GRADER_NAME`] for the rubric).
    pub grader: String,
}

/// Grades an answer to an item. The seam for other graders: an LLM grader (through
/// the gateway, its cost recorded in spend) would implement this, typically falling
/// back to [`RubricGrader`] when no provider is affordable. Implementations used in
/// deciders must be deterministic for a given item and answer, or have their verdict
/// recorded in the event so that replay never grades again.
pub trait Grader: Send + Sync {
    /// Name recorded in [`Grade::grader`].
    fn name(&self) -> &str;

    /// Grades `answer` against `item`'s rubric.
    fn grade(&self, item: &Item, answer: &str) -> Grade;
}

/// The default, deterministic grader: reference answer and accepted variants
/// (normalised text; numerically for numeric items), tagged misconceptions, keyword
/// coverage with partial credit and a minimum length for explanations. An empty
/// answer scores 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RubricGrader;

/// Grades with [`RubricGrader`].
pub fn grade(item: &Item, answer: &str) -> Grade {
    RubricGrader.grade(item, answer)
}

impl Grader for RubricGrader {
    fn name(&self) -> &str {
        RUBRIC_GRADER_NAME
    }

    fn grade(&self, item: &Item, answer: &str) -> Grade {
        grade_rubric(item, answer)
    }
}

fn make(score: u8, feedback: String) -> Grade {
    Grade {
        score,
        correct: score >= PASS_SCORE,
        feedback,
        matched_misconception: None,
        matched_keywords: Vec::new(),
        missing_keywords: Vec::new(),
        grader: RUBRIC_GRADER_NAME.to_string(),
    }
}

/// Appends the item's explanation to a feedback sentence.
fn with_explanation(mut s: String, item: &Item) -> String {
    if !item.explanation.trim().is_empty() {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(item.explanation.trim());
    }
    s
}

/// Whether two normalised texts are the same answer (also ignoring whitespace).
fn same_text(a: &str, b: &str) -> bool {
    a == b || compact(a) == compact(b)
}

fn text_matches_any<'a>(norm: &str, candidates: impl IntoIterator<Item = &'a String>) -> bool {
    candidates
        .into_iter()
        .any(|c| same_text(norm, &normalize_text(c)))
}

/// Strips one allowed unit from the end of a normalised numeric answer.
fn strip_unit(norm: &str, units: &[String]) -> String {
    let mut units: Vec<String> = units.iter().map(|u| normalize_text(u)).collect();
    units.sort_by_key(|u| std::cmp::Reverse(u.len()));
    for u in &units {
        if u.is_empty() {
            continue;
        }
        if let Some(rest) = norm.strip_suffix(u.as_str()) {
            let rest = rest.trim_end();
            if rest.ends_with(|c: char| c.is_ascii_digit() || c == '%' || c == '.') {
                return rest.to_string();
            }
        }
    }
    norm.to_string()
}

/// The numeric value of an answer to a numeric item, if it has one.
fn numeric_value(item: &Item, norm: &str) -> Option<f64> {
    parse_number(&strip_unit(norm, &item.units))
}

fn numbers_equal(item: &Item, a: f64, b: f64) -> bool {
    let tol = if item.tolerance > 0.0 {
        item.tolerance
    } else {
        1e-9 * b.abs().max(1.0)
    };
    (a - b).abs() <= tol
}

fn matches_reference(item: &Item, norm: &str) -> bool {
    if same_text(norm, &normalize_text(&item.answer)) || text_matches_any(norm, &item.accepted) {
        return true;
    }
    if item.kind == AnswerKind::Numeric {
        if let (Some(v), Some(r)) = (numeric_value(item, norm), parse_number(&item.answer)) {
            return numbers_equal(item, v, r);
        }
    }
    false
}

fn matched_misconception<'a>(item: &'a Item, norm: &str) -> Option<&'a Misconception> {
    let value = if item.kind == AnswerKind::Numeric {
        numeric_value(item, norm)
    } else {
        None
    };
    item.misconceptions.iter().find(|m| {
        let mn = normalize_text(&m.answer);
        if same_text(norm, &mn) {
            return true;
        }
        match (value, parse_number(&strip_unit(&mn, &item.units))) {
            (Some(v), Some(mv)) => numbers_equal(item, v, mv),
            _ => false,
        }
    })
}

/// Whether `phrase` occurs in `norm` bounded by non-alphanumeric characters. Only for
/// phrases made of plain words (`pacific ocean`): with symbols (`x < -2`) dropping
/// them would confuse different answers.
fn contains_phrase(hay: &str, phrase: &str) -> bool {
    let needle = keyword_haystack(phrase);
    !needle.trim().is_empty() && needle.trim() == phrase && hay.contains(&needle)
}

/// Splits a keyword entry into its alternatives, normalised for search.
fn keyword_alternatives(entry: &str) -> Vec<String> {
    entry
        .split('|')
        .map(|a| keyword_haystack(a).trim().to_string())
        .filter(|a| !a.is_empty())
        .collect()
}

/// The display form of a keyword entry (its first alternative).
fn keyword_label(entry: &str) -> String {
    entry.split('|').next().unwrap_or(entry).trim().to_string()
}

/// Answers are graded on their first `MAX_ANSWER_CHARS` characters; the rest is
/// ignored (bounds the work per grade whatever a client sends).
pub const MAX_ANSWER_CHARS: usize = 4096;

fn grade_rubric(item: &Item, answer: &str) -> Grade {
    let answer = match answer.char_indices().nth(MAX_ANSWER_CHARS) {
        Some((end, _)) => &answer[..end],
        None => answer,
    };
    let norm = normalize_text(answer);
    let reference = item.answer.trim();
    if norm.is_empty() {
        return make(
            0,
            with_explanation(format!("No answer given. Expected: {reference}."), item),
        );
    }
    if matches_reference(item, &norm) {
        return make(100, with_explanation("Correct.".to_string(), item));
    }
    if let Some(m) = matched_misconception(item, &norm) {
        let mut g = make(
            0,
            with_explanation(
                format!("Not quite: {} Expected: {reference}.", m.feedback.trim()),
                item,
            ),
        );
        g.matched_misconception = Some(m.tag.clone());
        return g;
    }
    match item.kind {
        AnswerKind::Keywords => grade_keywords(item, answer),
        AnswerKind::Numeric => {
            let msg = match numeric_value(item, &norm) {
                Some(_) => format!("Incorrect: you answered {norm}, expected {reference}."),
                None => {
                    format!("Could not read a single number in your answer; expected {reference}.")
                }
            };
            make(0, with_explanation(msg, item))
        }
        AnswerKind::Exact => {
            let hay = keyword_haystack(&norm);
            let contains = std::iter::once(&item.answer)
                .chain(item.accepted.iter())
                .any(|c| contains_phrase(&hay, &normalize_text(c)));
            if contains {
                make(
                    50,
                    with_explanation(
                        format!(
                            "Partly right: your answer contains the expected answer ({reference}) \
                             but also other text; give just the answer."
                        ),
                        item,
                    ),
                )
            } else {
                make(
                    0,
                    with_explanation(format!("Incorrect: expected {reference}."), item),
                )
            }
        }
    }
}

/// The item's keyword concepts found in and missing from `text` (labels: each
/// entry's first alternative).
pub(crate) fn keyword_coverage(item: &Item, text: &str) -> (Vec<String>, Vec<String>) {
    let hay = keyword_haystack(text);
    let mut matched = Vec::new();
    let mut missing = Vec::new();
    for entry in &item.keywords {
        let found = keyword_alternatives(entry)
            .iter()
            .any(|alt| hay.contains(&format!(" {alt}")));
        if found {
            matched.push(keyword_label(entry));
        } else {
            missing.push(keyword_label(entry));
        }
    }
    (matched, missing)
}

fn grade_keywords(item: &Item, answer: &str) -> Grade {
    let (matched, missing) = keyword_coverage(item, answer);
    let total = item.keywords.len().max(1);
    let mut score = (100 * matched.len() + total / 2) / total;
    let words = word_count(answer);
    let min = item.min_words as usize;
    let too_short = min > 0 && words < min;
    if too_short {
        score = score * words / min;
    }
    let score = u8::try_from(score.min(100)).unwrap_or(100);
    let mut parts = Vec::new();
    // In an explanation, a misconception is recognised as a phrase it contains, but
    // only when the answer does not already pass.
    let misconception = if score < PASS_SCORE {
        let hay = keyword_haystack(answer);
        item.misconceptions.iter().find(|m| {
            let needle = keyword_haystack(&m.answer);
            !needle.trim().is_empty() && hay.contains(&needle)
        })
    } else {
        None
    };
    if let Some(m) = misconception {
        parts.push(format!("Not quite: {}", m.feedback.trim()));
    }
    if missing.is_empty() {
        parts.push(format!("Covers every key point ({}).", matched.join(", ")));
    } else if matched.is_empty() {
        parts.push(format!("Missing the key points: {}.", missing.join(", ")));
    } else {
        parts.push(format!(
            "Covered: {}. Missing: {}.",
            matched.join(", "),
            missing.join(", ")
        ));
    }
    if too_short {
        parts.push(format!(
            "Too short: {words} words, at least {min} expected for full credit."
        ));
    }
    if !missing.is_empty() {
        let model = item.answer.trim();
        let stop = if model.ends_with(['.', '!', '?']) {
            ""
        } else {
            "."
        };
        parts.push(format!("A model answer: {model}{stop}"));
    }
    let mut g = make(score, with_explanation(parts.join(" "), item));
    g.matched_misconception = misconception.map(|m| m.tag.clone());
    g.matched_keywords = matched;
    g.missing_keywords = missing;
    g
}
