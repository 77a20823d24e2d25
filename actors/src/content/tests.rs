//! Tests of the bundled bank, the grader, selection and the loader's schema check.

use super::*;

fn bank() -> &'static ItemBank {
    ItemBank::bundled()
}

fn item(id: &str) -> &'static Item {
    bank()
        .get(id)
        .unwrap_or_else(|| panic!("bundled bank has no item {id}"))
}

// ── the bundled bank ────────────────────────────────────────────────

#[test]
fn bundled_bank_loads_and_validates() {
    let b = ItemBank::load_bundled().expect("the bundled bank must pass the schema check");
    assert!(b.len() >= 100, "only {} items", b.len());
    assert_eq!(&b, bank());
}

#[test]
fn bundled_bank_covers_categories_and_difficulties() {
    let cats = bank().categories();
    assert!(cats.len() >= 8, "categories: {cats:?}");
    for c in &cats {
        for d in Difficulty::ALL {
            assert!(
                !bank().filter(Some(c), Some(d)).is_empty(),
                "{c} has no {d} item"
            );
        }
        assert!(
            bank().filter(Some(c), None).len() >= 10,
            "{c} has < 10 items"
        );
    }
    assert_eq!(bank().focus_areas(), cats);
    let total: usize = bank().counts().iter().map(|(_, _, n)| n).sum();
    assert_eq!(total, bank().len());
}

#[test]
fn every_reference_answer_grades_at_least_90() {
    for it in bank().items() {
        let g = grade(it, &it.answer);
        assert!(
            g.score >= 90,
            "{}: reference grades {} ({})",
            it.id,
            g.score,
            g.feedback
        );
        assert!(g.correct, "{}", it.id);
        assert_eq!(g.matched_misconception, None, "{}", it.id);
    }
}

#[test]
fn every_accepted_variant_grades_at_least_90() {
    for it in bank().items() {
        for a in &it.accepted {
            let g = grade(it, a);
            assert!(g.score >= 90, "{}: variant {a:?} grades {}", it.id, g.score);
        }
    }
}

#[test]
fn empty_answers_grade_zero() {
    for it in bank().items() {
        for empty in ["", "   ", "\n\t", "...", "\"\""] {
            let g = grade(it, empty);
            assert_eq!(g.score, 0, "{}: {empty:?}", it.id);
            assert!(!g.correct);
            assert!(g.feedback.starts_with("No answer given"), "{}", g.feedback);
        }
    }
}

#[test]
fn every_tagged_misconception_is_recognised() {
    let mut n = 0;
    for it in bank().items() {
        for m in &it.misconceptions {
            let g = grade(it, &m.answer);
            assert_eq!(
                g.matched_misconception.as_deref(),
                Some(m.tag.as_str()),
                "{}",
                it.id
            );
            assert!(!g.correct, "{}: {:?}", it.id, m.answer);
            assert!(g.feedback.contains(m.feedback.trim()), "{}", g.feedback);
            n += 1;
        }
    }
    assert!(n >= 100, "only {n} tagged misconceptions");
}

#[test]
fn grading_is_deterministic() {
    let answers = [
        "4",
        "x = 7",
        "",
        "Paris",
        "the coin has no memory",
        "1/2",
        "banana",
    ];
    for it in bank().items() {
        for a in answers.iter().copied().chain([it.answer.as_str()]) {
            let first = grade(it, a);
            for _ in 0..3 {
                assert_eq!(grade(it, a), first, "{}: {a:?}", it.id);
            }
            assert_eq!(RubricGrader.grade(it, a), first);
        }
    }
}

#[test]
fn bundled_items_round_trip_through_json() {
    let json = serde_json::json!({ "items": bank().items() }).to_string();
    let again = ItemBank::from_json_str(&json).expect("re-serialised bank loads");
    assert_eq!(&again, bank());
    assert_eq!(again.fingerprint(), bank().fingerprint());
    assert_eq!(bank().fingerprint().len(), 16);
    let other = ItemBank::from_toml_str(GOOD).expect("valid");
    assert_ne!(other.fingerprint(), bank().fingerprint());
}

// ── grader behaviour ────────────────────────────────────────────────

