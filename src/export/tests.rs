//! Tests of the export pipeline on hand-built sources.

use tutorlog_actors::{
    content::{grade, ItemBank},
    learning::service::digest,
};
use uuid::Uuid;

use super::*;

const ITEM: &str = "algebra-linear-001";

fn bank() -> &'static ItemBank {
    ItemBank::bundled()
}

/// An attempt graded as the rubric grades `response` today.
fn attempt(position: u64, item_id: &str, response: &str) -> Attempt {
    let item = bank().get(item_id).expect("bundled item");
    let verdict = grade(item, response);
    Attempt {
        position,
        item_id: item_id.to_owned(),
        response_digest: digest(response),
        score: u32::from(verdict.score),
        correct: verdict.correct,
        feedback: verdict.feedback,
    }
}

fn exchange(position: u64, category: &str, prompt: &str, answer: &str) -> Exchange {
    Exchange {
        position,
        category: category.to_owned(),
        request_messages: serde_json::json!([{ "role": "user", "content": prompt }]).to_string(),
        response_text: answer.to_owned(),
        quality: None,
    }
}

fn verdict(rating: u8, accepted: bool) -> Verdict {
    Verdict {
        rating: Some(rating),
        accepted: Some(accepted),
        quality: None,
    }
}

fn all_examples(dataset: &Dataset) -> Vec<&Example> {
    dataset.splits.iter().flatten().collect()
}

fn render_bytes(dataset: &Dataset, sources: &Sources, min_quality: f64) -> ExportFiles {
    let range = SourceRange {
        first_position: Some(0),
        last_position: Some(99),
        since: None,
        min_quality,
        bank_fingerprint: bank().fingerprint(),
        bank_items: bank().len(),
    };
    render(dataset, &sources.stats, &range)
}

#[test]
fn graded_rounds_give_answer_feedback_and_pair_examples() {
    let mut sources = Sources::new();
    sources.attempts = vec![
        attempt(1, ITEM, "4"),
        attempt(2, ITEM, "7"),
        // Not a bank text: its digest cannot be matched, so no feedback example.
        attempt(3, ITEM, "I think it is 3.5"),
        Attempt {
            item_id: "no-such-item".into(),
            ..attempt(4, ITEM, "4")
        },
    ];
    let dataset = build(&sources, bank(), &BuildOptions { min_quality: 0.0 });
    let examples = all_examples(&dataset);
    let answer = examples
        .iter()
        .find(|e| e.kind == ExampleKind::ItemAnswer)
        .expect("item answer");
    assert_eq!(answer.messages.len(), 3);
    assert_eq!(answer.messages[0].content, TUTOR_SYSTEM_PROMPT);
    assert_eq!(answer.messages[1].content, "Solve for x: 2x + 3 = 11");
    assert!(answer.messages[2].content.starts_with("4\n\nSubtract 3"));
    assert_eq!(answer.stratum(), "algebra/easy");
    assert_eq!(answer.quality, 100.0);
    assert_eq!(answer.confidence, 87.5);
    assert_eq!(answer.diversity, 100.0);
    let failed_share = 2.0 / 3.0;
    let expected_informativeness =
        0.5 * length_score(&answer.messages[2].content) + 0.5 * 100.0 * failed_share;
    assert!((answer.informativeness - expected_informativeness).abs() < 1e-9);
    let expected = composite(100.0, 87.5, 100.0, expected_informativeness);
    assert!((answer.composite - expected).abs() < 1e-9);

    let feedback: Vec<&&Example> = examples
        .iter()
        .filter(|e| e.kind == ExampleKind::TutorFeedback)
        .collect();
    assert_eq!(feedback.len(), 2, "the two recovered responses");
    let wrong = feedback
        .iter()
        .find(|e| e.messages[1].content.ends_with("Learner's answer: 7"))
        .expect("the misconception");
    assert!(wrong.messages[2]
        .content
        .contains("added 3 instead of subtracting"));
    assert_eq!(wrong.quality, 100.0, "today's rubric gives the same label");
    assert_eq!(wrong.confidence, 50.0);
    assert_eq!(dataset.report.recovered_responses, 2);
    assert_eq!(dataset.report.unknown_items, 1);

    assert_eq!(dataset.preferences.len(), 1);
    let pair = &dataset.preferences[0];
    assert_eq!((pair.chosen.as_str(), pair.rejected.as_str()), ("4", "7"));
    assert_eq!(
        pair.prompt,
        vec![
            Message::new("system", ANSWER_SYSTEM_PROMPT),
            answer.messages[1].clone()
        ]
    );
    assert_eq!(pair.kind, PairKind::Item);
    let line: serde_json::Value = serde_json::from_str(&pair.line).expect("json");
    assert_eq!(line["chosen"][0]["role"], "assistant");
    assert_eq!(line["rejected"][0]["content"], "7");
    assert_eq!(line["prompt"].as_array().map(Vec::len), Some(2));
}

