//! The run's report: a JSON document (`--json FILE`) and the same as a table.

use std::{collections::BTreeMap, fmt::Write as _, path::PathBuf};

use serde::Serialize;

use super::stats::{Endpoint, ErrorSample, LearningCounters, Percentiles, Scenario, Stats, Status};

/// How the run was driven.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    /// Base URL.
    pub target: String,
    /// `open` (fixed arrival rate) or `closed` (clients waiting for answers).
    pub mode: &'static str,
    /// `--rate`, requests per second (open loop).
    pub rate: Option<f64>,
    /// Clients (closed loop) or most requests in flight (open loop).
    pub concurrency: u32,
    /// Learners.
    pub learners: u32,
    /// `--mix` weights.
    pub mix: MixReport,
    /// `--seed`.
    pub seed: u64,
    /// Warm-up, seconds (not measured).
    pub warmup_secs: f64,
    /// Measured window, seconds (shorter than `--duration` if stopped early).
    pub duration_secs: f64,
    /// Whether the run stopped before `--duration` (Ctrl-C, `--sessions`, a
    /// record-file error).
    pub stopped_early: bool,
    /// Requests due in the measured window (open loop).
    pub scheduled_requests: Option<u64>,
}

/// `--mix`, by scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MixReport {
    /// Training weight.
    pub training: u32,
    /// Challenges weight.
    pub challenges: u32,
    /// Chat weight.
    pub chat: u32,
}

impl MixReport {
    /// The weights in `--mix` order.
    pub fn weights(&self) -> [u32; 3] {
        [self.training, self.challenges, self.chat]
    }
}

/// Totals over every endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Totals {
    /// Requests measured.
    pub requests: u64,
    /// Per second of the measured window.
    pub requests_per_sec: f64,
    /// Answered 2xx with a good body.
    pub ok: u64,
    /// Everything else.
    pub failed: u64,
    /// 5xx answers.
    pub server_errors: u64,
    /// Requests due during the warm-up.
    pub warmup_requests: u64,
    /// Measured requests that waited for a free learner (raise `--learners`).
    pub learner_waits: u64,
}

/// One scenario's throughput.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioReport {
    /// `training`, `challenges` or `chat`.
    pub scenario: Scenario,
    /// Requests measured.
    pub requests: u64,
    /// Per second.
    pub requests_per_sec: f64,
    /// 2xx.
    pub ok: u64,
    /// Not 2xx.
    pub failed: u64,
    /// Set when every request failed: the first failure, e.g. `503: {"error": ...}`.
    pub unavailable: Option<String>,
}

/// One endpoint's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointReport {
    /// e.g. `POST /api/v1/training/round`.
    pub endpoint: &'static str,
    /// Requests measured.
    pub requests: u64,
    /// Per second.
    pub requests_per_sec: f64,
    /// Latency, from the due time in open loop, from the send in closed loop.
    pub latency: Percentiles,
    /// Requests by outcome: `"200"`, `"503"`, `"connect_error"`, `"timeout"`, ...
    pub statuses: BTreeMap<String, u64>,
    /// The first few failures.
    pub errors: Vec<ErrorSample>,
}

/// The learning outcomes, plus derived shares.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LearningReport {
    /// The raw counters.
    #[serde(flatten)]
    pub counters: LearningCounters,
    /// Mean round score, 0–100.
    pub round_score_mean: f64,
    /// Sessions still open when the run ended.
    pub sessions_open_at_end: u64,
}

/// `--record`'s outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordReport {
    /// The file.
    pub file: PathBuf,
    /// Lines appended in this run.
    pub lines: u64,
}

/// Everything `tutorlog load` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// How the run was driven.
    pub run: RunInfo,
    /// Totals.
    pub total: Totals,
    /// Per scenario.
    pub scenarios: Vec<ScenarioReport>,
    /// Per endpoint.
    pub endpoints: Vec<EndpointReport>,
    /// Learning outcomes.
    pub learning: LearningReport,
    /// How late requests were sent after their due time (open loop only).
    pub send_lag: Option<Percentiles>,
    /// Highest log position in any 2xx write answer.
    pub position_max: Option<u64>,
    /// `--record`.
    pub record: Option<RecordReport>,
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