#[test]
fn numeric_equivalence() {
    let coin = item("probability-coin-001");
    for a in [
        "1/2",
        "0.5",
        ".5",
        "50%",
        "P(heads) = 1/2",
        "2/4",
        "0.50",
        " 1 / 2 ",
    ] {
        let g = grade(coin, a);
        assert_eq!(g.score, 100, "{a:?}: {}", g.feedback);
    }
    assert_eq!(grade(coin, "0.6").score, 0);
    let lin = item("algebra-linear-001");
    for a in ["4", "x = 4", "x=4", "X = 4.0", "the answer is 4."] {
        assert_eq!(grade(lin, a).score, 100, "{a:?}");
    }
    let g = grade(lin, "5");
    assert_eq!(g.score, 0);
    assert!(g.feedback.contains("you answered 5"), "{}", g.feedback);
    assert!(grade(lin, "4 or 5").feedback.contains("Could not read"));
    let frac = item("arithmetic-fraction-div-001");
    for a in ["3/2", "1.5", "1 1/2", "6/4"] {
        assert_eq!(grade(frac, a).score, 100, "{a:?}");
    }
}

#[test]
fn units_and_tolerance() {
    let area = item("geometry-rectangle-area-001");
    for a in ["28", "28 cm²", "28cm^2", "28 square centimetres"] {
        assert_eq!(grade(area, a).score, 100, "{a:?}");
    }
    assert_eq!(grade(area, "28 apples").score, 0);
    let circle = item("geometry-circle-area-001");
    for a in ["28.27", "28.274", "28.26", "9π"] {
        assert_eq!(grade(circle, a).score, 100, "{a:?}");
    }
    assert_eq!(grade(circle, "28.5").score, 0);
    let pct = item("arithmetic-percent-change-001");
    for a in ["30", "30%", "30 percent"] {
        assert_eq!(grade(pct, a).score, 100, "{a:?}");
    }
}

#[test]
fn text_normalisation_in_grading() {
    let it = item("geography-capital-australia-001");
    for a in [
        "Canberra",
        "canberra",
        "  CANBERRA. ",
        "It is Canberra!",
        "'Canberra'",
    ] {
        assert_eq!(grade(it, a).score, 100, "{a:?}");
    }
    let sql = item("sql-select-all-001");
    for a in [
        "select * from users;",
        "SELECT *  FROM users",
        "select *from users",
    ] {
        assert_eq!(grade(sql, a).score, 100, "{a:?}");
    }
    let py = item("python-generator-exhausted-001");
    assert_eq!(grade(py, "3 0").score, 100);
    assert_eq!(grade(py, "30").score, 0, "words must not run together");
    let list = item("python-list-comprehension-001");
    assert_eq!(grade(list, "[0,1,4,9]").score, 100);
}

#[test]
fn a_tagged_wrong_answer_returns_its_misconception() {
    let it = item("algebra-linear-001");
    let g = grade(it, "x = 7");
    assert_eq!(g.score, 0);
    assert!(!g.correct);
    assert_eq!(
        g.matched_misconception.as_deref(),
        Some("inverse-operation")
    );
    assert!(g.feedback.contains("You added 3"), "{}", g.feedback);
    assert!(g.feedback.contains("Expected: 4"), "{}", g.feedback);
    // Numeric misconceptions match in any notation.
    let coin = item("probability-die-001");
    assert_eq!(
        grade(coin, "0.5").matched_misconception.as_deref(),
        Some("inclusive-boundary")
    );
    let syd = grade(item("geography-capital-australia-001"), "sydney");
    assert_eq!(
        syd.matched_misconception.as_deref(),
        Some("largest-city-not-capital")
    );
}