#[test]
fn a_label_the_bank_no_longer_gives_is_stale() {
    let mut stale = attempt(1, ITEM, "4");
    stale.score = 10;
    stale.correct = false;
    stale.feedback = "old rubric".into();
    let mut score_only = attempt(2, ITEM, "7");
    score_only.feedback = "worded differently".into();
    let mut sources = Sources::new();
    sources.attempts = vec![stale, score_only];
    let dataset = build(&sources, bank(), &BuildOptions { min_quality: 0.0 });
    let feedback: Vec<(f64, String)> = all_examples(&dataset)
        .into_iter()
        .filter(|e| e.kind == ExampleKind::TutorFeedback)
        .map(|e| (e.quality, e.messages[2].content.clone()))
        .collect();
    assert!(
        feedback.contains(&(0.0, "old rubric".to_owned())),
        "{feedback:?}"
    );
    assert!(feedback.contains(&(70.0, "worded differently".to_owned())));
    // Nobody passed: the bare reference answer is chosen over "7"; the stale "4"
    // (recorded 10, graded 100 today) makes no pair at all.
    let sides: Vec<(&str, &str)> = dataset
        .preferences
        .iter()
        .map(|p| (p.chosen.as_str(), p.rejected.as_str()))
        .collect();
    assert_eq!(sides, vec![("4", "7")]);
}

#[test]
fn exchanges_are_scored_by_their_feedback_and_paired_by_prompt() {
    let mut sources = Sources::new();
    let good = Uuid::from_u128(1);
    let bad = Uuid::from_u128(2);
    let unrated = Uuid::from_u128(3);
    let prompt = "How do I reverse a list in Python?";
    sources.exchanges.insert(
        good,
        exchange(
            10,
            "coding",
            prompt,
            "Use `items.reverse()` in place or `items[::-1]` for a copy.",
        ),
    );
    sources
        .exchanges
        .insert(bad, exchange(11, "coding", prompt, "You cannot."));
    sources.exchanges.insert(
        unrated,
        exchange(12, "general", "Hello?", "Hello! How can I help?"),
    );
    sources.verdicts.insert(good, vec![verdict(5, true)]);
    sources.verdicts.insert(bad, vec![verdict(1, false)]);
    let dataset = build(&sources, bank(), &BuildOptions { min_quality: 0.0 });
    let examples = all_examples(&dataset);
    assert_eq!(examples.len(), 3);
    let by_answer = |text: &str| {
        examples
            .iter()
            .find(|e| e.messages.last().is_some_and(|m| m.content == text))
            .copied()
            .expect("example")
    };
    let best = by_answer("Use `items.reverse()` in place or `items[::-1]` for a copy.");
    assert_eq!(
        (best.quality, best.confidence, best.diversity),
        (100.0, 75.0, 50.0)
    );
    assert_eq!(best.difficulty, NO_DIFFICULTY);
    assert_eq!(best.stratum(), "coding/n/a");
    let worst = by_answer("You cannot.");
    assert_eq!((worst.quality, worst.confidence), (0.0, 75.0));
    let hello = by_answer("Hello! How can I help?");
    assert_eq!((hello.quality, hello.confidence), (50.0, 0.0));

    assert_eq!(dataset.preferences.len(), 1);
    let pair = &dataset.preferences[0];
    assert_eq!(pair.kind, PairKind::Gateway);
    assert_eq!(pair.rejected, "You cannot.");
    assert_eq!(pair.prompt, vec![Message::new("user", prompt)]);
    // Q 100, C min(75, 75), D 100 (one pair for the prompt), I margin 100.
    assert_eq!(pair.composite, composite(100.0, 75.0, 100.0, 100.0));

    // At the default threshold only the well-rated answer and the pair remain.
    let dataset = build(
        &sources,
        bank(),
        &BuildOptions {
            min_quality: MIN_QUALITY_DEFAULT,
        },
    );
    assert_eq!(all_examples(&dataset).len(), 1);
    assert_eq!(dataset.report.below_min_quality, 2);
    assert_eq!(dataset.preferences.len(), 1);
}

