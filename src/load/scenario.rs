//! The scenarios: learners running training sessions and challenges, and chat
//! through the gateway. One call to [`Context::step`] sends one request.
//!
//! Everything runs on one thread (a current-thread runtime and a `LocalSet`), so
//! the shared state is in `RefCell`s with no locks; no borrow is ever held across
//! an `.await`.

use std::{
    borrow::Cow,
    cell::{Cell, RefCell},
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use bytes::Bytes;
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use tutorlog_actors::content::Difficulty;

use super::{
    answers::{Answer, AnswerBook, Rng, Skill},
    chat::{ChatCatalog, STREAM_SHARE},
    record::{RecordLine, Recorder},
    stats::{truncate, Endpoint, Scenario, Stats, Status, ERROR_SAMPLE_BYTES_MAX},
};

/// Failed rounds in a row (5xx, transport) after which a session is given up.
const ROUND_FAILURES_MAX: u8 = 3;
/// Chance that a new session is in the learner's favourite focus area.
const FAVOURITE_AREA_SHARE: f64 = 0.75;
/// Chance that a challenge asks for a category (the learner's favourite).
const CHALLENGE_CATEGORY_SHARE: f64 = 0.5;
/// Chance that a challenge asks for a difficulty.
const CHALLENGE_DIFFICULTY_SHARE: f64 = 0.3;
/// Longest wait for a free learner before the stop flag is checked again.
const LEARNER_WAIT_MAX: Duration = Duration::from_millis(50);
/// Streamed chat bodies kept for the end-of-stream check, bytes.
const STREAM_BODY_BYTES_MAX: usize = 256 * 1024;
/// The gateway's session-continuity header.
const SESSION_HEADER: &str = "x-tutorlog-session";
/// The gateway's request-id header.
const REQUEST_ID_HEADER: &str = "x-tutorlog-request-id";

/// One simulated learner.
#[derive(Debug)]
struct Learner {
    id: Box<str>,
    rng: Rng,
    aptitude: f32,
    /// Rounds and challenges answered, per focus area.
    practice: Box<[u16]>,
    favourite_area: u16,
}

/// A training session waiting for its next round.
#[derive(Debug)]
struct Session {
    id: Box<str>,
    prompt: Box<str>,
    area: u16,
    failures: u8,
}

/// A challenge waiting to be graded.
#[derive(Debug)]
struct Challenge {
    id: Box<str>,
    prompt: Box<str>,
    area: Option<u16>,
    failures: u8,
}

/// The next request to send.
#[derive(Debug)]
enum Job {
    StartTraining(u32),
    Round(u32, Session),
    StartChallenge(u32),
    Grade(u32, Challenge),
    Chat(u32),
}

/// Learners and where each one is: free, in a session, in a challenge, or busy
/// (a request in flight: in no queue).
#[derive(Debug)]
struct Pool {
    learners: Vec<Learner>,
    free: VecDeque<u32>,
    sessions: VecDeque<(u32, Session)>,
    challenges: VecDeque<(u32, Challenge)>,
    rng: Rng,
    /// Training starts sent or succeeded (for `--sessions`).
    sessions_reserved: u64,
    /// Sessions started and not yet completed or abandoned.
    sessions_open: u64,
    /// Sessions completed or abandoned.
    sessions_ended: u64,
}

/// The answer to a training start.
#[derive(Debug, Deserialize)]
struct StartReply<'a> {
    #[serde(borrow)]
    session_id: Cow<'a, str>,
    #[serde(borrow)]
    prompt: Cow<'a, str>,
    position: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct MasteryReply {
    #[serde(default)]
    mastered: bool,
}

/// The answer to a round.
#[derive(Debug, Deserialize)]
struct RoundReply<'a> {
    score: u64,
    correct: bool,
    mastery: MasteryReply,
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(borrow, default)]
    next_prompt: Option<Cow<'a, str>>,
    rounds_completed: Option<u32>,
    position: Option<u64>,
}

/// The answer to a challenge start.
#[derive(Debug, Deserialize)]
struct ChallengeReply<'a> {
    #[serde(borrow)]
    challenge_id: Cow<'a, str>,
    #[serde(borrow)]
    prompt: Cow<'a, str>,
    #[serde(borrow, default)]
    category: Option<Cow<'a, str>>,
    position: Option<u64>,
}

/// The answer to a challenge grade.
#[derive(Debug, Deserialize)]
struct GradeReply {
    correct: bool,
    position: Option<u64>,
}

/// Only the shape of a chat answer is checked.
#[derive(Debug, Deserialize)]
struct ChatReply {
    choices: Vec<serde::de::IgnoredAny>,
}

