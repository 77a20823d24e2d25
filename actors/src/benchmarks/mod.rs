//! The benchmark suite (seed 003): test prompts per category and the rubric that
//! scores an answer 0–100. The scheduler that runs it lives in the daemon (it
//! needs the gateway); this module is the pure part: the data and the scoring.

use serde::Deserialize;

use crate::providers::category::CATEGORIES;

/// The suite shipped with tutorlog (`actors/data/benchmarks.toml`).
const SUITE_TOML: &str = include_str!("../../data/benchmarks.toml");

/// One benchmark test.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkTest {
    /// Unique id, e.g. `math-derivative`.
    pub id: String,
    /// One of [`CATEGORIES`].
    pub category: String,
    /// The prompt sent as a single user message.
    pub prompt: String,
    /// Words or phrases a good answer contains (case-insensitive).
    pub expected_keywords: Vec<String>,
    /// The answer itself, when there is one.
    #[serde(default)]
    pub expected_answer: Option<String>,
    /// Shortest acceptable answer, in characters.
    #[serde(default)]
    pub min_length: usize,
}

/// Why a suite does not load.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// Not valid TOML for the schema.
    #[error("benchmark suite: {0}")]
    Parse(String),
    /// A test breaks a rule.
    #[error("benchmark suite: test {id:?}: {message}")]
    Invalid {
        /// The test.
        id: String,
        /// What is wrong.
        message: String,
    },
}

/// A checked set of tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suite {
    tests: Vec<BenchmarkTest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    tests: Vec<BenchmarkTest>,
}

impl Suite {
    /// The suite shipped with tutorlog.
    pub fn builtin() -> Result<Suite, SuiteError> {
        Suite::parse(SUITE_TOML)
    }

    /// Parses and checks a suite: unique ids, known categories, every category
    /// covered, keywords present.
    pub fn parse(text: &str) -> Result<Suite, SuiteError> {
        let file: SuiteFile = toml::from_str(text).map_err(|e| SuiteError::Parse(e.to_string()))?;
        let mut ids = std::collections::HashSet::new();
        for test in &file.tests {
            let invalid = |message: &str| SuiteError::Invalid {
                id: test.id.clone(),
                message: message.to_owned(),
            };
            if test.id.is_empty() || !ids.insert(test.id.as_str()) {
                return Err(invalid("ids must be non-empty and unique"));
            }
            if !CATEGORIES.contains(&test.category.as_str()) {
                return Err(invalid("unknown category"));
            }
            if test.prompt.trim().is_empty() {
                return Err(invalid("empty prompt"));
            }
            if test.expected_keywords.is_empty()
                || test.expected_keywords.iter().any(|k| k.trim().is_empty())
            {
                return Err(invalid("needs non-empty expected_keywords"));
            }
        }
        for category in CATEGORIES {
            if !file.tests.iter().any(|t| t.category == category) {
                return Err(SuiteError::Invalid {
                    id: String::new(),
                    message: format!("no test for category {category}"),
                });
            }
        }
        Ok(Suite { tests: file.tests })
    }

    /// Every test.
    pub fn tests(&self) -> &[BenchmarkTest] {
        &self.tests
    }

    /// The tests of the given categories (all when `categories` is empty).
    pub fn select(&self, categories: &[String]) -> Vec<&BenchmarkTest> {
        self.tests
            .iter()
            .filter(|t| categories.is_empty() || categories.contains(&t.category))
            .collect()
    }
}

/// Scores `answer` for `test`, 0–100 (see the suite file's header for the rubric).
pub fn score(test: &BenchmarkTest, answer: &str) -> f64 {
    let lower = answer.to_lowercase();
    let found = test
        .expected_keywords
        .iter()
        .filter(|k| lower.contains(&k.to_lowercase()))
        .count();
    let keyword_share = found as f64 / test.expected_keywords.len().max(1) as f64;
    let (keyword_points, answer_points) = match &test.expected_answer {
        Some(expected) => {
            let hit = lower.contains(&expected.to_lowercase());
            (60.0, if hit { 30.0 } else { 0.0 })
        }
        None => (90.0, 0.0),
    };
    let length_points = if answer.chars().count() >= test.min_length && !answer.trim().is_empty() {
        10.0
    } else {
        0.0
    };
    let total = keyword_points * keyword_share + answer_points + length_points;
    (total * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_suite_loads_and_covers_every_category() {
        let suite = Suite::builtin().expect("suite loads");
        assert!(suite.tests().len() >= 18);
        for category in CATEGORIES {
            assert!(
                suite.select(&[category.to_owned()]).len() >= 3,
                "{category}"
            );
        }
    }

    #[test]
    fn a_model_answer_scores_full_marks_and_an_empty_one_zero() {
        let suite = Suite::builtin().expect("suite loads");
        for test in suite.tests() {
            let mut answer = test.expected_keywords.join(" ");
            if let Some(expected) = &test.expected_answer {
                answer.push(' ');
                answer.push_str(expected);
            }
            while answer.chars().count() < test.min_length {
                answer.push_str(" and so on");
            }
            assert_eq!(score(test, &answer), 100.0, "{}", test.id);
            assert_eq!(score(test, ""), 0.0, "{}", test.id);
        }
    }

    #[test]
    fn partial_answers_get_partial_credit() {
        let suite = Suite::builtin().expect("suite loads");
        let test = suite
            .tests()
            .iter()
            .find(|t| t.id == "math-linear-equation")
            .expect("test");
        // Right answer, no working, too short.
        assert_eq!(score(test, "x = 5"), 30.0);
        // Working and answer.
        let full = "Subtract 5 from both sides to get 2x = 10, then divide by 2: x = 5.";
        assert_eq!(score(test, full), 100.0);
    }

    #[test]
    fn bad_suites_are_refused_with_the_test_named() {
        let error = Suite::parse(
            "[[tests]]\nid = \"a\"\ncategory = \"cooking\"\nprompt = \"p\"\nexpected_keywords = [\"k\"]\n",
        )
        .expect_err("bad category");
        assert!(error.to_string().contains("\"a\""), "{error}");
        assert!(Suite::parse("tests = 3").is_err());
    }
}
