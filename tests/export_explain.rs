//! End-to-end: `tutorlog export dataset` and `tutorlog explain` (the real binary)
//! over an embedded log written here with realistic learning and gateway events,
//! then `GET /api/v1/audit/requests/{id}` on a daemon serving the same log.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;
use tutorlog_actors::{
    content::{grade, ItemBank},
    learning::service::digest,
};
use tutorlog_schemas::{
    events::{
        AlgoRunRecord, BudgetCommitted, BudgetReserved, CallSource, ExecutionRecorded,
        FeedbackRecorded, ProviderQueryCompleted, ProviderQueryStarted, ProviderSelected,
        RouteCandidate, TrainingCompleted, TrainingRoundCompleted, TrainingRoundStarted,
        TrainingStarted,
    },
    Event, NewEvent,
};
use tutorlog_store::{EmbeddedStore, EventStore, ExpectedRevision};
use uuid::Uuid;

mod support;

use support::{blocking::Serve, free_port, BIN};

const DATA_FILES: [&str; 4] = [
    "train.jsonl",
    "validation.jsonl",
    "test.jsonl",
    "preferences.jsonl",
];

async fn append(store: &EmbeddedStore, stream: &str, events: &[Event], correlation: Option<Uuid>) {
    let records = events
        .iter()
        .map(|event| {
            let record = NewEvent::from_event(event).expect("encode");
            match correlation {
                Some(id) => record.with_correlation(id),
                None => record,
            }
        })
        .collect();
    store
        .append(stream, ExpectedRevision::Any, records)
        .await
        .expect("append");
}

fn algo_run(key: &str) -> AlgoRunRecord {
    AlgoRunRecord {
        run_id: Uuid::now_v7(),
        key: key.into(),
        version: 1,
        params_checksum: "0f".repeat(32),
        input_summary: r#"{"attempts":1}"#.into(),
        output_summary: r#"{"p_known":0.42}"#.into(),
    }
}

/// One learner session per category: every item of the category is asked, and
/// answered with the reference answer, a tagged misconception or a free-text miss.
async fn write_training(store: &EmbeddedStore) -> Uuid {
    let bank = ItemBank::bundled();
    let mut first_session = None;
    for (index, category) in bank.categories().into_iter().enumerate() {
        let user = format!("learner{index}");
        let stream = format!("learner-{user}");
        let session_id = Uuid::now_v7();
        first_session.get_or_insert(session_id);
        let items = bank.filter(Some(category), None);
        let started = Event::TrainingStarted(TrainingStarted {
            session_id,
            user_id: user.clone(),
            focus_area: category.to_owned(),
            rounds: u32::try_from(items.len() * 2).expect("fits"),
            provider_plan: Vec::new(),
        });
        append(store, &stream, &[started], None).await;
        let mut number = 0;
        for (n, item) in items.iter().enumerate() {
            let mut responses = vec![item.answer.clone()];
            if let Some(miss) = item.misconceptions.first() {
                responses.push(miss.answer.clone());
            } else if n % 2 == 0 {
                responses.push("I am not sure, maybe something else".to_owned());
            }
            for response in responses {
                number += 1;
                let round_id = Uuid::now_v7();
                let verdict = grade(item, &response);
                let now = chrono::Utc::now();
                let events = [
                    Event::TrainingRoundStarted(TrainingRoundStarted {
                        session_id,
                        round_id,
                        round_number: number,
                        item_id: item.id.clone(),
                        prompt: item.prompt.clone(),
                        difficulty: item.difficulty.as_str().to_owned(),
                        started_at: now,
                        algo_runs: vec![algo_run("adaptive")],
                    }),
                    Event::TrainingRoundCompleted(TrainingRoundCompleted {
                        session_id,
                        round_id,
                        round_number: number,
                        focus_area: category.to_owned(),
                        item_id: item.id.clone(),
                        response_digest: digest(&response),
                        score: u32::from(verdict.score),
                        correct: verdict.correct,
                        feedback: verdict.feedback.clone(),
                        mistake_tag: verdict.matched_misconception.clone(),
                        mastery_before: 40.0,
                        mastery_after: if verdict.correct { 48.0 } else { 38.0 },
                        probability_after: 0.45,
                        next_review_due: Some(now + chrono::TimeDelta::days(1)),
                        revision_card: "{}".into(),
                        completed_at: now,
                        algo_runs: vec![algo_run("mastery"), algo_run("revision")],
                    }),
                ];
                append(store, &stream, &events, None).await;
            }
        }
        let done = Event::TrainingCompleted(TrainingCompleted {
            session_id,
            rounds_completed: number,
        });
        append(store, &stream, &[done], None).await;
    }
    first_session.expect("a category")
}