impl Report {
    /// Builds the report from the measurements.
    pub fn new(
        run: RunInfo,
        stats: &Stats,
        sessions_open_at_end: u64,
        record: Option<RecordReport>,
    ) -> Report {
        let seconds = run.duration_secs;
        let endpoints: Vec<EndpointReport> = Endpoint::ALL
            .iter()
            .filter_map(|e| stats.endpoint(*e).map(|s| (*e, s)))
            .map(|(endpoint, s)| EndpointReport {
                endpoint: endpoint.label(),
                requests: s.latency.count(),
                requests_per_sec: per_second(s.latency.count(), seconds),
                latency: s.latency.percentiles(),
                statuses: s.statuses.iter().map(|(k, v)| (k.key(), *v)).collect(),
                errors: s.samples.clone(),
            })
            .collect();
        let scenarios: Vec<ScenarioReport> = Scenario::ALL
            .iter()
            .zip(run.mix.weights())
            .filter(|(_, weight)| *weight > 0)
            .map(|(scenario, _)| scenario_report(*scenario, stats, seconds))
            .collect();
        let count = |pick: fn(Status) -> bool| -> u64 {
            Endpoint::ALL
                .iter()
                .filter(|e| !e.is_derived())
                .filter_map(|e| stats.endpoint(*e))
                .flat_map(|s| s.statuses.iter())
                .filter(|(status, _)| pick(**status))
                .map(|(_, n)| n)
                .sum()
        };
        let requests = stats.requests();
        let learning = stats.learning;
        Report {
            total: Totals {
                requests,
                requests_per_sec: per_second(requests, seconds),
                ok: count(Status::is_success),
                failed: count(|s| !s.is_success()),
                server_errors: count(Status::is_server_error),
                warmup_requests: stats.warmup_requests,
                learner_waits: stats.learner_waits,
            },
            send_lag: (run.mode == "open").then(|| stats.send_lag.percentiles()),
            run,
            scenarios,
            endpoints,
            learning: LearningReport {
                counters: learning,
                round_score_mean: if learning.rounds > 0 {
                    learning.round_score_sum as f64 / learning.rounds as f64
                } else {
                    0.0
                },
                sessions_open_at_end,
            },
            position_max: stats.position_max,
            record,
        }
    }

