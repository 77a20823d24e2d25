//! From [`Sources`] to a [`Dataset`]: candidate examples and pairs, merged,
//! scored, filtered, cleaned of outliers and split (rules in the module docs of
//! [`crate::export`]).

use std::collections::{btree_map::Entry, BTreeMap, BTreeSet};

use serde_json::json;
use tutorlog_actors::{
    content::{grade, Grade, Item, ItemBank, PASS_SCORE},
    learning::service::digest,
};

use super::{
    canonical_json, outlier_flags,
    score::{
        composite, confidence_from_attempts, confidence_from_signals, diversity, length_score,
        quality_from_signals, share, verdict_signals,
    },
    split::{assign_splits, Split},
    Message, Sources, ANSWER_SYSTEM_PROMPT, FEEDBACK_SYSTEM_PROMPT, NO_DIFFICULTY,
    PAIRS_PER_PROMPT_MAX, PAIR_CHOSEN_QUALITY_MIN, PAIR_MARGIN, PAIR_REJECTED_QUALITY_MAX,
    TUTOR_SYSTEM_PROMPT,
};

/// Quality of a `tutor_feedback` label whose recorded score, but not feedback, is
/// what today's bank gives.
const LABEL_SCORE_ONLY_QUALITY: f64 = 70.0;
/// Roles an OpenAI chat fine-tuning line may hold without extra fields.
const ROLES: [&str; 3] = ["system", "user", "assistant"];

/// What [`build`] needs besides the sources.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildOptions {
    /// Least composite score kept.
    pub min_quality: f64,
}

/// Where an example comes from (see the module docs of [`crate::export`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExampleKind {
    /// A bank item's reference answer and explanation.
    ItemAnswer,
    /// The grader's feedback on a recovered learner response.
    TutorFeedback,
    /// A recorded gateway call.
    GatewayExchange,
}

impl ExampleKind {
    /// Every kind, in manifest order.
    pub const ALL: [ExampleKind; 3] = [
        ExampleKind::ItemAnswer,
        ExampleKind::TutorFeedback,
        ExampleKind::GatewayExchange,
    ];

    /// The manifest name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExampleKind::ItemAnswer => "item_answer",
            ExampleKind::TutorFeedback => "tutor_feedback",
            ExampleKind::GatewayExchange => "gateway_exchange",
        }
    }
}

/// One fine-tuning example with its scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Where it comes from.
    pub kind: ExampleKind,
    /// The conversation; the last message is the assistant's target.
    pub messages: Vec<Message>,
    /// Item category or routing category.
    pub category: String,
    /// Item difficulty, or [`NO_DIFFICULTY`].
    pub difficulty: String,
    /// Q.
    pub quality: f64,
    /// C.
    pub confidence: f64,
    /// D.
    pub diversity: f64,
    /// I.
    pub informativeness: f64,
    /// `0.6·Q + 0.2·C + 0.1·D + 0.1·I`.
    pub composite: f64,
    /// Position of the first event behind it.
    pub first_position: u64,
    /// Its JSONL line (canonical JSON, no newline).
    pub line: String,
    /// BLAKE3 of `line`.
    pub hash: [u8; 32],
}

impl Example {
    /// `category/difficulty`, the split's stratum.
    pub fn stratum(&self) -> String {
        format!("{}/{}", self.category, self.difficulty)
    }

    /// Characters (Unicode scalar values) of all its messages.
    pub fn characters(&self) -> usize {
        self.messages
            .iter()
            .map(|m| m.content.chars().count())
            .sum()
    }
}

/// Where a preference pair comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PairKind {
    /// Two answers to one bank item.
    Item,
    /// Two gateway answers to one prompt.
    Gateway,
}

impl PairKind {
    /// The manifest name.
    pub fn as_str(self) -> &'static str {
        match self {
            PairKind::Item => "item",
            PairKind::Gateway => "gateway",
        }
    }
}