/// How a request ended, as far as the scenario cares.
enum Reply {
    /// 2xx: the body, and the request-id header when there is one.
    Ok(Bytes, Option<String>),
    /// Anything else: what happened and a body or message for the samples.
    Failed(Status, String),
}

/// Prebuilt URLs.
#[derive(Debug)]
struct Urls {
    training_start: String,
    training_round: String,
    challenge_start: String,
    challenge_grade: String,
    chat: String,
}

/// What the scenarios need, built once per run.
pub struct Setup {
    /// The HTTP client (keep-alive, `TCP_NODELAY`).
    pub client: reqwest::Client,
    /// Base URL without a trailing slash.
    pub target: String,
    /// Focus areas offered by the daemon.
    pub focus_areas: Vec<String>,
    /// Learners.
    pub learners: u32,
    /// `--rounds` (the daemon's default when `None`).
    pub rounds: Option<u32>,
    /// `--sessions`.
    pub sessions_max: Option<u64>,
    /// `--api-key`.
    pub api_key: String,
    /// `--model`.
    pub model: String,
    /// `--correct-share`.
    pub correct_share: f64,
    /// `--seed`.
    pub seed: u64,
    /// `--record`.
    pub recorder: Option<Recorder>,
    /// Requests due before this are warm-up.
    pub measure_from: Instant,
    /// No request is sent from then on.
    pub end: Instant,
}

/// The run's shared state.
pub struct Context {
    client: reqwest::Client,
    urls: Urls,
    book: AnswerBook,
    skill: Skill,
    chat: ChatCatalog,
    authorization: Option<HeaderValue>,
    areas_json: Vec<Box<str>>,
    area_index: HashMap<Box<str>, u16>,
    rounds: Option<u32>,
    sessions_max: Option<u64>,
    pool: RefCell<Pool>,
    stats: RefCell<Stats>,
    recorder: RefCell<Option<Recorder>>,
    record_error: RefCell<Option<std::io::Error>>,
    measure_from: Instant,
    end: Instant,
    stopping: Cell<bool>,
    stopped_at: Cell<Option<Instant>>,
    learner_freed: tokio::sync::Notify,
}

impl Context {
    /// Builds the learners, the answer book and the chat bodies.
    pub fn new(setup: Setup) -> Context {
        let skill = Skill::new(setup.correct_share);
        let areas = setup.focus_areas.len().max(1);
        let mut pool_rng = Rng::derived(setup.seed, u64::MAX);
        let learners = learners(setup.seed, setup.learners, areas, skill);
        let base = setup.target.trim_end_matches('/');
        let url = |path: &str| format!("{base}{path}");
        let authorization = HeaderValue::from_str(&format!("Bearer {}", setup.api_key)).ok();
        Context {
            client: setup.client,
            urls: Urls {
                training_start: url(Endpoint::TrainingStart.path()),
                training_round: url(Endpoint::TrainingRound.path()),
                challenge_start: url(Endpoint::ChallengeStart.path()),
                challenge_grade: url(Endpoint::ChallengeGrade.path()),
                chat: url(Endpoint::Chat.path()),
            },
            book: AnswerBook::bundled(),
            skill,
            chat: ChatCatalog::new(&setup.model),
            authorization,
            areas_json: setup
                .focus_areas
                .iter()
                .map(|a| {
                    serde_json::Value::from(a.as_str())
                        .to_string()
                        .into_boxed_str()
                })
                .collect(),
            area_index: setup
                .focus_areas
                .iter()
                .enumerate()
                .map(|(i, a)| (a.as_str().into(), i as u16))
                .collect(),
            rounds: setup.rounds,
            sessions_max: setup.sessions_max,
            pool: RefCell::new(Pool {
                free: (0..setup.learners).collect(),
                learners,
                sessions: VecDeque::new(),
                challenges: VecDeque::new(),
                rng: Rng::new(pool_rng.next_u64()),
                sessions_reserved: 0,
                sessions_open: 0,
                sessions_ended: 0,
            }),
            stats: RefCell::new(Stats::default()),
            recorder: RefCell::new(setup.recorder),
            record_error: RefCell::new(None),
            measure_from: setup.measure_from,
            end: setup.end,
            stopping: Cell::new(false),
            stopped_at: Cell::new(None),
            learner_freed: tokio::sync::Notify::new(),
        }
    }

    /// Asks every loop to stop sending.
    pub fn stop(&self) {
        if !self.stopping.replace(true) {
            self.stopped_at.set(Some(Instant::now()));
        }
        self.learner_freed.notify_waiters();
    }