#[test]
fn identical_exchanges_merge_and_pool_their_feedback() {
    let mut sources = Sources::new();
    for (n, rating) in [(1u128, 5u8), (2, 4)] {
        let id = Uuid::from_u128(n);
        sources
            .exchanges
            .insert(id, exchange(n as u64, "math", "2+2?", "4"));
        sources.verdicts.insert(
            id,
            vec![Verdict {
                rating: Some(rating),
                accepted: None,
                quality: None,
            }],
        );
    }
    let dataset = build(&sources, bank(), &BuildOptions { min_quality: 0.0 });
    let examples = all_examples(&dataset);
    assert_eq!(examples.len(), 1);
    // Signals 100 and 75: mean 87.5; confidence 75 · (1 − 25/100).
    assert_eq!(examples[0].quality, 87.5);
    assert_eq!(examples[0].confidence, 56.25);
    assert_eq!(dataset.report.merged_duplicates, 1);
}

fn many_exchanges(count: u64) -> Sources {
    let categories = [
        "coding", "math", "research", "language", "empathy", "general",
    ];
    let mut sources = Sources::new();
    for n in 0..count {
        let id = Uuid::from_u128(u128::from(n) + 1);
        let category = categories[(n % 6) as usize];
        let answer = format!(
            "Answer number {n}: {}",
            "detail ".repeat((n % 17) as usize + 5)
        );
        sources.exchanges.insert(
            id,
            exchange(
                n,
                category,
                &format!("Question {n} about {category}?"),
                &answer,
            ),
        );
        sources.verdicts.insert(id, vec![verdict(5, true)]);
    }
    sources
}

#[test]
fn splits_are_stratified_within_one_percent_and_outliers_go() {
    let mut sources = many_exchanges(1_000);
    for n in 0..3u128 {
        let id = Uuid::from_u128(10_000 + n);
        let huge = "an extremely long answer ".repeat(4_000);
        sources
            .exchanges
            .insert(id, exchange(5_000, "coding", &format!("Long {n}?"), &huge));
        sources.verdicts.insert(id, vec![verdict(5, true)]);
    }
    let dataset = build(
        &sources,
        bank(),
        &BuildOptions {
            min_quality: MIN_QUALITY_DEFAULT,
        },
    );
    assert!(dataset.report.outlier_check);
    assert_eq!(dataset.report.outliers_removed, 3);
    let [train, validation, test] = [0, 1, 2].map(|slot| dataset.splits[slot].len());
    let total = (train + validation + test) as f64;
    assert_eq!(total, 1_000.0);
    for (count, share) in [(train, 0.8), (validation, 0.1), (test, 0.1)] {
        assert!((count as f64 / total - share).abs() <= 0.01, "{count}");
    }
    // Each stratum (about 167 examples) is split close to 80/10/10 too.
    let mut strata: std::collections::BTreeMap<String, [usize; 3]> = Default::default();
    for (slot, examples) in dataset.splits.iter().enumerate() {
        for example in examples {
            strata.entry(example.stratum()).or_default()[slot] += 1;
        }
    }
    assert_eq!(strata.len(), 6);
    for (stratum, [t, v, s]) in &strata {
        let n = (t + v + s) as f64;
        assert!((*t as f64 - 0.8 * n).abs() <= 2.0, "{stratum}: {t} {v} {s}");
        assert!((*v as f64 - 0.1 * n).abs() <= 2.0, "{stratum}: {t} {v} {s}");
    }
    // Files are sorted by line hash.
    for examples in &dataset.splits {
        assert!(examples.windows(2).all(|w| w[0].hash < w[1].hash));
    }
}