#[test]
fn keyword_partial_credit_and_minimum_length() {
    let it = item("probability-gamblers-fallacy-001");
    let full = grade(
        it,
        "No: every toss is independent and the coin has no memory, so tails is still a 50% chance.",
    );
    assert_eq!(full.score, 100, "{}", full.feedback);
    assert!(full.missing_keywords.is_empty());

    let partial = grade(
        it,
        "No, because each toss of a fair coin is independent of all the others that came before it.",
    );
    assert_eq!(partial.score, 33, "{}", partial.feedback);
    assert!(!partial.correct);
    assert_eq!(partial.matched_keywords, vec!["independent".to_string()]);
    assert_eq!(partial.missing_keywords.len(), 2);
    assert!(
        partial.feedback.contains("Missing: memory"),
        "{}",
        partial.feedback
    );

    let short = grade(it, "independent, no memory, 1/2");
    assert!(short.score < 100 && short.score > 0, "{}", short.score);
    assert!(short.feedback.contains("Too short"), "{}", short.feedback);

    let none = grade(
        it,
        "Yes, tails is due after so many heads in a row, surely by now.",
    );
    assert_eq!(none.score, 0);
    assert!(
        none.feedback.contains("Missing the key points"),
        "{}",
        none.feedback
    );
    // A misconception phrase inside a failing explanation is recognised.
    assert_eq!(
        none.matched_misconception.as_deref(),
        Some("gamblers-fallacy")
    );
    let seasons = grade(
        item("geography-seasons-001"),
        "Because in summer the Earth is closer to the Sun than in winter.",
    );
    assert_eq!(
        seasons.matched_misconception.as_deref(),
        Some("distance-misconception")
    );
    assert!(
        seasons.feedback.starts_with("Not quite: Earth's distance"),
        "{}",
        seasons.feedback
    );
    // ...but not inside a passing one.
    let fine = grade(
        item("geography-seasons-001"),
        "Not because Earth is closer to the Sun, but because the axis is tilted: as Earth orbits, each hemisphere gets more direct sunlight in turn.",
    );
    assert!(fine.correct, "{}", fine.feedback);
    assert_eq!(fine.matched_misconception, None);
}

#[test]
fn keywords_match_at_word_starts_only() {
    let it = item("rust-borrowck-push-001");
    // "mutable" inside "immutable" must not count as the mutable-borrow concept.
    let g = grade(
        it,
        "first is an immutable reference that is still alive later on when the vector is changed by the call",
    );
    assert!(
        g.missing_keywords.iter().any(|k| k == "mutable borrow"),
        "{:?}",
        g
    );
}

#[test]
fn exact_items_give_partial_credit_for_a_padded_answer() {
    let it = item("geography-capital-france-001");
    let g = grade(it, "Paris, France");
    assert_eq!(g.score, 50);
    assert!(!g.correct);
    assert_eq!(grade(it, "London").score, 0);
    // Symbols matter: no partial credit for the wrong inequality.
    assert_eq!(grade(item("algebra-inequality-001"), "x > 2").score, 0);
}

#[test]
fn grader_trait_is_object_safe_and_named() {
    let g: &dyn Grader = &RubricGrader;
    assert_eq!(g.name(), RUBRIC_GRADER_NAME);
    let out = g.grade(item("rust-mut-001"), "let mut");
    assert_eq!(out.score, 100);
    assert_eq!(out.grader, RUBRIC_GRADER_NAME);
}

// ── selection ───────────────────────────────────────────────────────

#[test]
fn lookups_and_filters() {
    assert!(bank().get("algebra-linear-001").is_some());
    assert!(bank().get("nope").is_none());
    assert!(bank().has_category("Algebra"));
    assert!(!bank().has_category("astrology"));
    let hard_sql = bank().filter(Some("SQL"), Some(Difficulty::Hard));
    assert!(!hard_sql.is_empty());
    assert!(hard_sql
        .iter()
        .all(|i| i.category == "sql" && i.difficulty == Difficulty::Hard));
    assert_eq!(bank().filter(None, None).len(), bank().len());
}

#[test]
fn pick_is_a_pure_function_of_the_seed() {
    let items = bank().items();
    for seed in 0..200u64 {
        let a = pick(items, Some(Difficulty::Medium), Some("physics"), seed).expect("match");
        let b = pick(items, Some(Difficulty::Medium), Some("physics"), seed).expect("match");
        assert_eq!(a.id, b.id);
        assert_eq!(a.category, "physics");
        assert_eq!(a.difficulty, Difficulty::Medium);
    }
    // Seeds spread over the candidates.
    let distinct: std::collections::BTreeSet<&str> = (0..200u64)
        .filter_map(|s| pick(items, None, Some("algebra"), s))
        .map(|i| i.id.as_str())
        .collect();
    assert_eq!(distinct.len(), bank().filter(Some("algebra"), None).len());
    assert!(pick(items, None, Some("astrology"), 1).is_none());
    assert!(pick(items, None, None, 7).is_some());
    assert_eq!(
        bank().pick(None, None, 42).map(|i| &i.id),
        pick(items, None, None, 42).map(|i| &i.id)
    );
}