    /// Whether the run was asked to stop (Ctrl-C, `--sessions` reached, the record
    /// file failed).
    pub fn stopping(&self) -> bool {
        self.stopping.get()
    }

    /// Whether `due` is past the window (nothing due then is sent).
    pub fn past_end(&self, due: Instant) -> bool {
        due >= self.end
    }

    /// When the run was asked to stop, if it was.
    pub fn stopped_at(&self) -> Option<Instant> {
        self.stopped_at.get()
    }

    /// Notes how late a due request is going out (open loop).
    pub fn note_send_lag(&self, due: Instant) {
        if self.measured(due) {
            self.stats.borrow_mut().send_lag.record(due.elapsed());
        }
    }

    /// Draws a scenario by the `--mix` weights.
    pub fn pick(&self, weights: [u32; 3]) -> Scenario {
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        let mut draw = self.pool.borrow_mut().rng.below(total.max(1));
        for (scenario, weight) in Scenario::ALL.into_iter().zip(weights) {
            if draw < u64::from(weight) {
                return scenario;
            }
            draw -= u64::from(weight);
        }
        Scenario::Training
    }

    /// Sends one request of `scenario`, due at `due`, and records it. Waits for a
    /// free learner when every one is busy (the wait counts in the latency).
    pub async fn step(&self, scenario: Scenario, due: Instant) {
        let mut waited = false;
        let job = loop {
            // A request due in the window is sent even if it waited past the end
            // (dropping it would hide the wait); only a stop, or a wait longer than
            // any answer could take, gives up.
            if self.stopping() || Instant::now() >= self.end + super::WAIT_AFTER_END_MAX {
                return;
            }
            if let Some(job) = self.take(scenario) {
                break job;
            }
            // Waiting because `--sessions` are all handed out is the end of the run
            // coming, not a shortage of learners.
            let capped = scenario == Scenario::Training && self.sessions_capped();
            if !waited && !capped {
                waited = true;
                if self.measured(due) {
                    self.stats.borrow_mut().learner_waits += 1;
                }
            }
            // Bounded so a stop or the end of the run is noticed.
            tokio::select! {
                () = self.learner_freed.notified() => {}
                () = tokio::time::sleep(LEARNER_WAIT_MAX) => {}
            }
        };
        match job {
            Job::StartTraining(learner) => self.start_training(learner, due).await,
            Job::Round(learner, session) => self.round(learner, session, due).await,
            Job::StartChallenge(learner) => self.start_challenge(learner, due).await,
            Job::Grade(learner, challenge) => self.grade(learner, challenge, due).await,
            Job::Chat(learner) => self.chat(learner, due).await,
        }
    }

    fn take(&self, scenario: Scenario) -> Option<Job> {
        let mut pool = self.pool.borrow_mut();
        match scenario {
            Scenario::Training => {
                if let Some((learner, session)) = pool.sessions.pop_front() {
                    return Some(Job::Round(learner, session));
                }
                if self
                    .sessions_max
                    .is_some_and(|max| pool.sessions_reserved >= max)
                {
                    return None;
                }
                let learner = pool.free.pop_front()?;
                pool.sessions_reserved += 1;
                Some(Job::StartTraining(learner))
            }
            Scenario::Challenges => {
                if let Some((learner, challenge)) = pool.challenges.pop_front() {
                    return Some(Job::Grade(learner, challenge));
                }
                pool.free.pop_front().map(Job::StartChallenge)
            }
            Scenario::Chat => {
                let count = pool.learners.len() as u64;
                let learner = pool.rng.below(count.max(1)) as u32;
                Some(Job::Chat(learner))
            }
        }
    }

    /// Whether every session `--sessions` allows has been handed out.
    fn sessions_capped(&self) -> bool {
        let reserved = self.pool.borrow().sessions_reserved;
        self.sessions_max.is_some_and(|max| reserved >= max)
    }

    fn release(&self, learner: u32) {
        self.pool.borrow_mut().free.push_back(learner);
        self.learner_freed.notify_one();
    }

    fn end_session(&self, learner: u32, completed: bool, due: Instant) {
        let all_ended = {
            let mut pool = self.pool.borrow_mut();
            pool.sessions_open = pool.sessions_open.saturating_sub(1);
            pool.sessions_ended += 1;
            self.sessions_max
                .is_some_and(|max| pool.sessions_ended >= max)
        };
        if all_ended {
            self.stop();
        }
        if !completed {
            self.count(due, |c| c.sessions_abandoned += 1);
        }
        self.release(learner);
    }

    /// Whether a request due at `due` is measured (not warm-up).
    fn measured(&self, due: Instant) -> bool {
        due >= self.measure_from
    }

