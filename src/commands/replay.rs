//! `tutorlog replay`: fold a view from the log as of a position or time and print it
//! as the same JSON document the daemon serves at `GET /api/v1/views/{name}`, or as
//! a table.
//!
//! Filters: `--stream S` folds only that stream's events (any view); `--user U` and
//! `--provider P` fold everything and then narrow the document to one user's or one
//! provider's rows, for the views that have them. A filter a view does not have is
//! refused rather than silently ignored.

use std::{
    io::IsTerminal,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use tutorlog_projections::{
    replay_filtered_with_progress, AlgoRuns, Benchmarks, FilterKind, Mastery, Narrow, Projection,
    ProviderHealth, ReplayProgress, Routing, Spend, StreamStats, Until, ViewFilter,
};

use crate::{
    backend,
    cli::StoreArgs,
    commands::table::TableView,
    views::{view_document, VIEW_NAMES},
};

/// A replay draws its progress bar once it has run this long (shorter ones would
/// only flicker); the time, not an event count, so a slow backend shows it too.
pub const PROGRESS_AFTER: Duration = Duration::from_secs(1);
const PROGRESS_TEMPLATE: &str =
    "replaying [{bar:40}] {human_pos}/{human_len} events, {elapsed} ({eta} left)";

const FILTER_HELP: &str = "\
Filters (give at most one):
  --stream S     every view: fold only the events of stream S
                 (e.g. learner-ada, budget-openai, circuit-openai, benchmarks)
  --user U       mastery, algo_runs, spend: keep user U's rows
                 (spend: U's costs and sessions; provider rows are left out)
  --provider P   spend, provider_health, benchmarks, routing: keep provider P's rows
                 (spend: users and sessions span providers and are left out)
A filter a view does not have is an error. Without a filter the JSON is
byte-identical to GET /api/v1/views/{name} at the same next_position; with one the
document also carries \"filter\".";

/// `tutorlog replay`.
#[derive(Debug, Args)]
#[command(after_long_help = FILTER_HELP)]
pub struct ReplayArgs {
    /// Data directory of the daemon (read-only; works while `serve` runs).
    #[arg(long, env = "TUTORLOG_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// The view: stream_stats, mastery, algo_runs, spend, provider_health,
    /// benchmarks or routing.
    #[arg(long)]
    pub view: String,
    /// Fold events up to this log position (inclusive) or RFC 3339 time; default: all.
    #[arg(long)]
    pub until: Option<String>,
    /// Fold only this stream's events (every view).
    #[arg(long)]
    pub stream: Option<String>,
    /// Keep only this user's rows (mastery, algo_runs, spend).
    #[arg(long)]
    pub user: Option<String>,
    /// Keep only this provider's rows (spend, provider_health, benchmarks, routing).
    #[arg(long)]
    pub provider: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
    pub format: OutputFormat,
    /// Log backend.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// How `replay` prints the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// The daemon's JSON document, on one line.
    Json,
    /// Aligned tables for people.
    Table,
}

/// The one filter a replay applies.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Filter {
    /// Fold only this stream.
    Stream(String),
    /// Narrow the folded view.
    Narrow(ViewFilter),
}

/// Parses `--until`: a position (digits) or an RFC 3339 time.
pub fn parse_until(text: &str) -> anyhow::Result<Until> {
    if let Ok(position) = text.parse::<u64>() {
        return Ok(Until::Position(position));
    }
    let time = DateTime::parse_from_rfc3339(text).with_context(|| {
        format!("--until {text:?}: neither a log position nor an RFC 3339 time")
    })?;
    Ok(Until::Time(time.with_timezone(&Utc)))
}

/// The filters each view accepts; `None` for an unknown view.
pub fn view_filters(view: &str) -> Option<&'static [FilterKind]> {
    Some(match view {
        StreamStats::NAME => StreamStats::FILTERS,
        Mastery::NAME => Mastery::FILTERS,
        AlgoRuns::NAME => AlgoRuns::FILTERS,
        Spend::NAME => Spend::FILTERS,
        ProviderHealth::NAME => ProviderHealth::FILTERS,
        Benchmarks::NAME => Benchmarks::FILTERS,
        Routing::NAME => Routing::FILTERS,
        _ => return None,
    })
}