/// One DPO-style preference pair with its scores.
#[derive(Debug, Clone, PartialEq)]
pub struct PreferencePair {
    /// Where it comes from.
    pub kind: PairKind,
    /// The shared prompt.
    pub prompt: Vec<Message>,
    /// The preferred answer.
    pub chosen: String,
    /// The other answer.
    pub rejected: String,
    /// Q of `chosen`.
    pub quality_chosen: f64,
    /// Q of `rejected`.
    pub quality_rejected: f64,
    /// The lower confidence of the two sides.
    pub confidence: f64,
    /// `100 / pairs with the same prompt`.
    pub diversity: f64,
    /// The pair's composite score.
    pub composite: f64,
    /// Its JSONL line.
    pub line: String,
    /// BLAKE3 of `line`.
    pub hash: [u8; 32],
}

/// Counts of what [`build`] did, for the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildReport {
    /// Distinct candidate examples.
    pub candidates: usize,
    /// Candidates merged into an identical one.
    pub merged_duplicates: usize,
    /// Candidates below `min_quality`.
    pub below_min_quality: usize,
    /// Whether the outlier check ran (more than 100 examples passed).
    pub outlier_check: bool,
    /// Examples removed as outliers.
    pub outliers_removed: usize,
    /// Distinct candidate pairs.
    pub pair_candidates: usize,
    /// Pairs below `min_quality`.
    pub pairs_below_min_quality: usize,
    /// Attempts on items the bank does not have.
    pub unknown_items: usize,
    /// Attempts whose response a bank text reproduces.
    pub recovered_responses: usize,
    /// Exchanges with unreadable messages or an empty answer.
    pub unusable_exchanges: usize,
}

/// The export's content.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    /// Train, validation and test examples, each sorted by line hash.
    pub splits: [Vec<Example>; 3],
    /// Preference pairs, sorted by line hash.
    pub preferences: Vec<PreferencePair>,
    /// What happened on the way.
    pub report: BuildReport,
}

impl Dataset {
    /// The examples of one split.
    pub fn split(&self, split: Split) -> &[Example] {
        match split {
            Split::Train => &self.splits[0],
            Split::Validation => &self.splits[1],
            Split::Test => &self.splits[2],
        }
    }
}

struct Draft {
    kind: ExampleKind,
    messages: Vec<Message>,
    category: String,
    difficulty: String,
    quality: f64,
    confidence: f64,
    informativeness: f64,
    first_position: u64,
}

struct PairDraft {
    kind: PairKind,
    prompt: Vec<Message>,
    chosen: String,
    rejected: String,
    quality_chosen: f64,
    quality_rejected: f64,
    confidence: f64,
}

/// Builds the dataset. Pure and deterministic: the same sources, bank and options
/// give the same dataset.
pub fn build(sources: &Sources, bank: &ItemBank, options: &BuildOptions) -> Dataset {
    let mut report = BuildReport::default();
    let mut drafts = Vec::new();
    let mut pair_drafts = Vec::new();
    item_drafts(sources, bank, &mut drafts, &mut pair_drafts, &mut report);
    exchange_drafts(sources, &mut drafts, &mut pair_drafts, &mut report);
    let candidates = finalize_examples(drafts, &mut report);
    let kept = filter_examples(candidates, options.min_quality, &mut report);
    let splits = split_examples(kept);
    let preferences = finalize_pairs(pair_drafts, options.min_quality, &mut report);
    Dataset {
        splits,
        preferences,
        report,
    }
}

fn message(role: &str, content: &str) -> Message {
    Message::new(role, content)
}

/// The reference answer with its explanation: the `item_answer` target.
fn reference_answer(item: &Item) -> String {
    if item.explanation.trim().is_empty() {
        item.answer.clone()
    } else {
        format!("{}\n\n{}", item.answer, item.explanation)
    }
}

/// Texts a learner may have typed that the bank knows, with their SHA-256.
fn known_responses(item: &Item) -> Vec<(String, &str)> {
    let mut texts: BTreeSet<&str> = BTreeSet::new();
    texts.insert(&item.answer);
    texts.extend(item.accepted.iter().map(String::as_str));
    texts.extend(item.misconceptions.iter().map(|m| m.answer.as_str()));
    texts.into_iter().map(|t| (digest(t), t)).collect()
}