    fn count(&self, due: Instant, update: impl FnOnce(&mut super::stats::LearningCounters)) {
        if self.measured(due) {
            update(&mut self.stats.borrow_mut().learning);
        }
    }

    /// Records a finished request's latency and outcome.
    fn finish(&self, endpoint: Endpoint, status: Status, due: Instant, detail: Option<&str>) {
        let mut stats = self.stats.borrow_mut();
        if !self.measured(due) {
            if !endpoint.is_derived() {
                stats.warmup_requests += 1;
            }
            return;
        }
        stats.record(endpoint, status, due.elapsed());
        if let Some(detail) = detail {
            stats.sample(endpoint, status, detail);
        }
    }

    /// Finishes a request that failed.
    fn failed(&self, endpoint: Endpoint, status: Status, due: Instant, body: &str) {
        self.finish(endpoint, status, due, Some(body));
    }

    /// Finishes a 2xx whose body is not what the API promises.
    fn bad_body(&self, endpoint: Endpoint, due: Instant, error: &serde_json::Error, body: &[u8]) {
        let text = String::from_utf8_lossy(body);
        let detail = format!("{error}: {}", truncate(&text, ERROR_SAMPLE_BYTES_MAX));
        self.finish(endpoint, Status::BadBody, due, Some(&detail));
    }

    /// Appends a `--record` line; a failure stops the run (its figures would lie).
    fn record(&self, line: &RecordLine<'_>, position: Option<u64>) {
        self.stats.borrow_mut().position(position);
        let mut recorder = self.recorder.borrow_mut();
        let Some(recorder) = recorder.as_mut() else {
            return;
        };
        if let Err(error) = recorder.write(line) {
            self.record_error.borrow_mut().get_or_insert(error);
            self.stop();
        }
    }

    /// Flushes the record file; a failure stops the run.
    pub fn flush_record(&self) {
        if let Some(recorder) = self.recorder.borrow_mut().as_mut() {
            if let Err(error) = recorder.flush() {
                self.record_error.borrow_mut().get_or_insert(error);
                self.stop();
            }
        }
    }

    /// The record file's first write error, and its path and line count.
    pub fn take_record_outcome(
        &self,
    ) -> (Option<std::io::Error>, Option<(std::path::PathBuf, u64)>) {
        let error = self.record_error.borrow_mut().take();
        let summary = self
            .recorder
            .borrow()
            .as_ref()
            .map(|r| (r.path().to_path_buf(), r.lines()));
        (error, summary)
    }

    /// A copy of the measurements so far.
    pub fn stats(&self) -> Stats {
        self.stats.borrow().clone()
    }

    /// Requests measured so far, and how many of them failed (for progress).
    pub fn progress(&self) -> (u64, u64) {
        let stats = self.stats.borrow();
        let mut failed = 0;
        for endpoint in Endpoint::ALL.iter().filter(|e| !e.is_derived()) {
            if let Some(e) = stats.endpoint(*endpoint) {
                failed += e
                    .statuses
                    .iter()
                    .filter(|(s, _)| !s.is_success())
                    .map(|(_, n)| n)
                    .sum::<u64>();
            }
        }
        (stats.requests(), failed)
    }

    /// Sessions started and not ended (to report).
    pub fn sessions_open(&self) -> u64 {
        self.pool.borrow().sessions_open
    }

    /// Decides right or wrong for `learner` on `prompt` and picks the answer;
    /// also says whether the prompt is in the bank.
    fn answer_for(&self, learner: u32, prompt: &str, area: Option<u16>) -> (bool, &Answer, bool) {
        let mut pool = self.pool.borrow_mut();
        let Some(l) = pool.learners.get_mut(learner as usize) else {
            unreachable!("learner {learner} out of range");
        };
        let slot = area.and_then(|a| l.practice.get_mut(a as usize));
        let practice = slot.as_deref().copied().unwrap_or(0);
        if let Some(slot) = slot {
            *slot = slot.saturating_add(1);
        }
        let item = self.book.find(prompt);
        let difficulty = item.map_or(Difficulty::Medium, |i| i.difficulty);
        let right = l
            .rng
            .chance(self.skill.p_right(l.aptitude, practice, difficulty));
        match item {
            Some(item) => (right, item.pick(right, &mut l.rng), true),
            None => (right, self.book.unknown(), false),
        }
    }

    fn learner_id(&self, learner: u32) -> Box<str> {
        self.pool
            .borrow()
            .learners
            .get(learner as usize)
            .map_or_else(|| "".into(), |l| l.id.clone())
    }

