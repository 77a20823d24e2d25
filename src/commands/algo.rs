//! `tutorlog algo predict` / `tutorlog algo evaluate`: offline evaluation of the
//! learning algorithms on a CSV history of attempts (issue 4, item 6).
//!
//! `predict` walks the rows in order and, for each, writes the model's prediction
//! made *before* the row's outcome is seen, then learns from the row, exactly as
//! the live actor does (same code: `tutorlog_actors::algorithms`). Rows whose
//! optional `split` column says `test` are held out: predicted, never learned from.
//! `evaluate` scores those predictions (AUC, log loss) against the outcomes and
//! against a running-accuracy baseline.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, TimeZone, Utc};
use clap::{Args, Subcommand, ValueEnum};
use tutorlog_actors::algorithms::{
    difficulty::{self, DifficultyParams, ItemAttempt},
    eval,
    mastery::{MasteryModel, MasteryState, Observation},
    revision::{CardState, Rating, RevisionModel},
    AlgoKey, AlgoParams,
};

/// `tutorlog algo ...`.
#[derive(Debug, Subcommand)]
pub enum AlgoCommand {
    /// Replay a CSV history and write each row with the prediction made before it.
    Predict(PredictArgs),
    /// Print AUC and log loss of a predictions CSV against outcomes and a baseline.
    Evaluate(EvaluateArgs),
}

/// Which model `predict` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PredictAlgo {
    /// Columns `user_id,item_id,skill_id,correct,timestamp`; writes `p_correct`.
    Mastery,
    /// Columns `card_id,timestamp,rating` (1 again … 4 easy); writes `p_recall`.
    Revision,
}

/// `tutorlog algo predict`.
#[derive(Debug, Args)]
// `--version` here is the algorithm version, so the propagated `--version` flag
// (the program's version) is switched off for this subcommand.
#[command(disable_version_flag = true)]
pub struct PredictArgs {
    /// The algorithm.
    #[arg(long, value_enum)]
    pub algo: PredictAlgo,
    /// Input CSV (header row required; extra columns are carried through).
    #[arg(long)]
    pub input: PathBuf,
    /// Algorithm version (`2` or `v2`) [default: the one registered ACTIVE].
    #[arg(long)]
    pub version: Option<String>,
    /// Params as a JSON file (missing keys take the defaults) [default: defaults].
    #[arg(long)]
    pub params: Option<PathBuf>,
    /// Output CSV [default: stdout].
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// `tutorlog algo evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// A CSV written by `tutorlog algo predict`.
    #[arg(long)]
    pub input: PathBuf,
}

/// A problem with one cell of the input, named by line and column.
#[derive(Debug, thiserror::Error)]
#[error("{file}: line {line}, column `{column}`: {message}")]
pub struct CellError {
    /// The input file.
    pub file: String,
    /// 1-based line number.
    pub line: u64,
    /// Column name.
    pub column: String,
    /// What is wrong.
    pub message: String,
}

/// Runs an `algo` subcommand.
pub fn run(command: &AlgoCommand) -> anyhow::Result<()> {
    match command {
        AlgoCommand::Predict(args) => predict(args),
        AlgoCommand::Evaluate(args) => {
            let report = evaluate(&args.input)?;
            print!("{report}");
            Ok(())
        }
    }
}

/// Parses `2` or `v2`.
fn parse_version(text: &str) -> anyhow::Result<u32> {
    let digits = text.strip_prefix('v').unwrap_or(text);
    digits
        .parse()
        .with_context(|| format!("--version {text:?} is not a number like 1 or v1"))
}

fn resolve_params(
    key: AlgoKey,
    version: Option<&str>,
    params: Option<&Path>,
) -> anyhow::Result<AlgoParams> {
    let version = match version {
        Some(v) => parse_version(v)?,
        None => tutorlog_actors::algorithms::default_versions()
            .into_iter()
            .find(|s| {
                s.key == key && s.status == tutorlog_actors::algorithms::VersionStatus::Active
            })
            .map(|s| s.version)
            .context("no active version")?,
    };
    match params {
        Some(path) => {
            let json = std::fs::read_to_string(path)
                .with_context(|| format!("reading params {}", path.display()))?;
            Ok(AlgoParams::from_json(key, version, &json)?)
        }
        None => Ok(AlgoParams::defaults(key, version)?),
    }
}

/// A header with the positions of the named columns.
struct Columns {
    file: String,
    headers: csv::StringRecord,
}