/// How well a recorded label agrees with regrading its response today.
fn label_quality(regraded: &Grade, score: u32, feedback: &str) -> f64 {
    match (
        u32::from(regraded.score) == score,
        regraded.feedback == feedback,
    ) {
        (true, true) => 100.0,
        (true, false) => LABEL_SCORE_ONLY_QUALITY,
        _ => 0.0,
    }
}

fn item_drafts(
    sources: &Sources,
    bank: &ItemBank,
    drafts: &mut Vec<Draft>,
    pairs: &mut Vec<PairDraft>,
    report: &mut BuildReport,
) {
    let mut by_item: BTreeMap<&str, Vec<&super::Attempt>> = BTreeMap::new();
    for attempt in &sources.attempts {
        by_item.entry(&attempt.item_id).or_default().push(attempt);
    }
    for (item_id, attempts) in by_item {
        let Some(item) = bank.get(item_id) else {
            report.unknown_items += attempts.len();
            continue;
        };
        let reference = reference_answer(item);
        let failed = attempts.iter().filter(|a| !a.correct).count();
        let first_position = attempts.first().map_or(0, |a| a.position);
        let reference_quality = f64::from(grade(item, &item.answer).score);
        drafts.push(Draft {
            kind: ExampleKind::ItemAnswer,
            messages: vec![
                message("system", TUTOR_SYSTEM_PROMPT),
                message("user", &item.prompt),
                message("assistant", &reference),
            ],
            category: item.category.clone(),
            difficulty: item.difficulty.as_str().to_owned(),
            quality: reference_quality,
            confidence: confidence_from_attempts(attempts.len()),
            informativeness: 0.5 * length_score(&reference)
                + 0.5 * 100.0 * share(failed, attempts.len()),
            first_position,
        });
        let known = known_responses(item);
        let mut responses: BTreeMap<&str, Vec<&super::Attempt>> = BTreeMap::new();
        for attempt in &attempts {
            if let Some((_, text)) = known.iter().find(|(d, _)| *d == attempt.response_digest) {
                report.recovered_responses += 1;
                responses.entry(text).or_default().push(attempt);
            }
        }
        feedback_drafts(item, &responses, drafts);
        item_pairs(item, &responses, reference_quality, pairs);
    }
}

fn feedback_drafts(
    item: &Item,
    responses: &BTreeMap<&str, Vec<&super::Attempt>>,
    drafts: &mut Vec<Draft>,
) {
    for (text, attempts) in responses {
        let regraded = grade(item, text);
        let mut by_feedback: BTreeMap<&str, Vec<&super::Attempt>> = BTreeMap::new();
        for attempt in attempts {
            by_feedback
                .entry(&attempt.feedback)
                .or_default()
                .push(attempt);
        }
        for (feedback, group) in by_feedback {
            let quality = group
                .iter()
                .map(|a| label_quality(&regraded, a.score, feedback))
                .fold(100.0, f64::min);
            let incorrect = group.iter().filter(|a| !a.correct).count();
            drafts.push(Draft {
                kind: ExampleKind::TutorFeedback,
                messages: vec![
                    message("system", FEEDBACK_SYSTEM_PROMPT),
                    message(
                        "user",
                        &format!("Question: {}\nLearner's answer: {text}", item.prompt),
                    ),
                    message("assistant", feedback),
                ],
                category: item.category.clone(),
                difficulty: item.difficulty.as_str().to_owned(),
                quality,
                confidence: confidence_from_attempts(group.len()),
                informativeness: 0.5 * length_score(feedback)
                    + 0.5 * 100.0 * share(incorrect, group.len()),
                first_position: group.first().map_or(0, |a| a.position),
            });
        }
    }
}