#[test]
fn pick_excluding_avoids_repeats_until_exhausted() {
    let pool = bank().filter(Some("rust"), Some(Difficulty::Hard));
    let mut used: Vec<&str> = Vec::new();
    for round in 0..pool.len() as u64 {
        let it = bank()
            .pick_excluding(Some(Difficulty::Hard), Some("rust"), &used, round * 7919)
            .expect("a candidate");
        assert!(!used.contains(&it.id.as_str()), "repeat of {}", it.id);
        used.push(&it.id);
    }
    // Everything used: repeats are allowed rather than returning None.
    assert!(bank()
        .pick_excluding(Some(Difficulty::Hard), Some("rust"), &used, 3)
        .is_some());
}

// ── loader / schema check ───────────────────────────────────────────

const GOOD: &str = r#"
[[items]]
id = "t-easy"
category = "test"
difficulty = "easy"
kind = "numeric"
prompt = "1 + 1?"
answer = "2"
explanation = "One plus one."
[[items.misconceptions]]
answer = "11"
tag = "concatenation"
feedback = "That joins the digits."

[[items]]
id = "t-medium"
category = "test"
difficulty = "medium"
prompt = "Capital of Italy?"
answer = "Rome"
accepted = ["Roma"]
explanation = "Rome."

[[items]]
id = "t-hard"
category = "test"
difficulty = "hard"
kind = "keywords"
prompt = "Why is the sky blue?"
answer = "Rayleigh scattering: air molecules scatter short blue wavelengths much more than red."
keywords = ["scatter", "wavelength"]
min_words = 5
explanation = "Shorter wavelengths scatter more."
"#;