    /// A JSON POST with extra headers.
    fn request(
        &self,
        url: &str,
        body: impl Into<reqwest::Body>,
        headers: &[(HeaderName, HeaderValue)],
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body);
        for (name, value) in headers {
            request = request.header(name.clone(), value.clone());
        }
        request
    }

    /// POSTs a prebuilt body.
    async fn post(
        &self,
        url: &str,
        body: impl Into<reqwest::Body>,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Reply {
        match self.request(url, body, headers).send().await {
            Err(error) => Reply::Failed(transport_status(&error), error_chain(&error)),
            Ok(response) => {
                let status = response.status();
                let request_id = response
                    .headers()
                    .get(REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match response.bytes().await {
                    Err(error) => Reply::Failed(transport_status(&error), error_chain(&error)),
                    Ok(body) if status.is_success() => Reply::Ok(body, request_id),
                    Ok(body) => Reply::Failed(
                        Status::Http(status.as_u16()),
                        String::from_utf8_lossy(&body).into_owned(),
                    ),
                }
            }
        }
    }

    /// Reads a streamed body to its end, timing the first chunk; keeps at most
    /// [`STREAM_BODY_BYTES_MAX`] bytes of it.
    async fn read_stream(
        &self,
        response: &mut reqwest::Response,
        due: Instant,
    ) -> Result<Vec<u8>, reqwest::Error> {
        let mut seen = Vec::new();
        let mut first = true;
        while let Some(chunk) = response.chunk().await? {
            if first {
                self.finish(Endpoint::ChatStreamFirstChunk, Status::Http(200), due, None);
                first = false;
            }
            let room = STREAM_BODY_BYTES_MAX.saturating_sub(seen.len());
            seen.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        }
        Ok(seen)
    }

    async fn start_training(&self, learner: u32, due: Instant) {
        let (id, area, body) = {
            let mut pool = self.pool.borrow_mut();
            let areas = self.areas_json.len().max(1) as u64;
            let Some(l) = pool.learners.get_mut(learner as usize) else {
                unreachable!("learner {learner} out of range");
            };
            let area = if l.rng.chance(FAVOURITE_AREA_SHARE) {
                l.favourite_area
            } else {
                l.rng.below(areas) as u16
            };
            let area_json = self.areas_json.get(area as usize).map_or("\"\"", |a| &**a);
            let rounds = self
                .rounds
                .map(|r| format!(",\"rounds\":{r}"))
                .unwrap_or_default();
            let body = format!(
                "{{\"user_id\":\"{}\",\"focus_area\":{area_json}{rounds}}}",
                l.id
            );
            (l.id.clone(), area, body)
        };
        let endpoint = Endpoint::TrainingStart;
        let reply = self.post(&self.urls.training_start, body, &[]).await;
        let unreserve = || {
            self.pool.borrow_mut().sessions_reserved -= 1;
            self.release(learner);
        };
        let body = match reply {
            Reply::Ok(body, _) => body,
            Reply::Failed(status, text) => {
                self.failed(endpoint, status, due, &text);
                return unreserve();
            }
        };
        let started: StartReply = match serde_json::from_slice(&body) {
            Ok(started) => started,
            Err(error) => {
                self.bad_body(endpoint, due, &error, &body);
                return unreserve();
            }
        };
        self.finish(endpoint, Status::Http(200), due, None);
        self.count(due, |c| c.sessions_started += 1);
        let mut line = RecordLine::new(endpoint.path(), 200, &id);
        line.position = started.position;
        line.session_id = Some(&started.session_id);
        self.record(&line, started.position);
        let session = Session {
            id: started.session_id.as_ref().into(),
            prompt: started.prompt.as_ref().into(),
            area,
            failures: 0,
        };
        let mut pool = self.pool.borrow_mut();
        pool.sessions_open += 1;
        pool.sessions.push_back((learner, session));
    }

    async fn round(&self, learner: u32, mut session: Session, due: Instant) {
        let (right, answer, known) = self.answer_for(learner, &session.prompt, Some(session.area));
        let body = format!(
            "{{\"session_id\":\"{}\",\"response\":{}}}",
            session.id, answer.json
        );
        let endpoint = Endpoint::TrainingRound;
        let body = match self.post(&self.urls.training_round, body, &[]).await {
            Reply::Ok(body, _) => body,
            Reply::Failed(status, text) => {
                self.failed(endpoint, status, due, &text);
                session.failures += 1;
                // A 4xx (unknown, expired or paused session) will not get better.
                let hopeless = matches!(status, Status::Http(code) if code < 500)
                    || session.failures >= ROUND_FAILURES_MAX;
                if hopeless {
                    return self.end_session(learner, false, due);
                }
                self.pool
                    .borrow_mut()
                    .sessions
                    .push_back((learner, session));
                return self.learner_freed.notify_one();
            }
        };
        let reply: RoundReply = match serde_json::from_slice(&body) {
            Ok(reply) => reply,
            Err(error) => {
                self.bad_body(endpoint, due, &error, &body);
                return self.end_session(learner, false, due);
            }
        };
        self.finish(endpoint, Status::Http(200), due, None);
        self.count(due, |c| {
            c.rounds += 1;
            c.rounds_meant_right += u64::from(right);
            c.rounds_graded_correct += u64::from(reply.correct);
            c.round_score_sum += reply.score;
            c.rounds_mastered += u64::from(reply.mastery.mastered);
            c.unknown_prompts += u64::from(!known);
            c.grader_disagreements += u64::from(known && right != reply.correct);
        });
        let id = self.learner_id(learner);
        let mut line = RecordLine::new(endpoint.path(), 200, &id);
        line.position = reply.position;
        line.session_id = Some(&session.id);
        line.rounds_completed = reply.rounds_completed;
        self.record(&line, reply.position);
        match reply.next_prompt.filter(|_| reply.status != "completed") {
            Some(next) => {
                session.prompt = next.as_ref().into();
                session.failures = 0;
                self.pool
                    .borrow_mut()
                    .sessions
                    .push_back((learner, session));
                self.learner_freed.notify_one();
            }
            None => {
                let completed = reply.status == "completed";
                if completed {
                    self.count(due, |c| c.sessions_completed += 1);
                }
                self.end_session(learner, completed, due);
            }
        }
    }

    async fn start_challenge(&self, learner: u32, due: Instant) {
        let (id, body) = {
            let mut pool = self.pool.borrow_mut();
            let Some(l) = pool.learners.get_mut(learner as usize) else {
                unreachable!("learner {learner} out of range");
            };
            let mut body = format!("{{\"user_id\":\"{}\"", l.id);
            if l.rng.chance(CHALLENGE_CATEGORY_SHARE) {
                if let Some(area) = self.areas_json.get(l.favourite_area as usize) {
                    body.push_str(",\"category\":");
                    body.push_str(area);
                }
            }
            if l.rng.chance(CHALLENGE_DIFFICULTY_SHARE) {
                let index = l.rng.below(Difficulty::ALL.len() as u64) as usize;
                let difficulty = Difficulty::ALL.get(index).map_or("easy", |d| d.as_str());
                body.push_str(",\"difficulty\":\"");
                body.push_str(difficulty);
                body.push('"');
            }
            body.push('}');
            (l.id.clone(), body)
        };
        let endpoint = Endpoint::ChallengeStart;
        let body = match self.post(&self.urls.challenge_start, body, &[]).await {
            Reply::Ok(body, _) => body,
            Reply::Failed(status, text) => {
                self.failed(endpoint, status, due, &text);
                return self.release(learner);
            }
        };
        let handed: ChallengeReply = match serde_json::from_slice(&body) {
            Ok(handed) => handed,
            Err(error) => {
                self.bad_body(endpoint, due, &error, &body);
                return self.release(learner);
            }
        };
        self.finish(endpoint, Status::Http(200), due, None);
        self.count(due, |c| c.challenges_started += 1);
        let mut line = RecordLine::new(endpoint.path(), 200, &id);
        line.position = handed.position;
        line.challenge_id = Some(&handed.challenge_id);
        self.record(&line, handed.position);
        let area = handed
            .category
            .as_deref()
            .and_then(|c| self.area_index.get(c).copied());
        let challenge = Challenge {
            id: handed.challenge_id.as_ref().into(),
            prompt: handed.prompt.as_ref().into(),
            area,
            failures: 0,
        };
        self.pool
            .borrow_mut()
            .challenges
            .push_back((learner, challenge));
        self.learner_freed.notify_one();
    }

    async fn grade(&self, learner: u32, mut challenge: Challenge, due: Instant) {
        let (right, answer, known) = self.answer_for(learner, &challenge.prompt, challenge.area);
        let body = format!(
            "{{\"challenge_id\":\"{}\",\"answer\":{}}}",
            challenge.id, answer.json
        );
        let endpoint = Endpoint::ChallengeGrade;
        let body = match self.post(&self.urls.challenge_grade, body, &[]).await {
            Reply::Ok(body, _) => body,
            Reply::Failed(status, text) => {
                self.failed(endpoint, status, due, &text);
                challenge.failures += 1;
                let retry = matches!(status, Status::Http(code) if code >= 500)
                    || matches!(
                        status,
                        Status::Connect | Status::Timeout | Status::Transport
                    );
                if retry && challenge.failures < ROUND_FAILURES_MAX {
                    self.pool
                        .borrow_mut()
                        .challenges
                        .push_back((learner, challenge));
                    return self.learner_freed.notify_one();
                }
                return self.release(learner);
            }
        };
        let graded: GradeReply = match serde_json::from_slice(&body) {
            Ok(graded) => graded,
            Err(error) => {
                self.bad_body(endpoint, due, &error, &body);
                return self.release(learner);
            }
        };
        self.finish(endpoint, Status::Http(200), due, None);
        self.count(due, |c| {
            c.challenges_graded += 1;
            c.challenges_correct += u64::from(graded.correct);
            c.unknown_prompts += u64::from(!known);
            c.grader_disagreements += u64::from(known && right != graded.correct);
        });
        let id = self.learner_id(learner);
        let mut line = RecordLine::new(endpoint.path(), 200, &id);
        line.position = graded.position;
        line.challenge_id = Some(&challenge.id);
        self.record(&line, graded.position);
        self.release(learner);
    }

    async fn chat(&self, learner: u32, due: Instant) {
        let (index, stream) = {
            let mut pool = self.pool.borrow_mut();
            let index = pool.rng.below(self.chat.len().max(1) as u64) as usize;
            (index, pool.rng.chance(STREAM_SHARE))
        };
        let Some((_category, body)) = self.chat.body(index, stream) else {
            return;
        };
        let id = self.learner_id(learner);
        let mut headers = Vec::with_capacity(2);
        if let Some(auth) = &self.authorization {
            headers.push((AUTHORIZATION, auth.clone()));
        }
        if let Ok(session) = HeaderValue::from_str(&id) {
            headers.push((HeaderName::from_static(SESSION_HEADER), session));
        }
        if stream {
            return self.chat_stream(&id, body, &headers, due).await;
        }
        let endpoint = Endpoint::Chat;
        let (body, request_id) = match self.post(&self.urls.chat, body, &headers).await {
            Reply::Ok(body, request_id) => (body, request_id),
            Reply::Failed(status, text) => return self.failed(endpoint, status, due, &text),
        };
        match serde_json::from_slice::<ChatReply>(&body) {
            Err(error) => return self.bad_body(endpoint, due, &error, &body),
            Ok(reply) if reply.choices.is_empty() => {
                let detail = String::from_utf8_lossy(&body);
                return self.finish(endpoint, Status::BadBody, due, Some(&detail));
            }
            Ok(_) => {}
        }
        self.finish(endpoint, Status::Http(200), due, None);
        self.count(due, |c| c.chats_completed += 1);
        let mut line = RecordLine::new(endpoint.path(), 200, &id);
        line.request_id = request_id.as_deref();
        self.record(&line, None);
    }

    async fn chat_stream(
        &self,
        id: &str,
        body: Bytes,
        headers: &[(HeaderName, HeaderValue)],
        due: Instant,
    ) {
        let endpoint = Endpoint::ChatStream;
        let mut response = match self.request(&self.urls.chat, body, headers).send().await {
            Ok(response) => response,
            Err(error) => {
                return self.failed(
                    endpoint,
                    transport_status(&error),
                    due,
                    &error_chain(&error),
                )
            }
        };
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return self.failed(endpoint, Status::Http(status.as_u16()), due, &text);
        }
        let request_id = response
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let seen = match self.read_stream(&mut response, due).await {
            Ok(seen) => seen,
            Err(error) => {
                return self.failed(
                    endpoint,
                    transport_status(&error),
                    due,
                    &error_chain(&error),
                )
            }
        };
        let text = String::from_utf8_lossy(&seen);
        if text.contains("data: {\"error\"") || !text.contains("data: [DONE]") {
            return self.finish(endpoint, Status::BadBody, due, Some(&text));
        }
        self.finish(endpoint, Status::Http(200), due, None);
        self.count(due, |c| c.chats_completed += 1);
        let mut line = RecordLine::new(endpoint.path(), 200, id);
        line.request_id = request_id.as_deref();
        self.record(&line, None);
    }
}

