//! Learning content: the curated item bank shared by training rounds and challenges,
//! and the deterministic rubric grader.
//!
//! Everything here is pure: no tokio, no ractor, no clock, no global RNG. The only
//! I/O is [`ItemBank::from_path`], for an operator-supplied bank file.
//!
//! - [`ItemBank`]: a validated bank. [`ItemBank::bundled`] is the bank compiled into
//!   the binary (`actors/data/items.toml`); [`ItemBank::from_toml_str`],
//!   [`ItemBank::from_json_str`] and [`ItemBank::from_path`] load others, with a schema
//!   check whose [`ValidationError`]s name the item id and the field.
//! - [`Item`]: one question with its rubric ([`AnswerKind`], reference answer,
//!   accepted variants, keywords, minimum length, tagged [`Misconception`]s).
//! - [`Grader`] / [`RubricGrader`] / [`grade`]: score 0–100, `correct`, specific
//!   feedback and the matched misconception tag. The trait is the seam for an LLM
//!   grader later.
//! - Selection: [`ItemBank::categories`] (the focus areas), [`ItemBank::filter`],
//!   [`ItemBank::get`], and the seeded [`pick`] / [`pick_excluding`].

mod bank;
mod grader;
mod normalize;
mod select;

pub use bank::{BankError, ItemBank, ValidationError, BUNDLED_BANK_TOML};
pub use grader::{
    grade, Grade, Grader, RubricGrader, MAX_ANSWER_CHARS, PASS_SCORE, RUBRIC_GRADER_NAME,
};
pub use normalize::{normalize_text, parse_number};
pub use select::{pick, pick_excluding};

use serde::{Deserialize, Serialize};

/// How hard an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Difficulty {
    /// Recall or a single step.
    Easy,
    /// A few steps or some understanding.
    Medium,
    /// Several steps, a subtle point or a common trap.
    Hard,
}

impl Difficulty {
    /// All difficulties, easiest first.
    pub const ALL: [Difficulty; 3] = [Difficulty::Easy, Difficulty::Medium, Difficulty::Hard];

    /// The wire name: `easy`, `medium` or `hard`.
    pub fn as_str(self) -> &'static str {
        match self {
            Difficulty::Easy => "easy",
            Difficulty::Medium => "medium",
            Difficulty::Hard => "hard",
        }
    }

    /// Parses a wire name (case-insensitive, surrounding whitespace ignored).
    pub fn parse(s: &str) -> Option<Difficulty> {
        match s.trim().to_ascii_lowercase().as_str() {
            "easy" => Some(Difficulty::Easy),
            "medium" => Some(Difficulty::Medium),
            "hard" => Some(Difficulty::Hard),
            _ => None,
        }
    }
}

impl std::fmt::Display for Difficulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Difficulty {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Difficulty::parse(s).ok_or_else(|| format!("unknown difficulty {s:?} (easy, medium, hard)"))
    }
}

/// How an item's answers are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerKind {
    /// Short text answer: normalised text must equal the reference or a variant
    /// (case, whitespace, surrounding punctuation, a leading article and lead-ins such
    /// as "the answer is" are ignored).
    Exact,
    /// A number: equal within the item's tolerance to the reference, whatever the
    /// notation (`0.5`, `.5`, `1/2`, `50%`, `x = 0.5`, `1,000`, an allowed unit).
    /// Text variants are also accepted.
    Numeric,
    /// An explanation: partial credit by keyword coverage, reduced below the minimum
    /// length. An exact variant still scores 100. A misconception matches when the
    /// answer contains its phrase and does not pass.
    Keywords,
}

impl AnswerKind {
    /// The wire name: `exact`, `numeric` or `keywords`.
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerKind::Exact => "exact",
            AnswerKind::Numeric => "numeric",
            AnswerKind::Keywords => "keywords",
        }
    }
}

/// A common wrong answer, tagged so feedback can address it and mistake mining can
/// count it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Misconception {
    /// The wrong answer as a learner would write it (compared like the reference:
    /// normalised text, or numerically for numeric items; for keywords items, also a
    /// phrase found inside a failing explanation, e.g. `closer to the sun`).
    pub answer: String,
    /// Stable tag, e.g. `sign-error`, shared across items for the same mistake.
    pub tag: String,
    /// What to tell the learner about this mistake.
    pub feedback: String,
}

/// One validated item: a question and its rubric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Stable slug, unique in the bank (e.g. `algebra-linear-001`). Events refer to it.
    pub id: String,
    /// Category, which is also the training focus area (e.g. `algebra`).
    pub category: String,
    /// Difficulty.
    pub difficulty: Difficulty,
    /// How answers are compared.
    pub kind: AnswerKind,
    /// The question shown to the learner.
    pub prompt: String,
    /// The reference answer (shown in feedback; always grades 100).
    pub answer: String,
    /// Other accepted answers (graded 100).
    pub accepted: Vec<String>,
    /// For [`AnswerKind::Keywords`]: concepts an explanation must mention. Each entry
    /// is one concept with `|`-separated alternatives; an alternative matches at a word
    /// start, so a stem such as `evaporat` covers "evaporates" and "evaporation".
    pub keywords: Vec<String>,
    /// Minimum number of words for full credit (0: no minimum).
    pub min_words: u32,
    /// For [`AnswerKind::Numeric`]: largest accepted absolute difference.
    pub tolerance: f64,
    /// For [`AnswerKind::Numeric`]: unit words allowed after the number (`cm`, `m/s`).
    pub units: Vec<String>,
    /// Short explanation used in feedback.
    pub explanation: String,
    /// Tagged common wrong answers.
    pub misconceptions: Vec<Misconception>,
}

#[cfg(test)]
mod tests;