fn parse_filter(args: &ReplayArgs) -> anyhow::Result<Option<Filter>> {
    let mut given = Vec::new();
    if let Some(stream) = &args.stream {
        given.push(Filter::Stream(stream.clone()));
    }
    if let Some(user) = &args.user {
        given.push(Filter::Narrow(ViewFilter::User(user.clone())));
    }
    if let Some(provider) = &args.provider {
        given.push(Filter::Narrow(ViewFilter::Provider(provider.clone())));
    }
    if given.len() > 1 {
        bail!("--stream, --user and --provider are alternatives: give at most one");
    }
    Ok(given.pop())
}

/// Refuses an unknown view, or a filter the view does not have, before the log is
/// opened.
fn check_view(view: &str, filter: Option<&Filter>) -> anyhow::Result<()> {
    let Some(accepted) = view_filters(view) else {
        bail!(
            "--view {view:?}: unknown view; known: {}",
            VIEW_NAMES.join(", ")
        );
    };
    let Some(Filter::Narrow(narrow)) = filter else {
        return Ok(());
    };
    let kind = narrow.kind();
    if accepted.contains(&kind) {
        return Ok(());
    }
    let applies_to: Vec<&str> = VIEW_NAMES
        .iter()
        .copied()
        .filter(|name| view_filters(name).is_some_and(|kinds| kinds.contains(&kind)))
        .collect();
    bail!(
        "{} does not apply to view {view} (it applies to {}; --stream applies to every view)",
        kind.flag(),
        applies_to.join(", ")
    )
}

/// Prints the view on stdout.
pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let until = match &args.until {
        Some(text) => parse_until(text)?,
        None => Until::Position(u64::MAX),
    };
    let filter = parse_filter(args)?;
    check_view(&args.view, filter.as_ref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let request = Request {
        args,
        until,
        filter: filter.as_ref(),
    };
    let output = runtime.block_on(async {
        match args.view.as_str() {
            StreamStats::NAME => request.render(StreamStats::new()).await,
            Mastery::NAME => request.render(Mastery::new()).await,
            AlgoRuns::NAME => request.render(AlgoRuns::new()).await,
            Spend::NAME => request.render(Spend::new()).await,
            ProviderHealth::NAME => request.render(ProviderHealth::new()).await,
            Benchmarks::NAME => request.render(Benchmarks::new()).await,
            Routing::NAME => request.render(Routing::new()).await,
            other => bail!("--view {other:?}: unknown view"),
        }
    })?;
    println!("{output}");
    Ok(())
}

/// One replay's parameters.
struct Request<'a> {
    args: &'a ReplayArgs,
    until: Until,
    filter: Option<&'a Filter>,
}

impl Request<'_> {
    /// Folds `projection` as asked and renders it in the asked format.
    async fn render<P: Narrow + TableView>(&self, projection: P) -> anyhow::Result<String> {
        let handle = backend::open_reader(&self.args.store.config(), &self.args.data_dir).await?;
        let stream = match self.filter {
            Some(Filter::Stream(stream)) => Some(stream.as_str()),
            _ => None,
        };
        let mut bar = ProgressReport::new();
        let replayed = replay_filtered_with_progress(
            handle.store.as_ref(),
            projection,
            self.until,
            |event| stream.is_none_or(|stream| event.stream == stream),
            |progress| bar.update(progress),
        )
        .await
        .with_context(|| format!("replaying {}", P::NAME));
        bar.finish();
        handle.close();
        let replayed = replayed?;
        let projection = match self.filter {
            Some(Filter::Narrow(narrow)) => replayed.projection.narrowed(narrow),
            _ => replayed.projection,
        };
        match self.args.format {
            OutputFormat::Json => {
                let document = self.document(&projection, replayed.next_position)?;
                Ok(serde_json::to_string(&document)?)
            }
            OutputFormat::Table => Ok(crate::commands::table::render(
                &projection,
                replayed.next_position,
            )),
        }
    }

    /// The daemon's document, plus `"filter"` when one was applied.
    fn document<P: Projection>(&self, projection: &P, next_position: u64) -> anyhow::Result<Value> {
        let mut document = view_document(projection, next_position)?;
        let filter = match self.filter {
            None => return Ok(document),
            Some(Filter::Stream(stream)) => serde_json::json!({ "stream": stream }),
            Some(Filter::Narrow(ViewFilter::User(user))) => serde_json::json!({ "user": user }),
            Some(Filter::Narrow(ViewFilter::Provider(provider))) => {
                serde_json::json!({ "provider": provider })
            }
        };
        if let Some(object) = document.as_object_mut() {
            object.insert("filter".to_owned(), filter);
        }
        Ok(document)
    }
}

