//! `tutorlog replay --format table`: every view as aligned text tables for people.
//! Money is printed in USD with all six micro-dollar digits (exact), latencies in
//! milliseconds, times in RFC 3339 to the second.

use chrono::{DateTime, SecondsFormat, Utc};
use tutorlog_projections::{
    AlgoRuns, Benchmarks, Mastery, Projection, ProviderHealth, Routing, Spend, StreamStats,
};

/// A titled table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Shown above the table.
    pub title: String,
    /// Column headers.
    pub headers: Vec<&'static str>,
    /// Cells, one `Vec` per row, as many as `headers`.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    fn new(title: impl Into<String>, headers: Vec<&'static str>) -> Self {
        Table {
            title: title.into(),
            headers,
            rows: Vec::new(),
        }
    }

    /// The table as text: a title line, headers, and rows padded to each column's
    /// widest cell; "(none)" for a table without rows.
    pub fn render(&self, out: &mut String) {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        out.push_str(&self.title);
        out.push('\n');
        let header: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
        line(out, &header, &widths);
        if self.rows.is_empty() {
            out.push_str("(none)\n");
        }
        for row in &self.rows {
            line(out, row, &widths);
        }
    }
}

fn line(out: &mut String, cells: &[String], widths: &[usize]) {
    let padded: Vec<String> = cells
        .iter()
        .zip(widths)
        .map(|(cell, width)| format!("{cell:<width$}"))
        .collect();
    out.push_str(padded.join("  ").trim_end());
    out.push('\n');
}

/// A view that can print itself as tables.
pub trait TableView: Projection {
    /// The view's tables.
    fn tables(&self) -> Vec<Table>;
}

/// Every table of `projection`, after a line naming the view and its position.
pub fn render<P: TableView>(projection: &P, next_position: u64) -> String {
    let mut out = format!(
        "{} as of next_position {next_position} (events 0..{next_position})\n",
        P::NAME
    );
    for table in projection.tables() {
        out.push('\n');
        table.render(&mut out);
    }
    out.trim_end().to_owned()
}