fn item_pairs(
    item: &Item,
    responses: &BTreeMap<&str, Vec<&super::Attempt>>,
    reference_quality: f64,
    pairs: &mut Vec<PairDraft>,
) {
    // Each recovered text with its score, counting only attempts whose recorded
    // score today's rubric still gives: a stale score would make a wrong pair.
    let mut scored: Vec<(&str, f64, f64)> = responses
        .iter()
        .filter_map(|(text, attempts)| {
            let today = u32::from(grade(item, text).score);
            let agreeing = attempts.iter().filter(|a| a.score == today).count();
            (agreeing > 0).then(|| (*text, f64::from(today), confidence_from_attempts(agreeing)))
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let pass = f64::from(PASS_SCORE);
    let (chosen, chosen_quality, chosen_confidence) = scored
        .iter()
        .find(|(_, score, _)| *score >= pass)
        .copied()
        // Nobody passed: the reference answer, whose grade is deterministic.
        .unwrap_or((item.answer.as_str(), reference_quality, 100.0));
    let prompt = vec![
        message("system", ANSWER_SYSTEM_PROMPT),
        message("user", &item.prompt),
    ];
    for (text, score, confidence) in &scored {
        if *score >= pass || chosen_quality - score < PAIR_MARGIN || *text == chosen {
            continue;
        }
        pairs.push(PairDraft {
            kind: PairKind::Item,
            prompt: prompt.clone(),
            chosen: chosen.to_owned(),
            rejected: (*text).to_owned(),
            quality_chosen: chosen_quality,
            quality_rejected: *score,
            confidence: chosen_confidence.min(*confidence),
        });
    }
}

fn parse_messages(json: &str) -> Option<Vec<Message>> {
    let messages: Vec<Message> = serde_json::from_str(json).ok()?;
    let usable = !messages.is_empty()
        && messages
            .iter()
            .all(|m| ROLES.contains(&m.role.as_str()) && !m.content.is_empty());
    usable.then_some(messages)
}

/// Identical exchanges (same messages, same answer) pooled: their signals together.
struct Pooled {
    messages: Vec<Message>,
    category: String,
    signals: Vec<f64>,
    first_position: u64,
}

/// Usable exchanges by line, identical ones pooled.
fn pool_exchanges(sources: &Sources, report: &mut BuildReport) -> BTreeMap<String, Pooled> {
    let mut pooled: BTreeMap<String, Pooled> = BTreeMap::new();
    for (request_id, exchange) in &sources.exchanges {
        let Some(mut messages) = parse_messages(&exchange.request_messages) else {
            report.unusable_exchanges += 1;
            continue;
        };
        if exchange.response_text.trim().is_empty() {
            report.unusable_exchanges += 1;
            continue;
        }
        messages.push(message("assistant", &exchange.response_text));
        let mut signals = Vec::new();
        if let Some(quality) = exchange.quality.filter(|q| q.is_finite()) {
            signals.push(quality.clamp(0.0, 100.0));
        }
        for verdict in sources.verdicts.get(request_id).into_iter().flatten() {
            verdict_signals(verdict, &mut signals);
        }
        let line = example_line(&messages);
        match pooled.entry(line) {
            Entry::Vacant(slot) => {
                slot.insert(Pooled {
                    messages,
                    category: exchange.category.clone(),
                    signals,
                    first_position: exchange.position,
                });
            }
            Entry::Occupied(mut slot) => {
                report.merged_duplicates += 1;
                let entry = slot.get_mut();
                if exchange.position < entry.first_position {
                    entry.first_position = exchange.position;
                    entry.category = exchange.category.clone();
                }
                entry.signals.extend(signals);
            }
        }
    }
    pooled
}

fn exchange_drafts(
    sources: &Sources,
    drafts: &mut Vec<Draft>,
    pairs: &mut Vec<PairDraft>,
    report: &mut BuildReport,
) {
    let pooled = pool_exchanges(sources, report);
    // By prompt, for pairs: (quality, confidence, answer) of rated exchanges.
    let mut by_prompt: BTreeMap<String, Vec<(f64, f64, String)>> = BTreeMap::new();
    for pooled in pooled.into_values() {
        let quality = quality_from_signals(&pooled.signals);
        let confidence = confidence_from_signals(&pooled.signals);
        let Some((answer, prompt)) = pooled.messages.split_last() else {
            continue;
        };
        if !pooled.signals.is_empty() {
            by_prompt
                .entry(canonical_json(&json!(prompt)))
                .or_default()
                .push((quality, confidence, answer.content.clone()));
        }
        drafts.push(Draft {
            kind: ExampleKind::GatewayExchange,
            informativeness: length_score(&answer.content),
            messages: pooled.messages,
            category: pooled.category,
            difficulty: NO_DIFFICULTY.to_owned(),
            quality,
            confidence,
            first_position: pooled.first_position,
        });
    }
    for (prompt, answers) in by_prompt {
        exchange_pairs(&prompt, answers, pairs);
    }
}

fn exchange_pairs(prompt: &str, answers: Vec<(f64, f64, String)>, pairs: &mut Vec<PairDraft>) {
    let Ok(prompt) = serde_json::from_str::<Vec<Message>>(prompt) else {
        return;
    };
    let mut chosen: Vec<&(f64, f64, String)> = answers
        .iter()
        .filter(|a| a.0 >= PAIR_CHOSEN_QUALITY_MIN)
        .collect();
    let mut rejected: Vec<&(f64, f64, String)> = answers
        .iter()
        .filter(|a| a.0 <= PAIR_REJECTED_QUALITY_MAX)
        .collect();
    chosen.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.2.cmp(&b.2)));
    rejected.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.2.cmp(&b.2)));
    let combinations = chosen
        .iter()
        .flat_map(|c| rejected.iter().map(move |r| (*c, *r)))
        .take(PAIRS_PER_PROMPT_MAX);
    for (good, bad) in combinations {
        pairs.push(PairDraft {
            kind: PairKind::Gateway,
            prompt: prompt.clone(),
            chosen: good.2.clone(),
            rejected: bad.2.clone(),
            quality_chosen: good.0,
            quality_rejected: bad.0,
            confidence: good.1.min(bad.1),
        });
    }
}

