//! The item bank: loading, the schema check and lookups.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;

use super::grader::{grade, keyword_coverage, PASS_SCORE};
use super::normalize::{normalize_text, parse_number, word_count};
use super::select::{category_matches, pick, pick_excluding};
use super::{AnswerKind, Difficulty, Item, Misconception};

/// The bank compiled into the binary (`actors/data/items.toml`).
pub const BUNDLED_BANK_TOML: &str = include_str!("../../data/items.toml");

/// What is wrong with one item (or category) of a bank.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("item {id:?}, field {field:?}: {message}")]
pub struct ValidationError {
    /// The item's id; `#N` (its 0-based position) when the id itself is missing, or
    /// `category:NAME` for a category-level problem.
    pub id: String,
    /// The offending field (`id`, `difficulty`, `keywords`, `misconceptions[1].tag`…).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ValidationError {
    fn new(id: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            id: id.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why a bank could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    /// The bank file could not be read.
    #[error("cannot read item bank {path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// The file is not well-formed TOML/JSON of the bank's shape (includes unknown
    /// fields, with the parser's line and column).
    #[error("cannot parse item bank ({format}): {message}")]
    Parse {
        /// `toml` or `json`.
        format: &'static str,
        /// The parser's message.
        message: String,
    },
    /// The bank parsed but failed the schema check; every problem found is listed.
    #[error("invalid item bank ({} problems), first: {}", .0.len(), .0.first().map(ToString::to_string).unwrap_or_default())]
    Invalid(Vec<ValidationError>),
}

impl BankError {
    /// The schema problems, empty for I/O and parse errors.
    pub fn validation_errors(&self) -> &[ValidationError] {
        match self {
            BankError::Invalid(v) => v,
            _ => &[],
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBank {
    #[serde(default)]
    items: Vec<RawItem>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMisconception {
    answer: Option<String>,
    tag: Option<String>,
    feedback: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    id: Option<String>,
    category: Option<String>,
    difficulty: Option<String>,
    kind: Option<String>,
    prompt: Option<String>,
    answer: Option<String>,
    #[serde(default)]
    accepted: Vec<String>,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    min_words: u32,
    #[serde(default)]
    tolerance: f64,
    #[serde(default)]
    units: Vec<String>,
    explanation: Option<String>,
    #[serde(default)]
    misconceptions: Vec<RawMisconception>,
}

fn required(
    id: &str,
    field: &str,
    value: Option<String>,
    errors: &mut Vec<ValidationError>,
) -> String {
    match value {
        Some(v) if !v.trim().is_empty() => v.trim().to_string(),
        Some(_) => {
            errors.push(ValidationError::new(id, field, "must not be empty"));
            String::new()
        }
        None => {
            errors.push(ValidationError::new(id, field, "is missing"));
            String::new()
        }
    }
}

/// Converts raw items to typed ones, reporting missing fields and unknown enum values.
fn convert(raw: Vec<RawItem>) -> Result<Vec<Item>, BankError> {
    let mut errors = Vec::new();
    let mut items = Vec::with_capacity(raw.len());
    for (index, r) in raw.into_iter().enumerate() {
        let id = match r.id.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() => id.to_string(),
            Some(_) => {
                let pos = format!("#{index}");
                errors.push(ValidationError::new(&pos, "id", "must not be empty"));
                pos
            }
            None => {
                let pos = format!("#{index}");
                errors.push(ValidationError::new(&pos, "id", "is missing"));
                pos
            }
        };
        let category = required(&id, "category", r.category, &mut errors);
        let difficulty_raw = required(&id, "difficulty", r.difficulty, &mut errors);
        let difficulty = match Difficulty::parse(&difficulty_raw) {
            Some(d) => d,
            None => {
                if !difficulty_raw.is_empty() {
                    errors.push(ValidationError::new(
                        &id,
                        "difficulty",
                        format!("unknown difficulty {difficulty_raw:?} (easy, medium, hard)"),
                    ));
                }
                Difficulty::Easy
            }
        };
        let kind_raw = r.kind.unwrap_or_else(|| "exact".to_string());
        let kind = match kind_raw.trim().to_ascii_lowercase().as_str() {
            "exact" => AnswerKind::Exact,
            "numeric" => AnswerKind::Numeric,
            "keywords" => AnswerKind::Keywords,
            other => {
                errors.push(ValidationError::new(
                    &id,
                    "kind",
                    format!("unknown kind {other:?} (exact, numeric, keywords)"),
                ));
                AnswerKind::Exact
            }
        };
        let prompt = required(&id, "prompt", r.prompt, &mut errors);
        let answer = required(&id, "answer", r.answer, &mut errors);
        let explanation = required(&id, "explanation", r.explanation, &mut errors);
        let misconceptions = r
            .misconceptions
            .into_iter()
            .enumerate()
            .map(|(i, m)| Misconception {
                answer: required(
                    &id,
                    &format!("misconceptions[{i}].answer"),
                    m.answer,
                    &mut errors,
                ),
                tag: required(&id, &format!("misconceptions[{i}].tag"), m.tag, &mut errors),
                feedback: required(
                    &id,
                    &format!("misconceptions[{i}].feedback"),
                    m.feedback,
                    &mut errors,
                ),
            })
            .collect();
        items.push(Item {
            id,
            category,
            difficulty,
            kind,
            prompt,
            answer,
            accepted: r.accepted,
            keywords: r.keywords,
            min_words: r.min_words,
            tolerance: r.tolerance,
            units: r.units,
            explanation,
            misconceptions,
        });
    }
    if errors.is_empty() {
        Ok(items)
    } else {
        Err(BankError::Invalid(errors))
    }
}

fn is_slug(s: &str, extra: &[char]) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || extra.contains(&c))
}

/// The schema check on typed items: unique slug ids and prompts, non-empty fields, every category
/// with all three difficulties, and a consistent rubric (the reference and every
/// variant grade correct, no misconception grades correct or repeats, numeric answers
/// parse, keyword items have keywords their reference covers, the reference meets the
/// minimum length).
pub(crate) fn validate(items: &[Item]) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    if items.is_empty() {
        errors.push(ValidationError::new("", "items", "the bank has no items"));
        return errors;
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut prompts: HashMap<String, &str> = HashMap::new();
    for (index, item) in items.iter().enumerate() {
        let id = item.id.as_str();
        let prompt_key = normalize_text(&item.prompt);
        if !prompt_key.is_empty() {
            if let Some(other) = prompts.insert(prompt_key, id) {
                errors.push(ValidationError::new(
                    id,
                    "prompt",
                    format!("same prompt as item {other:?}"),
                ));
            }
        }
        if let Some(first) = seen.insert(id, index) {
            errors.push(ValidationError::new(
                id,
                "id",
                format!("duplicate id (items #{first} and #{index})"),
            ));
        }
        if !is_slug(id, &['_', '.']) {
            errors.push(ValidationError::new(
                id,
                "id",
                "must be a slug of lower-case ASCII letters, digits, '-', '_' or '.'",
            ));
        }
        if !is_slug(&item.category, &['_']) {
            errors.push(ValidationError::new(
                id,
                "category",
                format!(
                    "{:?} must be a slug of lower-case ASCII letters, digits, '-' or '_'",
                    item.category
                ),
            ));
        }
        for (field, value) in [
            ("prompt", &item.prompt),
            ("answer", &item.answer),
            ("explanation", &item.explanation),
        ] {
            if value.trim().is_empty() {
                errors.push(ValidationError::new(id, field, "must not be empty"));
            }
        }
        validate_rubric(item, &mut errors);
    }
    let mut by_category: HashMap<&str, BTreeSet<Difficulty>> = HashMap::new();
    for item in items {
        by_category
            .entry(item.category.as_str())
            .or_default()
            .insert(item.difficulty);
    }
    let mut categories: Vec<_> = by_category.into_iter().collect();
    categories.sort();
    for (category, present) in categories {
        for d in Difficulty::ALL {
            if !present.contains(&d) {
                errors.push(ValidationError::new(
                    &format!("category:{category}"),
                    "difficulty",
                    format!("category {category:?} has no {d} item"),
                ));
            }
        }
    }
    errors
}

fn validate_rubric(item: &Item, errors: &mut Vec<ValidationError>) {
    let id = item.id.as_str();
    for (i, a) in item.accepted.iter().enumerate() {
        if normalize_text(a).is_empty() {
            errors.push(ValidationError::new(
                id,
                format!("accepted[{i}]"),
                "must not be empty",
            ));
        }
    }
    if !item.tolerance.is_finite() || item.tolerance < 0.0 {
        errors.push(ValidationError::new(
            id,
            "tolerance",
            "must be a finite number >= 0",
        ));
    }
    match item.kind {
        AnswerKind::Numeric => {
            if parse_number(&item.answer).is_none() {
                errors.push(ValidationError::new(
                    id,
                    "answer",
                    format!("{:?} is not a number, but kind is numeric", item.answer),
                ));
            }
        }
        AnswerKind::Keywords => {
            if item.keywords.is_empty() {
                errors.push(ValidationError::new(
                    id,
                    "keywords",
                    "a keywords item needs at least one keyword",
                ));
            }
            for (i, k) in item.keywords.iter().enumerate() {
                if k.split('|').all(|alt| normalize_text(alt).is_empty()) {
                    errors.push(ValidationError::new(
                        id,
                        format!("keywords[{i}]"),
                        "must not be empty",
                    ));
                }
            }
            let (_, missing) = keyword_coverage(item, &item.answer);
            if !missing.is_empty() {
                errors.push(ValidationError::new(
                    id,
                    "keywords",
                    format!(
                        "the reference answer does not mention: {}",
                        missing.join(", ")
                    ),
                ));
            }
            if item.min_words as usize > word_count(&item.answer) {
                errors.push(ValidationError::new(
                    id,
                    "min_words",
                    format!(
                        "{} is more than the reference answer's {} words",
                        item.min_words,
                        word_count(&item.answer)
                    ),
                ));
            }
        }
        AnswerKind::Exact => {}
    }
    if item.kind != AnswerKind::Keywords && !item.keywords.is_empty() {
        errors.push(ValidationError::new(
            id,
            "keywords",
            "only keywords items use keywords",
        ));
    }
    // The rubric must accept its own reference and variants.
    if !item.answer.trim().is_empty() {
        let g = grade(item, &item.answer);
        if g.score < 100 {
            errors.push(ValidationError::new(
                id,
                "answer",
                format!("the reference answer grades {}", g.score),
            ));
        }
    }
    for (i, a) in item.accepted.iter().enumerate() {
        let g = grade(item, a);
        if g.score < PASS_SCORE {
            errors.push(ValidationError::new(
                id,
                format!("accepted[{i}]"),
                format!("the variant {a:?} grades {}", g.score),
            ));
        }
    }
    let mut tags_answers = BTreeSet::new();
    for (i, m) in item.misconceptions.iter().enumerate() {
        if m.answer.trim().is_empty() {
            continue;
        }
        if !is_slug(&m.tag, &['_']) {
            errors.push(ValidationError::new(
                id,
                format!("misconceptions[{i}].tag"),
                format!("{:?} must be a slug", m.tag),
            ));
        }
        let g = grade(item, &m.answer);
        if g.correct {
            errors.push(ValidationError::new(
                id,
                format!("misconceptions[{i}].answer"),
                format!("{:?} grades as correct ({})", m.answer, g.score),
            ));
        } else if g.matched_misconception.as_deref() != Some(m.tag.as_str()) {
            errors.push(ValidationError::new(
                id,
                format!("misconceptions[{i}].answer"),
                format!(
                    "{:?} is shadowed by an earlier misconception with the same answer",
                    m.answer
                ),
            ));
        }
        if !tags_answers.insert(normalize_text(&m.answer)) {
            errors.push(ValidationError::new(
                id,
                format!("misconceptions[{i}].answer"),
                "duplicate misconception answer",
            ));
        }
    }
}

/// A validated item bank. Items keep their file order (which [`pick`] depends on).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemBank {
    items: Vec<Item>,
    index: HashMap<String, usize>,
}

impl ItemBank {
    /// The bank compiled into the binary, validated once. Its validity is checked by
    /// this module's tests, so the panic here cannot happen in a released build.
    pub fn bundled() -> &'static ItemBank {
        static BANK: OnceLock<ItemBank> = OnceLock::new();
        BANK.get_or_init(|| {
            ItemBank::load_bundled()
                .unwrap_or_else(|e| panic!("the bundled item bank is invalid: {e}"))
        })
    }