fn errors_of(toml_text: &str) -> Vec<ValidationError> {
    match ItemBank::from_toml_str(toml_text) {
        Err(BankError::Invalid(v)) => v,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

fn has_error(errors: &[ValidationError], id: &str, field: &str) -> bool {
    errors.iter().any(|e| e.id == id && e.field == field)
}

#[test]
fn good_bank_loads_from_toml_and_json_and_path() {
    let b = ItemBank::from_toml_str(GOOD).expect("valid");
    assert_eq!(b.len(), 3);
    assert_eq!(b.categories(), vec!["test"]);
    assert_eq!(b.get("t-medium").map(|i| i.kind), Some(AnswerKind::Exact));

    let dir = std::env::temp_dir().join(format!("tutorlog-content-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let toml_path = dir.join("bank.toml");
    std::fs::write(&toml_path, GOOD).expect("write");
    assert_eq!(ItemBank::from_path(&toml_path).expect("toml file"), b);
    let json_path = dir.join("bank.json");
    let json = serde_json::json!({ "items": b.items() }).to_string();
    std::fs::write(&json_path, json).expect("write");
    assert_eq!(ItemBank::from_path(&json_path).expect("json file"), b);
    let missing = ItemBank::from_path(&dir.join("missing.toml"));
    assert!(matches!(missing, Err(BankError::Io { .. })), "{missing:?}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn rejects_duplicate_ids() {
    let text = GOOD.replace("id = \"t-medium\"", "id = \"t-easy\"");
    let errs = errors_of(&text);
    assert!(has_error(&errs, "t-easy", "id"), "{errs:?}");
    assert!(errs.iter().any(|e| e.message.contains("duplicate")));
}

#[test]
fn rejects_unknown_difficulty_and_kind() {
    let text = GOOD
        .replace("difficulty = \"medium\"", "difficulty = \"expert\"")
        .replace("kind = \"keywords\"", "kind = \"essay\"");
    let errs = errors_of(&text);
    assert!(has_error(&errs, "t-medium", "difficulty"), "{errs:?}");
    assert!(has_error(&errs, "t-hard", "kind"), "{errs:?}");
    // The medium item is gone, so the category is incomplete too.
    let msg = BankError::Invalid(errs.clone()).to_string();
    assert!(
        msg.contains("t-medium") && msg.contains("difficulty"),
        "{msg}"
    );
}

#[test]
fn rejects_missing_and_empty_fields() {
    let text = GOOD
        .replace("prompt = \"Capital of Italy?\"\n", "")
        .replace("explanation = \"One plus one.\"", "explanation = \"  \"");
    let errs = errors_of(&text);
    assert!(has_error(&errs, "t-medium", "prompt"), "{errs:?}");
    assert!(has_error(&errs, "t-easy", "explanation"), "{errs:?}");
    let text = GOOD.replace("id = \"t-hard\"\n", "");
    let errs = errors_of(&text);
    assert!(has_error(&errs, "#2", "id"), "{errs:?}");
    let text = GOOD.replace("tag = \"concatenation\"\n", "");
    let errs = errors_of(&text);
    assert!(
        has_error(&errs, "t-easy", "misconceptions[0].tag"),
        "{errs:?}"
    );
}

#[test]
fn rejects_duplicate_prompts() {
    let text = GOOD.replace("prompt = \"Capital of Italy?\"", "prompt = \"1 + 1?\"");
    let errs = errors_of(&text);
    assert!(has_error(&errs, "t-medium", "prompt"), "{errs:?}");
}

#[test]
fn rejects_incomplete_category() {
    let text = GOOD.replace("difficulty = \"hard\"", "difficulty = \"medium\"");
    let errs = errors_of(&text);
    assert!(has_error(&errs, "category:test", "difficulty"), "{errs:?}");
    assert!(errs.iter().any(|e| e.message.contains("no hard item")));
}

#[test]
fn rejects_inconsistent_rubrics() {
    // A keyword the reference answer does not contain.
    let errs = errors_of(&GOOD.replace(
        "keywords = [\"scatter\", \"wavelength\"]",
        "keywords = [\"scatter\", \"ozone\"]",
    ));
    assert!(has_error(&errs, "t-hard", "keywords"), "{errs:?}");
    // A non-number answer on a numeric item.
    let errs = errors_of(&GOOD.replace("answer = \"2\"", "answer = \"two\""));
    assert!(has_error(&errs, "t-easy", "answer"), "{errs:?}");
    // A misconception that is actually the right answer.
    let errs = errors_of(&GOOD.replace("answer = \"11\"", "answer = \"2.0\""));
    assert!(
        has_error(&errs, "t-easy", "misconceptions[0].answer"),
        "{errs:?}"
    );
    // Keywords on a non-keywords item, a minimum longer than the reference.
    let errs = errors_of(
        &GOOD
            .replace(
                "accepted = [\"Roma\"]",
                "accepted = [\"Roma\"]\nkeywords = [\"rome\"]",
            )
            .replace("min_words = 5", "min_words = 50"),
    );
    assert!(has_error(&errs, "t-medium", "keywords"), "{errs:?}");
    assert!(has_error(&errs, "t-hard", "min_words"), "{errs:?}");
    // A negative tolerance and a bad slug.
    let errs = errors_of(
        &GOOD
            .replace("answer = \"2\"", "answer = \"2\"\ntolerance = -1.0")
            .replace("category = \"test\"", "category = \"Test Area\""),
    );
    assert!(has_error(&errs, "t-easy", "tolerance"), "{errs:?}");
    assert!(has_error(&errs, "t-easy", "category"), "{errs:?}");
}

#[test]
fn rejects_unparseable_files_and_unknown_fields() {
    assert!(matches!(
        ItemBank::from_toml_str("[[items]\nid ="),
        Err(BankError::Parse { format: "toml", .. })
    ));
    let err = ItemBank::from_toml_str(&GOOD.replace("min_words = 5", "min_wrds = 5"))
        .expect_err("unknown field");
    assert!(err.to_string().contains("min_wrds"), "{err}");
    assert!(matches!(
        ItemBank::from_json_str("{\"items\": 3}"),
        Err(BankError::Parse { format: "json", .. })
    ));
    let errs = errors_of("items = []");
    assert!(has_error(&errs, "", "items"), "{errs:?}");
}

#[test]
fn odd_inputs_never_panic_and_stay_in_range() {
    let long = "a".repeat(100_000);
    let odd = [
        "-",
        "/",
        "%",
        "=",
        "==",
        "1e999",
        "-1e999",
        "0/0",
        "1/",
        "/2",
        ".",
        "-.",
        "+",
        "∞",
        "🦀",
        "x =",
        "= x",
        "1,,000",
        ",5",
        "5,",
        "1 1/0",
        "- 1/2",
        "½",
        "\u{0}",
        "'''",
        "\"\"\"",
        "((()))",
        "answer:",
        "the answer is",
        "it is",
        long.as_str(),
    ];
    for it in bank().items() {
        for a in odd {
            let g = grade(it, a);
            assert!(g.score <= 100);
            assert_eq!(g.correct, g.score >= PASS_SCORE);
            assert!(!g.feedback.is_empty());
        }
    }
}