impl Columns {
    fn require(&self, name: &str) -> anyhow::Result<usize> {
        self.find(name).with_context(|| {
            format!(
                "{}: missing column `{name}` (header is: {})",
                self.file,
                self.headers.iter().collect::<Vec<_>>().join(",")
            )
        })
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h.trim() == name)
    }

    fn cell<'r>(&self, record: &'r csv::StringRecord, index: usize) -> &'r str {
        record.get(index).unwrap_or("").trim()
    }

    fn error(
        &self,
        record: &csv::StringRecord,
        index: usize,
        message: impl Into<String>,
    ) -> CellError {
        CellError {
            file: self.file.clone(),
            line: record.position().map_or(0, |p| p.line()),
            column: self.headers.get(index).unwrap_or("?").trim().to_owned(),
            message: message.into(),
        }
    }

    fn timestamp(
        &self,
        record: &csv::StringRecord,
        index: usize,
    ) -> Result<DateTime<Utc>, CellError> {
        let text = self.cell(record, index);
        parse_timestamp(text).ok_or_else(|| {
            self.error(
                record,
                index,
                format!("{text:?} is neither RFC 3339 nor Unix epoch milliseconds"),
            )
        })
    }

    fn held_out(&self, record: &csv::StringRecord, split: Option<usize>) -> bool {
        split.is_some_and(|i| {
            let v = self.cell(record, i);
            v.eq_ignore_ascii_case("test") || v.eq_ignore_ascii_case("holdout")
        })
    }
}

/// RFC 3339, or an integer number of milliseconds since the Unix epoch.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(ms) = text.parse::<i64>() {
        return Utc.timestamp_millis_opt(ms).single();
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" | "y" | "1.0" => Some(true),
        "0" | "false" | "f" | "no" | "n" | "0.0" => Some(false),
        _ => None,
    }
}

fn open_reader(path: &Path) -> anyhow::Result<(csv::Reader<File>, Columns)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_path(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let headers = reader
        .headers()
        .with_context(|| format!("{}: reading the header row", path.display()))?
        .clone();
    Ok((
        reader,
        Columns {
            file: path.display().to_string(),
            headers,
        },
    ))
}