/// A progress bar on stderr, drawn only for long replays (past
/// [`PROGRESS_AFTER`]) when stderr is a terminal (never in pipes, logs or tests).
struct ProgressReport {
    enabled: bool,
    started: Instant,
    bar: Option<ProgressBar>,
}

impl ProgressReport {
    fn new() -> Self {
        ProgressReport {
            enabled: std::io::stderr().is_terminal(),
            started: Instant::now(),
            bar: None,
        }
    }

    fn update(&mut self, progress: ReplayProgress) {
        let long = self.started.elapsed() >= PROGRESS_AFTER;
        if !self.enabled || (self.bar.is_none() && !long) {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(
                Some(progress.end_position),
                ProgressDrawTarget::stderr(),
            );
            // The template is a constant; a bad one would only lose the styling.
            if let Ok(style) = ProgressStyle::with_template(PROGRESS_TEMPLATE) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        bar.set_position(progress.next_position);
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(view: &str) -> ReplayArgs {
        ReplayArgs {
            data_dir: PathBuf::from("/nonexistent"),
            view: view.into(),
            until: None,
            stream: None,
            user: None,
            provider: None,
            format: OutputFormat::Json,
            store: StoreArgs::default(),
        }
    }

    #[test]
    fn filters_are_checked_against_the_view() {
        for view in VIEW_NAMES {
            assert!(view_filters(view).is_some(), "{view}");
            let stream = Filter::Stream("s".into());
            assert!(check_view(view, Some(&stream)).is_ok());
        }
        let user = Filter::Narrow(ViewFilter::User("ada".into()));
        let provider = Filter::Narrow(ViewFilter::Provider("openai".into()));
        for view in ["mastery", "algo_runs", "spend"] {
            assert!(check_view(view, Some(&user)).is_ok(), "{view}");
        }
        for view in ["spend", "provider_health", "benchmarks", "routing"] {
            assert!(check_view(view, Some(&provider)).is_ok(), "{view}");
        }
        let error = check_view("stream_stats", Some(&user)).expect_err("refused");
        assert_eq!(
            error.to_string(),
            "--user does not apply to view stream_stats (it applies to mastery, algo_runs, spend; --stream applies to every view)"
        );
        assert!(check_view("mastery", Some(&provider)).is_err());
        assert!(check_view("routing", Some(&user)).is_err());
        let error = check_view("nope", None).expect_err("unknown");
        assert!(error.to_string().contains("unknown view"), "{error}");
    }

    #[test]
    fn at_most_one_filter() {
        let mut both = args("spend");
        both.user = Some("ada".into());
        both.provider = Some("openai".into());
        assert!(parse_filter(&both).is_err());
        let mut one = args("spend");
        one.stream = Some("budget-openai".into());
        assert_eq!(
            parse_filter(&one).expect("one"),
            Some(Filter::Stream("budget-openai".into()))
        );
        assert_eq!(parse_filter(&args("spend")).expect("none"), None);
    }

    #[test]
    fn the_progress_template_parses() {
        assert!(ProgressStyle::with_template(PROGRESS_TEMPLATE).is_ok());
    }

    #[test]
    fn until_is_a_position_or_a_time() {
        assert_eq!(parse_until("42").expect("position"), Until::Position(42));
        assert!(matches!(
            parse_until("2027-01-15T08:00:00Z").expect("time"),
            Until::Time(_)
        ));
        assert!(parse_until("yesterday").is_err());
    }
}