    /// Parses and validates the bundled bank (a fresh copy; prefer [`ItemBank::bundled`]).
    pub fn load_bundled() -> Result<ItemBank, BankError> {
        ItemBank::from_toml_str(BUNDLED_BANK_TOML)
    }

    /// Parses and validates a bank in TOML (`[[items]]` tables).
    pub fn from_toml_str(s: &str) -> Result<ItemBank, BankError> {
        let raw: RawBank = toml::from_str(s).map_err(|e| BankError::Parse {
            format: "toml",
            message: e.to_string(),
        })?;
        ItemBank::from_items(convert(raw.items)?)
    }

    /// Parses and validates a bank in JSON (`{"items": [...]}`, same fields).
    pub fn from_json_str(s: &str) -> Result<ItemBank, BankError> {
        let raw: RawBank = serde_json::from_str(s).map_err(|e| BankError::Parse {
            format: "json",
            message: e.to_string(),
        })?;
        ItemBank::from_items(convert(raw.items)?)
    }

    /// Reads and validates an operator-supplied bank file: JSON when the name ends in
    /// `.json`, TOML otherwise.
    pub fn from_path(path: &Path) -> Result<ItemBank, BankError> {
        let text = std::fs::read_to_string(path).map_err(|e| BankError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if is_json {
            ItemBank::from_json_str(&text)
        } else {
            ItemBank::from_toml_str(&text)
        }
    }

    /// Validates typed items (same checks as the file loaders).
    pub fn from_items(items: Vec<Item>) -> Result<ItemBank, BankError> {
        let errors = validate(&items);
        if !errors.is_empty() {
            return Err(BankError::Invalid(errors));
        }
        let index = items
            .iter()
            .enumerate()
            .map(|(i, item)| (item.id.clone(), i))
            .collect();
        Ok(ItemBank { items, index })
    }

    /// All items, in file order.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the bank is empty (never true for a validated bank).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The item with this id.
    pub fn get(&self, id: &str) -> Option<&Item> {
        self.index.get(id).and_then(|&i| self.items.get(i))
    }

    /// The categories, which are the training focus areas, sorted.
    pub fn categories(&self) -> Vec<&str> {
        let set: BTreeSet<&str> = self.items.iter().map(|i| i.category.as_str()).collect();
        set.into_iter().collect()
    }

    /// Same as [`ItemBank::categories`]: every category is a focus area.
    pub fn focus_areas(&self) -> Vec<&str> {
        self.categories()
    }

    /// Whether the bank has this category (case-insensitive).
    pub fn has_category(&self, category: &str) -> bool {
        self.items
            .iter()
            .any(|i| category_matches(i, Some(category)))
    }

    /// Items matching the optional category (case-insensitive) and difficulty, in
    /// file order.
    pub fn filter(&self, category: Option<&str>, difficulty: Option<Difficulty>) -> Vec<&Item> {
        self.items
            .iter()
            .filter(|i| category_matches(i, category))
            .filter(|i| difficulty.is_none_or(|d| i.difficulty == d))
            .collect()
    }

    /// Number of items per category and difficulty, sorted.
    pub fn counts(&self) -> Vec<(String, Difficulty, usize)> {
        let mut map: HashMap<(String, Difficulty), usize> = HashMap::new();
        for i in &self.items {
            *map.entry((i.category.clone(), i.difficulty)).or_default() += 1;
        }
        let mut v: Vec<_> = map.into_iter().map(|((c, d), n)| (c, d, n)).collect();
        v.sort();
        v
    }

    /// A stable fingerprint of the bank's content (FNV-1a 64 of its canonical JSON, as
    /// 16 hex digits): record it (e.g. in `config.applied`) to know which bank graded.
    pub fn fingerprint(&self) -> String {
        let json = serde_json::to_string(&self.items).unwrap_or_default();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in json.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    /// [`pick`] over this bank.
    pub fn pick(
        &self,
        difficulty: Option<Difficulty>,
        category: Option<&str>,
        seed: u64,
    ) -> Option<&Item> {
        pick(&self.items, difficulty, category, seed)
    }

    /// [`pick_excluding`] over this bank.
    pub fn pick_excluding(
        &self,
        difficulty: Option<Difficulty>,
        category: Option<&str>,
        exclude: &[&str],
        seed: u64,
    ) -> Option<&Item> {
        pick_excluding(&self.items, difficulty, category, exclude, seed)
    }
}