#[test]
fn few_examples_are_never_outliers() {
    let mut sources = many_exchanges(50);
    let id = Uuid::from_u128(99_999);
    sources.exchanges.insert(
        id,
        exchange(1, "coding", "Long?", &"long answer ".repeat(5_000)),
    );
    sources.verdicts.insert(id, vec![verdict(5, true)]);
    let dataset = build(&sources, bank(), &BuildOptions { min_quality: 0.0 });
    assert!(!dataset.report.outlier_check);
    assert_eq!(dataset.report.outliers_removed, 0);
    assert_eq!(all_examples(&dataset).len(), 51);
}

#[test]
fn output_depends_on_content_only_and_is_byte_identical() {
    let sources = many_exchanges(300);
    let first = render_bytes(
        &build(&sources, bank(), &BuildOptions { min_quality: 70.0 }),
        &sources,
        70.0,
    );
    let second = render_bytes(
        &build(&sources, bank(), &BuildOptions { min_quality: 70.0 }),
        &sources,
        70.0,
    );
    assert_eq!(first, second);
    // The same exchanges under other request ids (so in another map order).
    let mut renamed = Sources::new();
    for (n, (id, exchange)) in sources.exchanges.iter().enumerate() {
        let new_id = Uuid::from_u128(u128::MAX - n as u128);
        renamed.exchanges.insert(new_id, exchange.clone());
        renamed
            .verdicts
            .insert(new_id, sources.verdicts[id].clone());
    }
    let third = render_bytes(
        &build(&renamed, bank(), &BuildOptions { min_quality: 70.0 }),
        &renamed,
        70.0,
    );
    assert_eq!(first.data, third.data);
    assert_eq!(first.version, third.version);
    let manifest: serde_json::Value = serde_json::from_slice(&first.manifest).expect("json");
    assert_eq!(manifest["version"], first.version.as_str());
    assert_eq!(manifest["counts"]["examples"], 300);
    assert_eq!(manifest["schema_version"], EXPORT_SCHEMA_VERSION);
    assert_eq!(manifest["files"]["train.jsonl"]["lines"], 240);
    assert_eq!(manifest["empty"], false);
}

#[test]
fn a_threshold_above_100_empties_every_data_file() {
    let mut sources = many_exchanges(20);
    sources.attempts = vec![attempt(1, ITEM, "4"), attempt(2, ITEM, "7")];
    let dataset = build(&sources, bank(), &BuildOptions { min_quality: 101.0 });
    let files = render_bytes(&dataset, &sources, 101.0);
    assert!(files.data.iter().all(|(_, bytes)| bytes.is_empty()));
    let manifest: serde_json::Value = serde_json::from_slice(&files.manifest).expect("json");
    assert_eq!(manifest["empty"], true);
    assert!(manifest["note"]
        .as_str()
        .expect("note")
        .contains("--min-quality 101"));
    assert_eq!(manifest["counts"]["train"], 0);
    assert_eq!(manifest["counts"]["preferences"], 0);
    assert_eq!(manifest["pipeline"]["below_min_quality"], 20 + 3);
}