fn example_line(messages: &[Message]) -> String {
    canonical_json(&json!({ "messages": messages }))
}

fn hash(text: &str) -> [u8; 32] {
    *blake3::hash(text.as_bytes()).as_bytes()
}

/// Merges identical candidates, then scores them (diversity needs them all).
fn finalize_examples(drafts: Vec<Draft>, report: &mut BuildReport) -> Vec<Example> {
    let mut by_line: BTreeMap<String, Draft> = BTreeMap::new();
    for draft in drafts {
        let line = example_line(&draft.messages);
        match by_line.get_mut(&line) {
            Some(kept) => {
                report.merged_duplicates += 1;
                // Keep the better-supported copy; ties keep the earlier one.
                let better = (draft.quality, draft.confidence) > (kept.quality, kept.confidence)
                    || ((draft.quality, draft.confidence) == (kept.quality, kept.confidence)
                        && draft.first_position < kept.first_position);
                if better {
                    *kept = draft;
                }
            }
            None => {
                by_line.insert(line, draft);
            }
        }
    }
    let mut prompts: BTreeMap<[u8; 32], usize> = BTreeMap::new();
    let drafts: Vec<(String, [u8; 32], Draft)> = by_line
        .into_iter()
        .map(|(line, draft)| {
            let prompt = draft
                .messages
                .split_last()
                .map(|(_, prompt)| canonical_json(&json!(prompt)))
                .unwrap_or_default();
            let prompt_hash = hash(&prompt);
            *prompts.entry(prompt_hash).or_default() += 1;
            (line, prompt_hash, draft)
        })
        .collect();
    report.candidates = drafts.len();
    drafts
        .into_iter()
        .map(|(line, prompt_hash, draft)| {
            let diversity = diversity(prompts.get(&prompt_hash).copied().unwrap_or(1));
            Example {
                composite: composite(
                    draft.quality,
                    draft.confidence,
                    diversity,
                    draft.informativeness,
                ),
                kind: draft.kind,
                messages: draft.messages,
                category: draft.category,
                difficulty: draft.difficulty,
                quality: draft.quality,
                confidence: draft.confidence,
                diversity,
                informativeness: draft.informativeness,
                first_position: draft.first_position,
                hash: hash(&line),
                line,
            }
        })
        .collect()
}