fn predict(args: &PredictArgs) -> anyhow::Result<()> {
    let key = match args.algo {
        PredictAlgo::Mastery => AlgoKey::Mastery,
        PredictAlgo::Revision => AlgoKey::Revision,
    };
    let params = resolve_params(key, args.version.as_deref(), args.params.as_deref())?;
    let (mut reader, columns) = open_reader(&args.input)?;
    let sink: Box<dyn Write> = match &args.output {
        Some(path) => {
            Box::new(File::create(path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => Box::new(io::stdout().lock()),
    };
    let mut writer = csv::Writer::from_writer(io::BufWriter::new(sink));
    let rows = match args.algo {
        PredictAlgo::Mastery => predict_mastery(&params, &mut reader, &columns, &mut writer)?,
        PredictAlgo::Revision => predict_revision(&params, &mut reader, &columns, &mut writer)?,
    };
    writer.flush().context("writing the output")?;
    eprintln!(
        "{} v{} (params {}): {rows} rows",
        key,
        params.version(),
        &params.checksum()?[..12]
    );
    Ok(())
}

/// Refuses rows that go back in time: the replay must see history in order.
fn check_order(
    columns: &Columns,
    record: &csv::StringRecord,
    index: usize,
    at: DateTime<Utc>,
    last: &mut Option<(DateTime<Utc>, u64)>,
) -> Result<(), CellError> {
    if let Some((prev, prev_line)) = *last {
        if at < prev {
            return Err(columns.error(
                record,
                index,
                format!("{at} is earlier than line {prev_line}'s {prev}; sort the input by time"),
            ));
        }
    }
    *last = Some((at, record.position().map_or(0, |p| p.line())));
    Ok(())
}

fn predict_mastery<W: Write>(
    params: &AlgoParams,
    reader: &mut csv::Reader<File>,
    columns: &Columns,
    writer: &mut csv::Writer<W>,
) -> anyhow::Result<u64> {
    let model = MasteryModel::from_params(params)?;
    let user = columns.require("user_id")?;
    let item = columns.require("item_id")?;
    let skill = columns.require("skill_id")?;
    let correct_col = columns.require("correct")?;
    let ts = columns.require("timestamp")?;
    let split = columns.find("split");
    let mut header = columns.headers.clone();
    header.push_field("p_correct");
    writer.write_record(&header)?;

    // Item difficulty for v2 comes from the difficulty algorithm over the item's
    // attempts so far, as the live daemon's recalibration would provide it.
    let difficulty_params = DifficultyParams::default();
    let uses_difficulty = matches!(model, MasteryModel::Elo(_));
    let mut learners: HashMap<(String, String), MasteryState> = HashMap::new();
    let mut items: HashMap<String, Vec<ItemAttempt>> = HashMap::new();
    let mut last = None;
    let mut rows = 0u64;
    let mut record = csv::StringRecord::new();
    while reader
        .read_record(&mut record)
        .with_context(|| format!("{}: reading row {}", columns.file, rows + 1))?
    {
        let at = columns.timestamp(&record, ts)?;
        check_order(columns, &record, ts, at, &mut last)?;
        let correct_text = columns.cell(&record, correct_col);
        let correct = parse_bool(correct_text).ok_or_else(|| {
            columns.error(
                &record,
                correct_col,
                format!("{correct_text:?} is not 0/1 or true/false"),
            )
        })?;
        for (index, name) in [(user, "user_id"), (item, "item_id"), (skill, "skill_id")] {
            if columns.cell(&record, index).is_empty() {
                return Err(columns
                    .error(&record, index, format!("{name} is empty"))
                    .into());
            }
        }
        let key = (
            columns.cell(&record, user).to_owned(),
            columns.cell(&record, skill).to_owned(),
        );
        let item_id = columns.cell(&record, item);
        let state = learners.entry(key).or_insert_with(|| model.initial_state());
        let item_difficulty = if uses_difficulty {
            items
                .get(item_id)
                .and_then(|attempts| difficulty::calibrate(&difficulty_params, attempts))
                .map(|d| d.difficulty)
        } else {
            None
        };
        let prediction = model.predict(state, at, item_difficulty);
        let mut out = record.clone();
        out.push_field(&prediction.p_correct.to_string());
        writer.write_record(&out)?;
        if !columns.held_out(&record, split) {
            let ability_before = state.ability;
            *state = model.update(
                state,
                &Observation {
                    correct,
                    at,
                    item_difficulty,
                },
            );
            if uses_difficulty {
                let attempts = items.entry(item_id.to_owned()).or_default();
                attempts.push(ItemAttempt {
                    correct,
                    learner_ability: Some(ability_before),
                });
                // Calibration only reads the last window; keep memory bounded.
                let window = difficulty_params.window_size as usize;
                if attempts.len() > 2 * window {
                    attempts.drain(..attempts.len() - window);
                }
            }
        }
        rows += 1;
    }
    Ok(rows)
}

fn predict_revision<W: Write>(
    params: &AlgoParams,
    reader: &mut csv::Reader<File>,
    columns: &Columns,
    writer: &mut csv::Writer<W>,
) -> anyhow::Result<u64> {
    let model = RevisionModel::from_params(params)?;
    let card = columns.require("card_id")?;
    let ts = columns.require("timestamp")?;
    let rating_col = columns.require("rating")?;
    let split = columns.find("split");
    let mut header = columns.headers.clone();
    header.push_field("p_recall");
    writer.write_record(&header)?;
    let mut cards: HashMap<String, CardState> = HashMap::new();
    let mut last = None;
    let mut rows = 0u64;
    let mut record = csv::StringRecord::new();
    while reader
        .read_record(&mut record)
        .with_context(|| format!("{}: reading row {}", columns.file, rows + 1))?
    {
        let at = columns.timestamp(&record, ts)?;
        check_order(columns, &record, ts, at, &mut last)?;
        let rating_text = columns.cell(&record, rating_col);
        let rating = rating_text
            .parse::<u8>()
            .ok()
            .and_then(|n| Rating::from_number(n).ok())
            .ok_or_else(|| {
                columns.error(
                    &record,
                    rating_col,
                    format!("{rating_text:?} is not a rating 1 (again) … 4 (easy)"),
                )
            })?;
        let card_id = columns.cell(&record, card);
        if card_id.is_empty() {
            return Err(columns.error(&record, card, "card_id is empty").into());
        }
        let state = cards
            .entry(card_id.to_owned())
            .or_insert_with(|| model.new_card());
        let p = model.p_recall(state, at);
        let mut out = record.clone();
        out.push_field(&p.map(|p| p.to_string()).unwrap_or_default());
        writer.write_record(&out)?;
        if !columns.held_out(&record, split) {
            *state = model.review(state, rating, at);
        }
        rows += 1;
    }
    Ok(rows)
}

/// Metrics of one subset of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Rows scored (those with a prediction).
    pub rows: usize,
    /// Share of positive outcomes.
    pub positive_rate: f64,
    /// Model AUC.
    pub model_auc: Option<f64>,
    /// Model log loss.
    pub model_log_loss: Option<f64>,
    /// Baseline AUC.
    pub baseline_auc: Option<f64>,
    /// Baseline log loss.
    pub baseline_log_loss: Option<f64>,
}

/// What `evaluate` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// `p_correct` or `p_recall`.
    pub prediction_column: &'static str,
    /// Rows read.
    pub rows: usize,
    /// Rows without a prediction (a card's first review).
    pub unscored: usize,
    /// Every scored row.
    pub all: Scores,
    /// Held-out rows (`split` = test), when the input has a split column.
    pub held_out: Option<Scores>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |x: Option<f64>| x.map_or_else(|| "n/a".to_owned(), |x| format!("{x:.4}"));
        writeln!(
            f,
            "{} rows, {} scored on `{}` ({} without a prediction)",
            self.rows, self.all.rows, self.prediction_column, self.unscored
        )?;
        writeln!(
            f,
            "baseline: running accuracy per learner/card, (correct+1)/(seen+2)"
        )?;
        writeln!(
            f,
            "{:<9} {:>9} {:>8} {:>10} {:>10} {:>13} {:>13}",
            "subset", "rows", "pos_rate", "model_auc", "base_auc", "model_logloss", "base_logloss"
        )?;
        let mut line = |name: &str, s: &Scores| {
            writeln!(
                f,
                "{:<9} {:>9} {:>8.4} {:>10} {:>10} {:>13} {:>13}",
                name,
                s.rows,
                s.positive_rate,
                show(s.model_auc),
                show(s.baseline_auc),
                show(s.model_log_loss),
                show(s.baseline_log_loss)
            )
        };
        line("all", &self.all)?;
        if let Some(held) = &self.held_out {
            line("held_out", held)?;
        }
        Ok(())
    }
}