fn execution(id: Uuid, category: &str, prompt: &str, answer: Option<&str>) -> ExecutionRecorded {
    let messages = serde_json::json!([
        { "role": "system", "content": "You are helpful." },
        { "role": "user", "content": prompt },
    ]);
    ExecutionRecorded {
        request_id: id,
        source: CallSource::OpenAi,
        provider: Some("mock".into()),
        model: Some("mock-1".into()),
        category: category.into(),
        session_id: None,
        user_id: Some("dev".into()),
        success: answer.is_some(),
        attempts: 1,
        streamed: false,
        duration_micros: 2_000,
        quality: None,
        cost_estimate_micros: 120,
        cost_actual_micros: 35,
        input_tokens: 12,
        output_tokens: 30,
        error_kind: None,
        request_messages: Some(messages.to_string()),
        response_text: answer.map(str::to_owned),
    }
}

/// One gateway call as the gateway records it: reservation and circuit outcome on
/// the provider's streams, then the request's own events, then the commit.
async fn write_call(store: &EmbeddedStore, execution: ExecutionRecorded) -> Uuid {
    let id = execution.request_id;
    let reserve = Event::BudgetReserved(BudgetReserved {
        request_id: id,
        model: "mock-1".into(),
        estimate_micros: 120,
        period: "2030-01".into(),
        user_id: Some("dev".into()),
        session_id: None,
    });
    append(store, "budget-mock", &[reserve], Some(id)).await;
    let outcome = Event::ProviderQueryCompleted(ProviderQueryCompleted {
        request_id: id,
        model: "mock-1".into(),
        latency_micros: 1_500,
        trial: false,
    });
    append(store, "circuit-mock", &[outcome], Some(id)).await;
    let selected = Event::ProviderSelected(ProviderSelected {
        request_id: id,
        session_id: None,
        user_id: Some("dev".into()),
        category: execution.category.clone(),
        requested_model: "auto".into(),
        candidates: vec![RouteCandidate {
            provider: "mock".into(),
            model: "mock-1".into(),
            score: 0.8,
            eligible: true,
            reason: "best_score".into(),
        }],
        chosen_provider: Some("mock".into()),
        chosen_model: Some("mock-1".into()),
        reason: "best_score".into(),
    });
    let started = Event::ProviderQueryStarted(ProviderQueryStarted {
        request_id: id,
        provider: "mock".into(),
        model: "mock-1".into(),
        attempt: 1,
    });
    let events = [selected, started, Event::ExecutionRecorded(execution)];
    append(store, &format!("request-{id}"), &events, Some(id)).await;
    let commit = Event::BudgetCommitted(BudgetCommitted {
        request_id: id,
        actual_micros: 35,
        input_tokens: 12,
        output_tokens: 30,
        price_version: "p1".into(),
        period: "2030-01".into(),
    });
    append(store, "budget-mock", &[commit], Some(id)).await;
    id
}

async fn feedback(store: &EmbeddedStore, id: Uuid, rating: u8, accepted: bool) {
    let event = Event::FeedbackRecorded(FeedbackRecorded {
        request_id: id,
        rating: Some(rating),
        accepted: Some(accepted),
        quality: None,
        comment: None,
    });
    append(store, &format!("request-{id}"), &[event], Some(id)).await;
}