    /// The human-readable table.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_header(&mut out);
        self.render_scenarios(&mut out);
        self.render_endpoints(&mut out);
        self.render_learning(&mut out);
        self.render_errors(&mut out);
        out
    }

    fn render_header(&self, out: &mut String) {
        let run = &self.run;
        let mix: Vec<String> = run.mix.weights().iter().map(u32::to_string).collect();
        let mode = match run.rate {
            Some(rate) => format!(
                "open loop at {rate} req/s (at most {} in flight)",
                run.concurrency
            ),
            None => format!("closed loop, {} clients", run.concurrency),
        };
        line(
            out,
            format_args!(
                "tutorlog load: {}, {mode}, {} learners, mix {} (training:challenges:chat), seed {}",
                run.target,
                run.learners,
                mix.join(":"),
                run.seed
            ),
        );
        let stopped = if run.stopped_early {
            " (stopped early)"
        } else {
            ""
        };
        line(
            out,
            format_args!(
                "measured {:.1} s{stopped} after a {:.1} s warm-up ({} warm-up requests not counted)",
                run.duration_secs, run.warmup_secs, self.total.warmup_requests
            ),
        );
        if let (Some(scheduled), Some(lag)) = (run.scheduled_requests, &self.send_lag) {
            line(
                out,
                format_args!(
                    "open loop: {scheduled} requests due in the window; send lag behind the due time p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                    lag.p50_ms, lag.p99_ms, lag.max_ms
                ),
            );
        }
        if self.total.learner_waits > 0 {
            line(
                out,
                format_args!(
                    "warning: {} requests waited for a free learner, and their latency includes the wait; raise --learners",
                    self.total.learner_waits
                ),
            );
        }
        out.push('\n');
    }

    fn render_scenarios(&self, out: &mut String) {
        line(
            out,
            format_args!(
                "{:<12} {:>10} {:>10} {:>10} {:>8}",
                "scenario", "requests", "req/s", "ok", "failed"
            ),
        );
        for s in &self.scenarios {
            let note = s
                .unavailable
                .as_ref()
                .map(|u| format!("  UNAVAILABLE: {u}"))
                .unwrap_or_default();
            line(
                out,
                format_args!(
                    "{:<12} {:>10} {:>10.1} {:>10} {:>8}{note}",
                    s.scenario.name(),
                    s.requests,
                    s.requests_per_sec,
                    s.ok,
                    s.failed
                ),
            );
        }
        let t = &self.total;
        line(
            out,
            format_args!(
                "{:<12} {:>10} {:>10.1} {:>10} {:>8}  ({} 5xx)",
                "total", t.requests, t.requests_per_sec, t.ok, t.failed, t.server_errors
            ),
        );
        out.push('\n');
    }

    fn render_endpoints(&self, out: &mut String) {
        line(
            out,
            format_args!(
                "{:<48} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  statuses",
                "latency (ms)", "count", "req/s", "p50", "p90", "p99", "p99.9", "max"
            ),
        );
        for e in &self.endpoints {
            let statuses: Vec<String> =
                e.statuses.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            let l = &e.latency;
            line(
                out,
                format_args!(
                    "{:<48} {:>8} {:>8.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}  {}",
                    e.endpoint,
                    e.requests,
                    e.requests_per_sec,
                    l.p50_ms,
                    l.p90_ms,
                    l.p99_ms,
                    l.p999_ms,
                    l.max_ms,
                    statuses.join(" ")
                ),
            );
        }
        out.push('\n');
    }

    fn render_learning(&self, out: &mut String) {
        let c = &self.learning.counters;
        let share = |part: u64, whole: u64| {
            if whole > 0 {
                100.0 * part as f64 / whole as f64
            } else {
                0.0
            }
        };
        line(
            out,
            format_args!(
                "training: {} sessions started, {} completed, {} abandoned, {} open at the end; {} rounds, mean score {:.1}, {:.1} % graded correct ({:.1} % meant right), {} rounds reported mastery",
                c.sessions_started,
                c.sessions_completed,
                c.sessions_abandoned,
                self.learning.sessions_open_at_end,
                c.rounds,
                self.learning.round_score_mean,
                share(c.rounds_graded_correct, c.rounds),
                share(c.rounds_meant_right, c.rounds),
                c.rounds_mastered
            ),
        );
        line(
            out,
            format_args!(
                "challenges: {} started, {} graded, {:.1} % correct; chat: {} answers; unknown prompts {}, grader disagreements {}",
                c.challenges_started,
                c.challenges_graded,
                share(c.challenges_correct, c.challenges_graded),
                c.chats_completed,
                c.unknown_prompts,
                c.grader_disagreements
            ),
        );
        let position = self
            .position_max
            .map_or_else(|| "none".to_owned(), |p| p.to_string());
        let record = self
            .record
            .as_ref()
            .map(|r| format!("; recorded {} writes to {}", r.lines, r.file.display()))
            .unwrap_or_default();
        line(
            out,
            format_args!("highest log position acknowledged: {position}{record}"),
        );
    }

    fn render_errors(&self, out: &mut String) {
        let with_errors: Vec<&EndpointReport> = self
            .endpoints
            .iter()
            .filter(|e| !e.errors.is_empty())
            .collect();
        if with_errors.is_empty() {
            return;
        }
        out.push('\n');
        line(out, format_args!("error samples (first few per endpoint):"));
        for e in with_errors {
            for sample in &e.errors {
                let body = sample.body.replace('\n', " ");
                line(
                    out,
                    format_args!(
                        "  {} {} (x{}): {}",
                        e.endpoint,
                        sample.status,
                        sample.count,
                        body.trim()
                    ),
                );
            }
        }
    }
}

fn line(out: &mut String, args: std::fmt::Arguments<'_>) {
    // Writing to a String cannot fail.
    if out.write_fmt(args).is_ok() {
        out.push('\n');
    }
}