fn filter_examples(
    candidates: Vec<Example>,
    min_quality: f64,
    report: &mut BuildReport,
) -> Vec<Example> {
    let (kept, dropped): (Vec<Example>, Vec<Example>) = candidates
        .into_iter()
        .partition(|e| e.composite >= min_quality);
    report.below_min_quality = dropped.len();
    report.outlier_check = kept.len() > super::OUTLIER_MIN_EXAMPLES;
    let lengths: Vec<f64> = kept
        .iter()
        .map(|e| f64::from(u32::try_from(e.characters()).unwrap_or(u32::MAX)).sqrt())
        .collect();
    let flags = outlier_flags(&lengths);
    let before = kept.len();
    let kept: Vec<Example> = kept
        .into_iter()
        .zip(flags)
        .filter_map(|(example, outlier)| (!outlier).then_some(example))
        .collect();
    report.outliers_removed = before - kept.len();
    kept
}

fn split_examples(mut kept: Vec<Example>) -> [Vec<Example>; 3] {
    // By stratum, then by content hash: the order depends on content only.
    kept.sort_by_cached_key(|e| (e.stratum(), e.hash));
    let assignment = assign_splits(kept.len());
    let mut splits: [Vec<Example>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for (example, split) in kept.into_iter().zip(assignment) {
        let slot = match split {
            Split::Train => 0,
            Split::Validation => 1,
            Split::Test => 2,
        };
        if let Some(examples) = splits.get_mut(slot) {
            examples.push(example);
        }
    }
    for examples in &mut splits {
        examples.sort_by_key(|e| e.hash);
    }
    splits
}

fn pair_line(draft: &PairDraft) -> String {
    canonical_json(&json!({
        "prompt": draft.prompt,
        "chosen": [message("assistant", &draft.chosen)],
        "rejected": [message("assistant", &draft.rejected)],
    }))
}

fn finalize_pairs(
    drafts: Vec<PairDraft>,
    min_quality: f64,
    report: &mut BuildReport,
) -> Vec<PreferencePair> {
    let mut by_line: BTreeMap<String, PairDraft> = BTreeMap::new();
    for draft in drafts {
        by_line.entry(pair_line(&draft)).or_insert(draft);
    }
    report.pair_candidates = by_line.len();
    let mut prompts: BTreeMap<String, usize> = BTreeMap::new();
    for draft in by_line.values() {
        *prompts
            .entry(canonical_json(&json!(draft.prompt)))
            .or_default() += 1;
    }
    let mut pairs: Vec<PreferencePair> = by_line
        .into_iter()
        .map(|(line, draft)| {
            let sharing = prompts
                .get(&canonical_json(&json!(draft.prompt)))
                .copied()
                .unwrap_or(1);
            let diversity = diversity(sharing);
            let margin = (draft.quality_chosen - draft.quality_rejected).clamp(0.0, 100.0);
            PreferencePair {
                composite: composite(draft.quality_chosen, draft.confidence, diversity, margin),
                kind: draft.kind,
                prompt: draft.prompt,
                chosen: draft.chosen,
                rejected: draft.rejected,
                quality_chosen: draft.quality_chosen,
                quality_rejected: draft.quality_rejected,
                confidence: draft.confidence,
                diversity,
                hash: hash(&line),
                line,
            }
        })
        .collect();
    let before = pairs.len();
    pairs.retain(|p| p.composite >= min_quality);
    report.pairs_below_min_quality = before - pairs.len();
    pairs.sort_by_key(|p| p.hash);
    pairs
}