/// Gateway calls over six categories: most rated well, some rated badly on a
/// prompt that also has a good answer (preference pairs), some unrated, some
/// failed or recorded without content.
async fn write_gateway(store: &EmbeddedStore) -> Uuid {
    let categories = [
        "coding", "math", "research", "language", "empathy", "general",
    ];
    let mut first = None;
    for n in 0..240usize {
        let category = categories[n % categories.len()];
        let prompt = format!("Question {n} about {category}: how does it work?");
        let answer = format!(
            "Here is answer {n}. {}",
            "It works step by step, as explained. ".repeat(n % 9 + 1)
        );
        let id = write_call(
            store,
            execution(Uuid::now_v7(), category, &prompt, Some(&answer)),
        )
        .await;
        first.get_or_insert(id);
        match n % 10 {
            0..=6 => feedback(store, id, 5, true).await,
            7 => {
                feedback(store, id, 4, true).await;
                let worse = write_call(
                    store,
                    execution(Uuid::now_v7(), category, &prompt, Some("No idea, sorry.")),
                )
                .await;
                feedback(store, worse, 1, false).await;
            }
            8 => {} // unrated: below the default threshold
            _ => {
                // A failed call and one recorded without content.
                write_call(store, execution(Uuid::now_v7(), category, &prompt, None)).await;
                let mut blind = execution(Uuid::now_v7(), category, &prompt, Some("hidden"));
                blind.request_messages = None;
                blind.response_text = None;
                write_call(store, blind).await;
            }
        }
    }
    first.expect("a call")
}

struct Fixture {
    _root: tempfile::TempDir,
    data: PathBuf,
    out: PathBuf,
    request: Uuid,
    session: Uuid,
}

fn fixture() -> Fixture {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let out = root.path().join("out");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (request, session) = runtime.block_on(async {
        let store = EmbeddedStore::open(data.join("log")).expect("open log");
        let session = write_training(&store).await;
        let request = write_gateway(&store).await;
        store.close();
        (request, session)
    });
    Fixture {
        _root: root,
        data,
        out,
        request,
        session,
    }
}

fn tutorlog(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("TUTORLOG_LOG", "warn")
        .env_remove("TUTORLOG_DATA_DIR")
        .output()
        .expect("run tutorlog")
}

fn export(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "export",
        "dataset",
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    tutorlog(&args)
}

fn read_files(out: &Path) -> BTreeMap<String, Vec<u8>> {
    DATA_FILES
        .iter()
        .chain(["manifest.json"].iter())
        .map(|name| {
            let bytes = std::fs::read(out.join(name)).expect("file written");
            ((*name).to_owned(), bytes)
        })
        .collect()
}