fn scenario_report(scenario: Scenario, stats: &Stats, seconds: f64) -> ScenarioReport {
    let mut requests = 0;
    let mut ok = 0;
    let mut first_failure = None;
    for endpoint in Endpoint::ALL
        .iter()
        .filter(|e| e.scenario() == scenario && !e.is_derived())
    {
        let Some(s) = stats.endpoint(*endpoint) else {
            continue;
        };
        requests += s.latency.count();
        ok += s
            .statuses
            .iter()
            .filter(|(status, _)| status.is_success())
            .map(|(_, n)| n)
            .sum::<u64>();
        if first_failure.is_none() {
            first_failure = s
                .samples
                .first()
                .map(|sample| format!("{}: {}", sample.status, sample.body.trim()));
        }
    }
    ScenarioReport {
        scenario,
        requests,
        requests_per_sec: per_second(requests, seconds),
        ok,
        failed: requests - ok,
        unavailable: if ok == 0 && requests > 0 {
            first_failure.or_else(|| Some("every request failed".into()))
        } else {
            None
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn run_info(mode: &'static str) -> RunInfo {
        RunInfo {
            target: "http://127.0.0.1:1".into(),
            mode,
            rate: (mode == "open").then_some(100.0),
            concurrency: 4,
            learners: 8,
            mix: MixReport {
                training: 1,
                challenges: 1,
                chat: 1,
            },
            seed: 3,
            warmup_secs: 0.0,
            duration_secs: 2.0,
            stopped_early: false,
            scheduled_requests: (mode == "open").then_some(200),
        }
    }

    #[test]
    fn throughput_statuses_and_an_unavailable_scenario() {
        let mut stats = Stats::default();
        for _ in 0..10 {
            stats.record(
                Endpoint::TrainingRound,
                Status::Http(200),
                Duration::from_millis(2),
            );
        }
        stats.record(
            Endpoint::TrainingStart,
            Status::Http(200),
            Duration::from_millis(4),
        );
        stats.record(
            Endpoint::ChallengeStart,
            Status::Http(500),
            Duration::from_millis(1),
        );
        stats.record(
            Endpoint::ChallengeStart,
            Status::Http(200),
            Duration::from_millis(1),
        );
        for _ in 0..4 {
            stats.record(Endpoint::Chat, Status::Http(503), Duration::from_millis(1));
        }
        stats.sample(
            Endpoint::Chat,
            Status::Http(503),
            "{\"error\":{\"code\":\"no_providers\"}}",
        );
        stats.position(Some(99));
        let report = Report::new(run_info("closed"), &stats, 2, None);
        assert_eq!(report.total.requests, 17);
        assert!((report.total.requests_per_sec - 8.5).abs() < 1e-9);
        assert_eq!(
            (
                report.total.ok,
                report.total.failed,
                report.total.server_errors
            ),
            (12, 5, 5)
        );
        let by_name: BTreeMap<&str, &ScenarioReport> = report
            .scenarios
            .iter()
            .map(|s| (s.scenario.name(), s))
            .collect();
        assert_eq!(by_name.get("training").map(|s| s.requests), Some(11));
        assert!(by_name
            .get("challenges")
            .is_some_and(|s| s.unavailable.is_none()));
        let chat = by_name.get("chat").expect("chat");
        assert!(
            chat.unavailable
                .as_deref()
                .is_some_and(|u| u.starts_with("503: ")),
            "{chat:?}"
        );
        assert!(report.send_lag.is_none());
        let json = serde_json::to_value(&report).expect("JSON");
        assert_eq!(json["position_max"], 99);
        assert_eq!(
            json["endpoints"][0]["endpoint"],
            "POST /api/v1/training/start"
        );
        assert_eq!(json["endpoints"][2]["statuses"]["500"], 1);
        assert_eq!(json["learning"]["sessions_open_at_end"], 2);
        let table = report.render();
        assert!(table.contains("UNAVAILABLE: 503"), "{table}");
        assert!(table.contains("POST /api/v1/training/round"), "{table}");
        assert!(
            table.contains("highest log position acknowledged: 99"),
            "{table}"
        );
    }

    #[test]
    fn open_loop_reports_send_lag() {
        let report = Report::new(run_info("open"), &Stats::default(), 0, None);
        assert!(report.send_lag.is_some());
        assert!(report.render().contains("200 requests due in the window"));
    }
}