/// `count` learners with their own random streams, aptitudes and favourite areas.
fn learners(seed: u64, count: u32, areas: usize, skill: Skill) -> Vec<Learner> {
    (0..count)
        .map(|index| {
            let mut rng = Rng::derived(seed, u64::from(index));
            let aptitude = skill.aptitude(&mut rng);
            let favourite_area = rng.below(areas as u64) as u16;
            Learner {
                id: format!("load{seed}-{index}").into_boxed_str(),
                rng,
                aptitude,
                practice: vec![0; areas].into_boxed_slice(),
                favourite_area,
            }
        })
        .collect()
}

fn transport_status(error: &reqwest::Error) -> Status {
    if error.is_timeout() {
        Status::Timeout
    } else if error.is_connect() {
        Status::Connect
    } else {
        Status::Transport
    }
}

/// The error and its causes on one line (reqwest's own message is only the outer
/// layer: "error sending request").
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(learners: u32, sessions_max: Option<u64>) -> Context {
        let now = Instant::now();
        Context::new(Setup {
            client: reqwest::Client::new(),
            target: "http://127.0.0.1:1/".into(),
            focus_areas: vec!["algebra".into(), "geometry".into()],
            learners,
            rounds: None,
            sessions_max,
            api_key: "sk-test".into(),
            model: "auto".into(),
            correct_share: 0.7,
            seed: 9,
            recorder: None,
            measure_from: now,
            end: now + Duration::from_secs(60),
        })
    }

    fn session(id: &str) -> Session {
        Session {
            id: id.into(),
            prompt: "Solve for x: 2x + 3 = 11".into(),
            area: 0,
            failures: 0,
        }
    }

    #[test]
    fn training_continues_open_sessions_before_starting_new_ones() {
        let context = context(3, None);
        assert!(matches!(
            context.take(Scenario::Training),
            Some(Job::StartTraining(0))
        ));
        context
            .pool
            .borrow_mut()
            .sessions
            .push_back((0, session("s-0")));
        assert!(
            matches!(context.take(Scenario::Training), Some(Job::Round(0, s)) if &*s.id == "s-0")
        );
        assert!(matches!(
            context.take(Scenario::Training),
            Some(Job::StartTraining(1))
        ));
        assert!(matches!(
            context.take(Scenario::Challenges),
            Some(Job::StartChallenge(2))
        ));
        assert!(
            context.take(Scenario::Training).is_none(),
            "every learner is busy"
        );
        assert!(
            matches!(context.take(Scenario::Chat), Some(Job::Chat(_))),
            "chat needs no free learner"
        );
        context.release(1);
        assert!(matches!(
            context.take(Scenario::Challenges),
            Some(Job::StartChallenge(1))
        ));
    }

    #[test]
    fn sessions_cap_stops_new_starts_and_the_run_once_all_ended() {
        let context = context(4, Some(2));
        assert!(matches!(
            context.take(Scenario::Training),
            Some(Job::StartTraining(0))
        ));
        assert!(matches!(
            context.take(Scenario::Training),
            Some(Job::StartTraining(1))
        ));
        assert!(
            context.take(Scenario::Training).is_none(),
            "two sessions reserved"
        );
        context.pool.borrow_mut().sessions_open = 2;
        context.end_session(0, true, Instant::now());
        assert!(!context.stopping());
        context.end_session(1, false, Instant::now());
        assert!(context.stopping(), "both sessions ended");
        assert!(context.stopped_at().is_some());
        assert_eq!(context.stats().learning.sessions_abandoned, 1);
    }

    #[test]
    fn learners_are_deterministic_for_a_seed() {
        let a = learners(5, 50, 3, Skill::new(0.7));
        let b = learners(5, 50, 3, Skill::new(0.7));
        let summary = |ls: &[Learner]| -> Vec<(String, u16, u32)> {
            ls.iter()
                .map(|l| (l.id.to_string(), l.favourite_area, l.aptitude.to_bits()))
                .collect()
        };
        assert_eq!(summary(&a), summary(&b));
        assert_eq!(a.first().map(|l| &*l.id), Some("load5-0"));
        assert!(a
            .iter()
            .all(|l| l.favourite_area < 3 && l.aptitude.abs() <= 0.1));
        assert_ne!(summary(&a), summary(&learners(6, 50, 3, Skill::new(0.7))));
    }

    #[test]
    fn the_mix_is_drawn_by_weight() {
        let context = context(1, None);
        let mut counts = [0u32; 3];
        for _ in 0..10_000 {
            let picked = context.pick([6, 2, 2]);
            let index = Scenario::ALL
                .iter()
                .position(|s| *s == picked)
                .expect("a scenario");
            counts[index] += 1;
        }
        assert!((5_700..6_300).contains(&counts[0]), "{counts:?}");
        assert!((1_800..2_200).contains(&counts[1]), "{counts:?}");
        for _ in 0..100 {
            assert_eq!(context.pick([0, 0, 1]), Scenario::Chat);
        }
    }
}