/// Micro-USD as exact USD.
pub fn usd(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

fn ms(micros: f64) -> String {
    format!("{:.1}", micros / 1_000.0)
}

fn optional<T>(value: Option<T>, show: impl FnOnce(T) -> String) -> String {
    value.map_or_else(|| "-".to_owned(), show)
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn percent(rate: f64) -> String {
    format!("{:.1}", rate * 100.0)
}

impl TableView for StreamStats {
    fn tables(&self) -> Vec<Table> {
        let model = self.model();
        let mut summary = Table::new(
            "log",
            vec![
                "EVENTS",
                "STREAMS",
                "UNKNOWN TYPE",
                "LAST POSITION",
                "LAST RECORDED",
            ],
        );
        summary.rows.push(vec![
            model.events_total.to_string(),
            model.stream_count.to_string(),
            model.events_of_unknown_type.to_string(),
            optional(model.last_position, |p| p.to_string()),
            optional(model.last_recorded_at, time),
        ]);
        let mut types = Table::new("events by type", vec!["EVENT TYPE", "COUNT"]);
        types.rows = model
            .events_by_type
            .iter()
            .map(|(name, count)| vec![name.clone(), count.to_string()])
            .collect();
        vec![summary, types]
    }
}

impl TableView for Mastery {
    fn tables(&self) -> Vec<Table> {
        let model = self.model();
        let mut rows = Table::new(
            "mastery per learner × focus area",
            vec![
                "USER",
                "FOCUS AREA",
                "MASTERY",
                "P(KNOWN)",
                "ATTEMPTS",
                "CORRECT",
                "STREAK",
                "SESSIONS",
                "LAST PRACTISED",
                "REVIEW DUE",
            ],
        );
        for (user, areas) in &model.learners {
            for (area, row) in areas.iter() {
                rows.rows.push(vec![
                    user.clone(),
                    area.clone(),
                    format!("{:.1}", row.mastery),
                    format!("{:.3}", row.probability),
                    row.attempts.to_string(),
                    row.correct.to_string(),
                    row.streak.to_string(),
                    format!("{}/{}", row.sessions_completed, row.sessions_started),
                    optional(row.last_practised, time),
                    optional(row.next_review_due, time),
                ]);
            }
        }
        let mut challenges = Table::new(
            "challenges per learner",
            vec!["USER", "STARTED", "COMPLETED", "MEAN SCORE"],
        );
        challenges.rows = model
            .challenges
            .iter()
            .map(|(user, stats)| {
                let mean = (stats.completed > 0)
                    .then(|| stats.score_total as f64 / stats.completed as f64);
                vec![
                    user.clone(),
                    stats.started.to_string(),
                    stats.completed.to_string(),
                    optional(mean, |m| format!("{m:.1}")),
                ]
            })
            .collect();
        vec![rows, challenges]
    }
}

impl TableView for AlgoRuns {
    fn tables(&self) -> Vec<Table> {
        let model = self.model();
        let mut runs = Table::new(
            format!(
                "algorithm runs, newest first ({} recorded)",
                model.runs_total
            ),
            vec![
                "RUN", "KEY", "VERSION", "USER", "TRIGGER", "STATUS", "STARTED", "FINISHED",
                "ERROR",
            ],
        );
        runs.rows = model
            .runs
            .values()
            .rev()
            .map(|run| {
                vec![
                    run.run_id.to_string(),
                    run.key.clone(),
                    run.version.to_string(),
                    run.user_id.clone().unwrap_or_else(|| "-".into()),
                    run.trigger.clone(),
                    run.status.clone(),
                    time(run.started_at),
                    optional(run.completed_at, time),
                    run.error.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        vec![runs]
    }
}

impl TableView for Spend {
    fn tables(&self) -> Vec<Table> {
        let model = self.model();
        let mut periods = Table::new(
            "spend per provider × month (USD)",
            vec![
                "PROVIDER",
                "PERIOD",
                "LIMIT",
                "RESERVED",
                "COMMITTED",
                "REMAINING",
                "USED %",
                "RESERVATIONS",
                "COMMITS",
                "RELEASES",
                "EXCEEDED",
            ],
        );
        let mut models = Table::new(
            "committed per model (USD)",
            vec!["PROVIDER", "PERIOD", "MODEL", "COMMITTED", "REQUESTS"],
        );
        for (provider, row) in &model.providers {
            for (period, figures) in &row.periods {
                periods.rows.push(vec![
                    provider.clone(),
                    period.clone(),
                    if figures.free {
                        "free".into()
                    } else {
                        usd(figures.limit_micros)
                    },
                    usd(figures.reserved_micros),
                    usd(figures.committed_micros),
                    usd(figures.remaining_micros),
                    optional(figures.percent_used, |p| format!("{p:.2}")),
                    figures.counts.reservations.to_string(),
                    figures.counts.commits.to_string(),
                    figures.counts.releases.to_string(),
                    figures.counts.exceeded.to_string(),
                ]);
                for (name, cost) in &figures.models {
                    models.rows.push(vec![
                        provider.clone(),
                        period.clone(),
                        name.clone(),
                        usd(cost.committed_micros),
                        cost.requests.to_string(),
                    ]);
                }
            }
        }
        let mut users = Table::new(
            "committed per user (USD)",
            vec!["USER", "PERIOD", "COMMITTED", "REQUESTS"],
        );
        for (user, spend) in &model.users {
            users.rows.push(vec![
                user.clone(),
                "all".into(),
                usd(spend.committed_micros),
                spend.requests.to_string(),
            ]);
            for (period, cost) in &spend.periods {
                users.rows.push(vec![
                    user.clone(),
                    period.clone(),
                    usd(cost.committed_micros),
                    cost.requests.to_string(),
                ]);
            }
        }
        let mut sessions = Table::new(
            "committed per session (USD)",
            vec!["SESSION", "USER", "COMMITTED", "REQUESTS"],
        );
        sessions.rows = model
            .sessions
            .iter()
            .map(|(id, session)| {
                vec![
                    id.clone(),
                    session.user_id.clone().unwrap_or_else(|| "-".into()),
                    usd(session.committed_micros),
                    session.requests.to_string(),
                ]
            })
            .collect();
        vec![periods, models, users, sessions]
    }
}

impl TableView for ProviderHealth {
    fn tables(&self) -> Vec<Table> {
        let mut table = Table::new(
            "provider health (error rate over the last 100 calls, latency over the last 1,000 successes)",
            vec!["PROVIDER", "STATE", "SINCE", "CALLS", "FAILURES", "ERROR %", "P50 MS", "P99 MS", "LAST FAILURE"],
        );
        for name in self.model().providers.keys() {
            let Some(view) = self.provider(name) else {
                continue;
            };
            let state = serde_json::to_value(view.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            table.rows.push(vec![
                name.clone(),
                state,
                optional(view.since, time),
                view.calls.to_string(),
                view.failures.to_string(),
                optional(view.error_rate, percent),
                optional(view.latency_p50_micros, |l| ms(l as f64)),
                optional(view.latency_p99_micros, |l| ms(l as f64)),
                optional(view.last_failure, |f| {
                    format!("{} {} {}", time(f.at), f.kind.as_str(), f.message)
                }),
            ]);
        }
        vec![table]
    }
}

impl TableView for Benchmarks {
    fn tables(&self) -> Vec<Table> {
        let mut latest = Table::new(
            "latest benchmark per provider × category",
            vec![
                "CATEGORY",
                "PROVIDER",
                "MODEL",
                "TESTS",
                "SUCCESS %",
                "QUALITY",
                "LATENCY MS",
                "COST USD",
                "RUN",
                "DONE",
                "RECORDED",
            ],
        );
        // No age limit: a replay shows everything as of its bound.
        let everything = self.latest(None, chrono::TimeDelta::MAX, DateTime::<Utc>::MIN_UTC);
        latest.rows = everything
            .into_iter()
            .map(|row| {
                vec![
                    row.category,
                    row.provider,
                    row.model,
                    row.tests.to_string(),
                    percent(row.success_rate),
                    format!("{:.1}", row.mean_quality),
                    ms(row.mean_latency_micros),
                    usd(row.cost_micros),
                    row.run_id.to_string(),
                    if row.run_completed {
                        "yes".into()
                    } else {
                        "no".into()
                    },
                    time(row.recorded_at),
                ]
            })
            .collect();
        let mut runs = Table::new(
            "benchmark runs, oldest first",
            vec![
                "RUN",
                "STATUS",
                "TRIGGER",
                "RESULTS",
                "FAILURES",
                "COST USD",
                "SCHEDULED",
                "COMPLETED",
            ],
        );
        runs.rows = self
            .runs()
            .iter()
            .map(|run| {
                let status = serde_json::to_value(run.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                vec![
                    run.run_id.to_string(),
                    status,
                    run.trigger.clone().unwrap_or_else(|| "-".into()),
                    run.results.to_string(),
                    run.failures.to_string(),
                    usd(run.cost_micros),
                    optional(run.scheduled_at, time),
                    optional(run.completed_at, time),
                ]
            })
            .collect();
        vec![latest, runs]
    }
}

impl TableView for Routing {
    fn tables(&self) -> Vec<Table> {
        let model = self.model();
        let mut table = Table::new(
            format!(
                "routing performance per day ({} executions, {} feedback, {} unmatched)",
                model.executions_total, model.feedback_total, model.feedback_unmatched
            ),
            vec![
                "DAY",
                "PROVIDER",
                "MODEL",
                "CATEGORY",
                "REQUESTS",
                "SUCCESS %",
                "QUALITY",
                "MEAN MS",
                "MAX MS",
                "ESTIMATE USD",
                "ACTUAL USD",
                "RATIO",
                "FEEDBACK",
            ],
        );
        for (provider, models) in &model.providers {
            for (name, categories) in models {
                for (category, days) in categories {
                    for (day, row) in days {
                        let view = row.view();
                        table.rows.push(vec![
                            day.clone(),
                            provider.clone(),
                            name.clone(),
                            category.clone(),
                            row.requests.to_string(),
                            percent(view.success_rate),
                            optional(view.mean_quality, |q| format!("{q:.1}")),
                            ms(view.mean_latency_micros),
                            ms(row.duration_max_micros as f64),
                            usd(row.cost_estimate_micros),
                            usd(row.cost_actual_micros),
                            optional(view.cost_ratio, |r| format!("{r:.3}")),
                            row.feedback.to_string(),
                        ]);
                    }
                }
            }
        }
        table.rows.sort();
        vec![table]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_exact_and_tables_align() {
        assert_eq!(usd(0), "0.000000");
        assert_eq!(usd(1_234_567), "1.234567");
        let mut table = Table::new("t", vec!["A", "LONG HEADER"]);
        table.rows.push(vec!["wide cell".into(), "1".into()]);
        let mut out = String::new();
        table.render(&mut out);
        assert_eq!(out, "t\nA          LONG HEADER\nwide cell  1\n");
        let mut out = String::new();
        Table::new("empty", vec!["A"]).render(&mut out);
        assert_eq!(out, "empty\nA\n(none)\n");
    }
}