/// Reads a predictions CSV and scores it.
pub fn evaluate(path: &Path) -> anyhow::Result<Report> {
    let (mut reader, columns) = open_reader(path)?;
    let (prediction_column, group, outcome_col, is_mastery) =
        if let Some(i) = columns.find("p_correct") {
            (
                ("p_correct", i),
                columns.require("user_id")?,
                columns.require("correct")?,
                true,
            )
        } else if let Some(i) = columns.find("p_recall") {
            (
                ("p_recall", i),
                columns.require("card_id")?,
                columns.require("rating")?,
                false,
            )
        } else {
            anyhow::bail!(
                "{}: no `p_correct` or `p_recall` column; run `tutorlog algo predict` first",
                columns.file
            );
        };
    let split = columns.find("split");
    let mut seen: HashMap<String, (u64, u64)> = HashMap::new();
    let (mut model_all, mut base_all, mut model_held, mut base_held) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut rows, mut unscored) = (0usize, 0usize);
    let mut record = csv::StringRecord::new();
    while reader
        .read_record(&mut record)
        .with_context(|| format!("{}: reading row {}", columns.file, rows + 1))?
    {
        rows += 1;
        let outcome_text = columns.cell(&record, outcome_col);
        let outcome = if is_mastery {
            parse_bool(outcome_text)
        } else {
            outcome_text
                .parse::<u8>()
                .ok()
                .and_then(|n| Rating::from_number(n).ok())
                .map(Rating::recalled)
        }
        .ok_or_else(|| {
            columns.error(
                &record,
                outcome_col,
                format!("{outcome_text:?} is not a valid outcome"),
            )
        })?;
        let held = columns.held_out(&record, split);
        let counts = seen
            .entry(columns.cell(&record, group).to_owned())
            .or_insert((0, 0));
        let baseline = eval::running_accuracy(counts.0, counts.1);
        let prediction_text = columns.cell(&record, prediction_column.1);
        if prediction_text.is_empty() {
            unscored += 1;
        } else {
            let p: f64 = prediction_text
                .parse()
                .ok()
                .filter(|p: &f64| (0.0..=1.0).contains(p))
                .ok_or_else(|| {
                    columns.error(
                        &record,
                        prediction_column.1,
                        format!("{prediction_text:?} is not a probability"),
                    )
                })?;
            model_all.push((p, outcome));
            base_all.push((baseline, outcome));
            if held {
                model_held.push((p, outcome));
                base_held.push((baseline, outcome));
            }
        }
        // The baseline learns exactly what the model learnt: not the held-out rows.
        if !held {
            counts.0 += u64::from(outcome);
            counts.1 += 1;
        }
    }
    let scores = |model: &[(f64, bool)], base: &[(f64, bool)]| Scores {
        rows: model.len(),
        positive_rate: model.iter().filter(|p| p.1).count() as f64 / model.len().max(1) as f64,
        model_auc: eval::auc(model),
        model_log_loss: eval::log_loss(model),
        baseline_auc: eval::auc(base),
        baseline_log_loss: eval::log_loss(base),
    };
    Ok(Report {
        prediction_column: prediction_column.0,
        rows,
        unscored,
        all: scores(&model_all, &base_all),
        held_out: split.map(|_| scores(&model_held, &base_held)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write test file");
        path
    }

    fn run_predict(
        algo: PredictAlgo,
        input: &Path,
        output: &Path,
        version: Option<&str>,
    ) -> anyhow::Result<()> {
        predict(&PredictArgs {
            algo,
            input: input.to_owned(),
            version: version.map(str::to_owned),
            params: None,
            output: Some(output.to_owned()),
        })
    }

    #[test]
    fn mastery_predictions_come_before_each_row_and_extra_columns_survive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = write(
            dir.path(),
            "in.csv",
            "user_id,item_id,skill_id,correct,timestamp,note\n\
             u1,i1,s,1,2026-01-01T00:00:00Z,a\n\
             u1,i2,s,1,1767225660000,b\n\
             u2,i1,s,0,2026-01-01T00:02:00Z,c\n",
        );
        let output = dir.path().join("out.csv");
        run_predict(PredictAlgo::Mastery, &input, &output, None).expect("predict");
        let text = std::fs::read_to_string(&output).expect("read output");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "user_id,item_id,skill_id,correct,timestamp,note,p_correct"
        );
        // Both learners' first predictions are the prior's, whatever came before.
        let d = tutorlog_actors::algorithms::mastery::BktParams::default();
        let prior = d.p_init * (1.0 - d.p_slip) + (1.0 - d.p_init) * d.p_guess;
        let p = |line: &str| -> f64 {
            line.rsplit(',')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("p")
        };
        assert!(
            lines[1].contains(",a,") && (p(lines[1]) - prior).abs() < 1e-12,
            "{}",
            lines[1]
        );
        assert!(
            lines[3].contains(",c,") && (p(lines[3]) - prior).abs() < 1e-12,
            "{}",
            lines[3]
        );
        assert!(p(lines[2]) > prior);
        // Deterministic: a second run writes the same bytes.
        let again = dir.path().join("again.csv");
        run_predict(PredictAlgo::Mastery, &input, &again, Some("v1")).expect("predict");
        assert_eq!(
            std::fs::read(&output).expect("read"),
            std::fs::read(&again).expect("read")
        );
    }

    #[test]
    fn bad_cells_are_named_by_line_and_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = write(
            dir.path(),
            "bad.csv",
            "user_id,item_id,skill_id,correct,timestamp\nu1,i1,s,1,2026-01-01T00:00:00Z\nu1,i1,s,maybe,2026-01-01T00:00:01Z\n",
        );
        let err = run_predict(
            PredictAlgo::Mastery,
            &input,
            &dir.path().join("o.csv"),
            None,
        )
        .expect_err("bad");
        let msg = format!("{err:#}");
        assert!(msg.contains("line 3") && msg.contains("`correct`"), "{msg}");

        let input = write(
            dir.path(),
            "ts.csv",
            "card_id,timestamp,rating\nc,yesterday,3\n",
        );
        let msg = format!(
            "{:#}",
            run_predict(
                PredictAlgo::Revision,
                &input,
                &dir.path().join("o.csv"),
                None
            )
            .expect_err("bad")
        );
        assert!(
            msg.contains("line 2") && msg.contains("`timestamp`"),
            "{msg}"
        );

        let input = write(dir.path(), "r.csv", "card_id,timestamp,rating\nc,0,5\n");
        let msg = format!(
            "{:#}",
            run_predict(
                PredictAlgo::Revision,
                &input,
                &dir.path().join("o.csv"),
                None
            )
            .expect_err("bad")
        );
        assert!(msg.contains("`rating`"), "{msg}");

        let input = write(dir.path(), "m.csv", "card_id,rating\nc,3\n");
        let msg = format!(
            "{:#}",
            run_predict(
                PredictAlgo::Revision,
                &input,
                &dir.path().join("o.csv"),
                None
            )
            .expect_err("bad")
        );
        assert!(msg.contains("missing column `timestamp`"), "{msg}");

        let input = write(
            dir.path(),
            "o.csv",
            "card_id,timestamp,rating\nc,2000,3\nc,1000,3\n",
        );
        let msg = format!(
            "{:#}",
            run_predict(
                PredictAlgo::Revision,
                &input,
                &dir.path().join("x.csv"),
                None
            )
            .expect_err("bad")
        );
        assert!(
            msg.contains("line 3") && msg.contains("sort the input"),
            "{msg}"
        );
    }

    #[test]
    fn revision_first_review_has_no_prediction_and_evaluate_skips_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = write(
            dir.path(),
            "rev.csv",
            "card_id,timestamp,rating\n\
             c1,2026-01-01T00:00:00Z,3\n\
             c1,2026-01-02T00:00:00Z,3\n\
             c1,2026-01-30T00:00:00Z,1\n\
             c2,2026-01-30T00:00:00Z,3\n\
             c2,2026-01-31T00:00:00Z,3\n",
        );
        for version in ["1", "2"] {
            let output = dir.path().join(format!("rev{version}.csv"));
            run_predict(PredictAlgo::Revision, &input, &output, Some(version)).expect("predict");
            let report = evaluate(&output).expect("evaluate");
            assert_eq!((report.rows, report.unscored, report.all.rows), (5, 2, 3));
            assert!(report.all.model_log_loss.is_some());
            assert!(report.held_out.is_none());
        }
    }

    #[test]
    fn held_out_rows_are_predicted_but_not_learned_from() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = write(
            dir.path(),
            "split.csv",
            "user_id,item_id,skill_id,correct,timestamp,split\n\
             u1,i1,s,1,1000,test\n\
             u1,i2,s,1,2000,train\n\
             u1,i3,s,0,3000,test\n",
        );
        let output = dir.path().join("out.csv");
        run_predict(PredictAlgo::Mastery, &input, &output, None).expect("predict");
        let text = std::fs::read_to_string(&output).expect("read");
        let p: Vec<f64> = text
            .lines()
            .skip(1)
            .map(|l| {
                l.rsplit(',')
                    .next()
                    .and_then(|x| x.parse().ok())
                    .expect("p")
            })
            .collect();
        // The held-out first row taught nothing: the second prediction is still the prior.
        assert_eq!(p[0], p[1]);
        assert!(p[2] > p[1]);
        let report = evaluate(&output).expect("evaluate");
        assert_eq!(report.held_out.as_ref().map(|s| s.rows), Some(2));
    }

    #[test]
    fn evaluate_computes_baseline_from_running_accuracy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = write(
            dir.path(),
            "p.csv",
            "user_id,correct,p_correct\nu,1,0.9\nu,0,0.2\nu,1,0.8\nu,0,0.3\n",
        );
        let report = evaluate(&input).expect("evaluate");
        assert_eq!(report.all.model_auc, Some(1.0));
        // Baseline predictions: 0.5, 2/3, 0.5, 3/5: both positives rank below both negatives.
        assert_eq!(report.all.baseline_auc, Some(0.0));
        let text = report.to_string();
        assert!(
            text.contains("model_auc") && text.contains("1.0000"),
            "{text}"
        );
    }

    #[test]
    fn the_cli_definition_is_consistent_and_parses_algo_commands() {
        use clap::{CommandFactory, Parser};
        crate::cli::Cli::command().debug_assert();
        let cli = crate::cli::Cli::try_parse_from([
            "tutorlog",
            "algo",
            "predict",
            "--algo",
            "mastery",
            "--input",
            "x.csv",
            "--version",
            "v2",
        ])
        .expect("parses");
        let crate::cli::Command::Algo {
            command: AlgoCommand::Predict(args),
        } = cli.command
        else {
            panic!("not algo predict");
        };
        assert_eq!(args.version.as_deref(), Some("v2"));
        assert_eq!(parse_version("v2").expect("v2"), 2);
        assert!(parse_version("two").is_err());
    }

    #[test]
    fn timestamps_parse_both_ways() {
        assert_eq!(parse_timestamp("0"), Utc.timestamp_millis_opt(0).single());
        assert_eq!(
            parse_timestamp("2026-01-01T01:00:00+01:00"),
            parse_timestamp("1767225600000")
        );
        assert_eq!(parse_timestamp("nope"), None);
    }
}