fn lines(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn assert_messages(messages: &Value, what: &str) {
    let messages = messages
        .as_array()
        .unwrap_or_else(|| panic!("{what}: array"));
    assert!(!messages.is_empty(), "{what}: empty");
    for message in messages {
        let object = message.as_object().expect("object");
        assert_eq!(object.len(), 2, "{what}: only role and content: {message}");
        let role = message["role"].as_str().expect("role");
        assert!(
            ["system", "user", "assistant"].contains(&role),
            "{what}: {role}"
        );
        assert!(
            message["content"].as_str().is_some_and(|c| !c.is_empty()),
            "{what}"
        );
    }
}

fn check_shapes(files: &BTreeMap<String, Vec<u8>>) -> [usize; 4] {
    let mut counts = [0; 4];
    for (slot, name) in DATA_FILES.iter().enumerate() {
        let parsed = lines(&files[*name]);
        counts[slot] = parsed.len();
        for line in &parsed {
            if *name == "preferences.jsonl" {
                let keys: Vec<&String> = line.as_object().expect("object").keys().collect();
                assert_eq!(keys.len(), 3, "{line}");
                assert_messages(&line["prompt"], "prompt");
                for side in ["chosen", "rejected"] {
                    assert_messages(&line[side], side);
                    assert_eq!(line[side][0]["role"], "assistant");
                }
                assert_ne!(line["chosen"], line["rejected"]);
            } else {
                assert_eq!(line.as_object().map(|o| o.len()), Some(1), "{line}");
                assert_messages(&line["messages"], name);
                let messages = line["messages"].as_array().expect("array");
                assert_eq!(messages.last().expect("last")["role"], "assistant");
            }
        }
    }
    counts
}

#[test]
fn export_is_well_formed_split_and_byte_identical() {
    let fixture = fixture();
    let first = export(&fixture.data, &fixture.out, &[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let summary: Value = serde_json::from_slice(&first.stdout).expect("summary JSON");
    let files = read_files(&fixture.out);
    let [train, validation, test, preferences] = check_shapes(&files);
    let total = (train + validation + test) as f64;
    assert!(total > 400.0, "{total} examples");
    for (count, share) in [(train, 0.8), (validation, 0.1), (test, 0.1)] {
        assert!(
            (count as f64 / total - share).abs() <= 0.01,
            "{train}/{validation}/{test}"
        );
    }
    assert!(preferences >= 20, "{preferences} pairs");

    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).expect("manifest");
    assert_eq!(manifest["counts"]["train"], train);
    assert_eq!(manifest["counts"]["preferences"], preferences);
    assert_eq!(manifest["files"]["test.jsonl"]["lines"], test);
    assert_eq!(manifest["schema_version"], 1);
    assert_eq!(manifest["filters"]["min_quality"], 70.0);
    assert_eq!(manifest["source"]["first_position"], 0);
    assert!(manifest["source"]["last_position"]
        .as_u64()
        .is_some_and(|p| p > 1_000));
    assert_eq!(manifest["pipeline"]["outlier_check"], "applied");
    assert!(manifest["pipeline"]["below_min_quality"].as_u64() > Some(0));
    let strata = manifest["counts"]["strata"].as_object().expect("strata");
    assert!(strata.contains_key("algebra/easy") && strata.contains_key("coding/n/a"));
    for kind in ["item_answer", "tutor_feedback", "gateway_exchange"] {
        assert!(
            manifest["counts"]["by_kind"][kind]["train"].as_u64() > Some(0),
            "{kind}"
        );
    }
    // The version is the documented BLAKE3 over the data files.
    let mut hasher = blake3::Hasher::new();
    for name in DATA_FILES {
        let bytes = &files[name];
        hasher.update(name.as_bytes());
        hasher.update(&[0]);
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    let version = hasher.finalize().to_hex().to_string();
    assert_eq!(manifest["version"], version.as_str());
    assert_eq!(summary["version"], version.as_str());

    // A second run over the same log: byte for byte the same.
    let again = fixture.out.with_file_name("again");
    let second = export(&fixture.data, &again, &[]);
    assert!(second.status.success());
    assert_eq!(read_files(&again), files);
    // Re-running into the same directory replaces the files with the same bytes.
    let third = export(&fixture.data, &fixture.out, &[]);
    assert!(third.status.success());
    assert_eq!(read_files(&fixture.out), files);

    // Nothing reaches 101: empty data files, and the manifest says so.
    let empty = fixture.out.with_file_name("empty");
    let none = export(&fixture.data, &empty, &["--min-quality", "101"]);
    assert!(
        none.status.success(),
        "{}",
        String::from_utf8_lossy(&none.stderr)
    );
    let files = read_files(&empty);
    assert!(DATA_FILES.iter().all(|name| files[*name].is_empty()));
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).expect("manifest");
    assert_eq!(manifest["empty"], true);
    assert_eq!(manifest["counts"]["examples"], 0);
    assert!(manifest["note"]
        .as_str()
        .is_some_and(|n| n.contains("--min-quality 101")));

    // --since after the last event: nothing read, an empty export.
    let later = fixture.out.with_file_name("later");
    let since = export(&fixture.data, &later, &["--since", "2999-01-01T00:00:00Z"]);
    assert!(since.status.success());
    let manifest: Value =
        serde_json::from_slice(&read_files(&later)["manifest.json"]).expect("manifest");
    assert_eq!(manifest["source"]["events_read"], 0);
    assert!(manifest["source"]["first_position"].is_null());
}

fn assert_one_line_error(output: &Output, needle: &str) {
    assert!(!output.status.success(), "should fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one-line error: {stderr:?}");
    assert!(stderr.starts_with("error: "), "{stderr:?}");
    assert!(stderr.contains(needle), "{needle:?} in {stderr:?}");
}

#[test]
fn bad_flags_give_one_line_errors() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let out = root.path().join("out");
    let (data_dir, out_dir) = (data.to_str().expect("utf-8"), out.to_str().expect("utf-8"));
    std::fs::create_dir_all(data.join("log")).expect("mkdir");
    let cases: [(&[&str], &str); 8] = [
        (&["--min-quality", "abc"], "--min-quality"),
        (&["--min-quality", "-5"], "--min-quality"),
        (&["--since", "yesterday"], "--since"),
        (&["--bogus"], "--bogus"),
        (&["--items", "/nonexistent/items.toml"], "items.toml"),
        (&["--store", "nope"], "--store"),
        (&["--min-quality"], "--min-quality"),
        (&["--since", "2026-13-01T00:00:00Z"], "--since"),
    ];
    for (extra, needle) in cases {
        assert_one_line_error(&export(&data, &out, extra), needle);
    }
    assert_one_line_error(
        &tutorlog(&["export", "dataset", "--data-dir", data_dir]),
        "--out",
    );
    assert_one_line_error(
        &tutorlog(&[
            "export",
            "dataset",
            "--data-dir",
            "/nonexistent/data",
            "--out",
            out_dir,
        ]),
        "/nonexistent/data",
    );
    assert_one_line_error(
        &tutorlog(&["explain", "--request", "not-a-uuid", "--data-dir", data_dir]),
        "not a UUID",
    );
    assert_one_line_error(
        &tutorlog(&[
            "explain",
            "--request",
            &Uuid::now_v7().to_string(),
            "--data-dir",
            data_dir,
        ]),
        "no gateway request",
    );
    assert!(!out.exists(), "a failed export writes nothing");
    // Help still prints normally.
    let help = tutorlog(&["export", "dataset", "--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--min-quality"));
}

fn explain_json(data: &Path, id: Uuid) -> Value {
    let output = tutorlog(&[
        "explain",
        "--request",
        &id.to_string(),
        "--data-dir",
        data.to_str().expect("utf-8"),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

fn check_gateway_chain(body: &Value, id: Uuid) {
    assert_eq!(body["kind"], "gateway");
    assert_eq!(body["request_id"], id.to_string());
    let events = body["events"].as_array().expect("events");
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "budget.reserved",
            "provider.query.completed",
            "provider.selected",
            "provider.query.started",
            "execution.recorded",
            "budget.committed",
            "feedback.recorded",
        ]
    );
    assert!(events.iter().all(|e| e["correlation_id"] == id.to_string()));
    let positions: Vec<u64> = events
        .iter()
        .map(|e| e["position"].as_u64().expect("position"))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(body["summary"]["outcome"], "succeeded");
    assert_eq!(body["summary"]["cost"]["actual_micros"], 35);
    assert_eq!(body["summary"]["attempts"][0]["outcome"], "completed");
}

#[test]
fn explain_answers_on_the_command_line_and_over_http() {
    let fixture = fixture();
    let body = explain_json(&fixture.data, fixture.request);
    check_gateway_chain(&body, fixture.request);
    let training = explain_json(&fixture.data, fixture.session);
    assert_eq!(training["kind"], "training");
    assert_eq!(training["summary"]["status"], "completed");
    let events = training["events"].as_array().expect("events");
    assert!(events.len() > 10);
    assert!(events.iter().all(|e| e["stream"] == "learner-learner0"));
    assert!(training["summary"]["algo_runs"]
        .as_array()
        .is_some_and(|r| r.len() > 10));

    let daemon = Serve::start(&fixture.data, free_port(), &[]);
    let (status, body) = daemon.get(&format!("/api/v1/audit/requests/{}", fixture.request));
    assert_eq!(status, 200, "{body}");
    check_gateway_chain(&body, fixture.request);
    let (status, body) = daemon.get(&format!("/api/v1/audit/requests/{}", fixture.session));
    assert_eq!((status, body["kind"].as_str()), (200, Some("training")));
    let (status, body) = daemon.get(&format!("/api/v1/audit/requests/{}", Uuid::now_v7()));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = daemon.get("/api/v1/audit/requests/12345");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
}
