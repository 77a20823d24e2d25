//! The KurrentDB (EventStoreDB) backend: the [`EventStore`] trait over gRPC with the
//! `kurrentdb` client, for deployments where several daemons share one replicated
//! log. See `docs/kurrentdb.md` for operating it and for what differs from the
//! embedded log.
//!
//! How our model sits on KurrentDB's ([`mapping`] has the pure rules):
//! - a tutorlog stream is the KurrentDB stream of the same name, and its revisions
//!   are KurrentDB's stream revisions (both dense from 0);
//! - event data is our `RecordBody` (bincode); event metadata is JSON with the
//!   schema version and correlation/causation ids; the KurrentDB event type and id
//!   are ours;
//! - our dense `$all` position is the ordinal of the event among tutorlog events in
//!   KurrentDB's `$all` order. Each handle keeps that mapping in memory
//!   ([`mapping::PositionIndex`]), built by scanning `$all` when it connects and
//!   extended ("caught up") before every read, after every append and on every
//!   subscription wake-up. Every node counts the same events in the same order, so
//!   every node agrees on every position.
//! - each record carries the BLAKE3 hash of the previous record *of its stream*
//!   (a per-stream chain, checked by [`KurrentStore::verify`]): with many writers,
//!   no writer knows the previous record of `$all` when it writes.
//!
//! Nothing here installs a rustls crypto provider: the client installs aws-lc-rs
//! itself on its first connection.

pub mod mapping;

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use bytes::Bytes;
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, EventData, Position, ReadAllOptions,
    ReadStreamOptions, ResolvedEvent, StreamPosition, SubscribeToAllOptions,
    SubscribeToStreamOptions, SubscriptionEvent, SubscriptionFilter,
};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tutorlog_schemas::{codec, NewEvent, RecordedEvent};
use uuid::Uuid;

use self::mapping::{EventMeta, PositionIndex, StoredCoordinates};
use crate::{
    validate_stream_name, AppendResult, EventStore, ExpectedRevision, StoreError, Subscription,
    SubscriptionSource, APPEND_EVENTS_MAX, READ_EVENTS_MAX,
};

/// Events asked for per `$all` page when catching up the position index.
const CATCH_UP_PAGE_EVENTS: usize = 4096;
/// Events read per subscription step.
const SUBSCRIPTION_CHUNK_EVENTS: usize = 1024;
/// `Any`/`Exists` appends retry this many times when another writer moves the
/// stream between reading its head and appending.
const APPEND_ATTEMPTS_MAX: u32 = 64;
/// Stream heads remembered to save a read before appending.
const HEAD_CACHE_STREAMS_MAX: usize = 65_536;
/// Event ids remembered with their positions, to answer an append's position.
const RECENT_IDS_MAX: usize = 65_536;
/// Most bytes one append may carry (KurrentDB's default max append size is 1 MiB;
/// a larger append is refused by the server as invalid input).
pub const APPEND_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Attempts to read back an acknowledged append's positions.
const POSITION_LOOKUP_TRIES: u32 = 5;
/// Pause before re-opening a dropped live subscription (and between position
/// lookups).
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(500);

/// A stream's last revision and the BLAKE3 hash of that record's data.
type Head = (u64, [u8; 32]);
/// One encoded event: record body bytes and metadata JSON bytes.
type EncodedRecord = (Vec<u8>, Vec<u8>);

/// A handle to a KurrentDB-backed log. Cheap to clone.
#[derive(Clone)]
pub struct KurrentStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    /// The connection string without credentials, for messages.
    endpoint: String,
    index: RwLock<PositionIndex>,
    /// Serialises `$all` scans that extend the index.
    catch_up: tokio::sync::Mutex<CatchUp>,
    /// Last known revision and record hash per stream; a hint, checked by the
    /// server's expected-revision test on every append.
    heads: Mutex<HashMap<String, Head>>,
    closed: watch::Sender<bool>,
}

#[derive(Default)]
struct CatchUp {
    /// Last `$all` position scanned (ours or not).
    scanned: Option<Position>,
    /// Positions of recently indexed events, by event id.
    recent: HashMap<Uuid, u64>,
    recent_order: VecDeque<Uuid>,
}

impl std::fmt::Debug for KurrentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KurrentStore")
            .field("endpoint", &self.inner.endpoint)
            .finish()
    }
}

/// What [`KurrentStore::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KurrentVerifyReport {
    /// Records checked.
    pub records: u64,
    /// Distinct streams.
    pub streams: usize,
    /// Position of the last record.
    pub last_position: Option<u64>,
}

/// Removes `user:password@` from a connection string for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

fn client_error(error: kurrentdb::Error) -> StoreError {
    mapping::store_error(error, "", ExpectedRevision::Any)
}

impl KurrentStore {
    /// Connects to KurrentDB at `url` (`esdb://`, `esdb+discover://` or
    /// `kurrentdb://` connection string) and builds the position index by scanning
    /// `$all`. Must run inside a tokio runtime.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let endpoint = redact_url(url);
        let settings: ClientSettings =
            url.parse()
                .map_err(|e: kurrentdb::ClientSettingsParseError| {
                    StoreError::InvalidInput(format!(
                        "invalid KurrentDB connection string {endpoint:?}: {}",
                        e.message()
                    ))
                })?;
        let client = Client::new(settings).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot create a KurrentDB client for {endpoint}: {e}"
            ))
        })?;
        let (closed, _) = watch::channel(false);
        let store = KurrentStore {
            inner: Arc::new(Inner {
                client,
                endpoint: endpoint.clone(),
                index: RwLock::new(PositionIndex::default()),
                catch_up: tokio::sync::Mutex::new(CatchUp::default()),
                heads: Mutex::new(HashMap::new()),
                closed,
            }),
        };
        store.catch_up().await.map_err(|e| match e {
            StoreError::Unavailable(reason) => {
                StoreError::Unavailable(format!("KurrentDB at {endpoint}: {reason}"))
            }
            other => other,
        })?;
        tracing::info!(endpoint = %endpoint, events = store.inner.index.read().len(), "KurrentDB log open");
        Ok(store)
    }

    /// Stops accepting appends and ends subscriptions once they have delivered
    /// everything already in the log. Data lives on the server; nothing to flush.
    pub fn close(&self) {
        self.inner.closed.send_replace(true);
    }

    fn is_closed(&self) -> bool {
        *self.inner.closed.borrow()
    }

    /// The connection string without credentials.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// Reads one page of `$all` (system streams filtered out by the server).
    async fn read_all_page(
        &self,
        from: Option<Position>,
        max: usize,
    ) -> Result<Vec<ResolvedEvent>, StoreError> {
        let options = ReadAllOptions::default()
            .position(from.map_or(StreamPosition::Start, StreamPosition::Position))
            .forwards()
            .filter(SubscriptionFilter::on_stream_name().exclude_system_events())
            .max_count(max);
        let mut stream = self
            .inner
            .client
            .read_all(&options)
            .await
            .map_err(client_error)?;
        let mut events = Vec::new();
        while let Some(event) = stream.next().await.map_err(client_error)? {
            events.push(event);
        }
        Ok(events)
    }

    /// Extends the position index to the current end of `$all`.
    async fn catch_up(&self) -> Result<(), StoreError> {
        let mut state = self.inner.catch_up.lock().await;
        loop {
            let page = self
                .read_all_page(state.scanned, CATCH_UP_PAGE_EVENTS)
                .await?;
            let mut new = 0usize;
            for resolved in page {
                let Some(event) = resolved.event else {
                    continue;
                };
                // A read from a position may include that position: skip what we saw.
                if state
                    .scanned
                    .is_some_and(|seen| key(event.position) <= key(seen))
                {
                    continue;
                }
                new += 1;
                state.scanned = Some(event.position);
                if EventMeta::decode(&event.custom_metadata).is_none() {
                    continue; // not a tutorlog event
                }
                let position = self
                    .inner
                    .index
                    .write()
                    .push(event.position, event.created.timestamp_micros())
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                state.recent.insert(event.id, position);
                state.recent_order.push_back(event.id);
                if state.recent_order.len() > RECENT_IDS_MAX {
                    if let Some(old) = state.recent_order.pop_front() {
                        state.recent.remove(&old);
                    }
                }
            }
            if new == 0 {
                return Ok(());
            }
        }
    }

    /// Dense position and time of an event at KurrentDB position `at`, catching up
    /// the index once if this node has not seen it yet.
    async fn position_of(&self, at: Position) -> Result<(u64, i64), StoreError> {
        if let Some(found) = self.inner.index.read().lookup(at) {
            return Ok(found);
        }
        self.catch_up().await?;
        self.inner.index.read().lookup(at).ok_or_else(|| {
            StoreError::Unavailable(format!(
                "event at KurrentDB position {at} is not a tutorlog event in $all"
            ))
        })
    }

    /// Decodes one event read from KurrentDB.
    async fn decode(&self, event: &kurrentdb::RecordedEvent) -> Result<RecordedEvent, StoreError> {
        if EventMeta::decode(&event.custom_metadata).is_none() {
            return Err(StoreError::Codec(codec::CodecError::Decode(format!(
                "event {} in stream {:?} was not written by tutorlog (no tutorlog metadata)",
                event.id,
                event.stream_id()
            ))));
        }
        let (position, micros) = self.position_of(event.position).await?;
        let coordinates = StoredCoordinates {
            stream: event.stream_id(),
            revision: event.revision,
            event_id: event.id,
            event_type: &event.event_type,
        };
        mapping::decode_event(&coordinates, &event.data, position, micros).map(|(e, _)| e)
    }

    /// Reads the last event of `stream`: its revision and record hash.
    async fn read_head(&self, stream: &str) -> Result<Option<Head>, StoreError> {
        let options = ReadStreamOptions::default()
            .position(StreamPosition::End)
            .backwards()
            .max_count(1);
        let mut read = match self.inner.client.read_stream(stream, &options).await {
            Ok(read) => read,
            Err(kurrentdb::Error::ResourceNotFound) => return Ok(None),
            Err(error) => return Err(client_error(error)),
        };
        match read.next().await {
            Ok(Some(resolved)) => Ok(resolved
                .event
                .map(|e| (e.revision, mapping::chain_hash(&e.data)))),
            Ok(None) | Err(kurrentdb::Error::ResourceNotFound) => Ok(None),
            Err(error) => Err(client_error(error)),
        }
    }

    fn remember_head(&self, stream: &str, head: Option<Head>) {
        let mut heads = self.inner.heads.lock();
        match head {
            Some(head) => {
                if heads.len() >= HEAD_CACHE_STREAMS_MAX && !heads.contains_key(stream) {
                    heads.clear();
                }
                heads.insert(stream.to_owned(), head);
            }
            None => {
                heads.remove(stream);
            }
        }
    }

    fn check_append(stream: &str, events: &[NewEvent]) -> Result<(), StoreError> {
        validate_stream_name(stream)?;
        if events.is_empty() {
            return Err(StoreError::InvalidInput(
                "append needs at least one event".into(),
            ));
        }
        if events.len() > APPEND_EVENTS_MAX {
            return Err(StoreError::InvalidInput(format!(
                "{} events in one append, the limit is {APPEND_EVENTS_MAX}",
                events.len()
            )));
        }
        let mut total = 0usize;
        for event in events {
            let estimate = 256 + stream.len() + event.event_type.len() + event.payload.len();
            if estimate > codec::RECORD_BODY_BYTES_MAX {
                return Err(StoreError::InvalidInput(format!(
                    "event payload of {} bytes exceeds the record limit of {} bytes",
                    event.payload.len(),
                    codec::RECORD_BODY_BYTES_MAX
                )));
            }
            // KurrentDB reserves `$`-prefixed event types for its own events.
            if event.event_type.is_empty()
                || event.event_type.len() > 128
                || event.event_type.starts_with('$')
            {
                return Err(StoreError::InvalidInput(
                    "event type must be 1 to 128 bytes and not start with '$'".into(),
                ));
            }
            total += estimate;
        }
        if total > APPEND_BYTES_MAX {
            return Err(StoreError::InvalidInput(format!(
                "append of ~{total} bytes exceeds the limit of {APPEND_BYTES_MAX}"
            )));
        }
        Ok(())
    }

    /// Encodes `events` as they will be stored after `head`; returns the event data
    /// and the new head.
    fn encode(
        stream: &str,
        head: Option<Head>,
        events: &[NewEvent],
    ) -> Result<(Vec<EventData>, Head), StoreError> {
        let written_at = chrono::Utc::now().timestamp_micros();
        let (records, new_head) = encode_records(stream, head, events, written_at)?;
        let data = records
            .into_iter()
            .zip(events)
            .map(|((record, meta), event)| {
                EventData::binary(&event.event_type, Bytes::from(record))
                    .id(event.event_id)
                    .metadata(Bytes::from(meta))
            })
            .collect();
        Ok((data, new_head))
    }

    /// Positions of the first and last events of an acknowledged append.
    async fn appended_positions(
        &self,
        stream: &str,
        first_revision: u64,
        events: &[NewEvent],
    ) -> Result<(u64, u64), StoreError> {
        self.catch_up().await?;
        let (first_id, last_id) = match (events.first(), events.last()) {
            (Some(first), Some(last)) => (first.event_id, last.event_id),
            _ => return Err(StoreError::InvalidInput("empty append".into())),
        };
        {
            let state = self.inner.catch_up.lock().await;
            if let (Some(&first), Some(&last)) =
                (state.recent.get(&first_id), state.recent.get(&last_id))
            {
                return Ok((first, last));
            }
        }
        // Evicted from the recent ids (a very busy log): read the events back.
        let read = self
            .read_stream(stream, first_revision, events.len())
            .await?;
        match (read.first(), read.last()) {
            (Some(first), Some(last)) if first.event_id == first_id && last.event_id == last_id => {
                Ok((first.position, last.position))
            }
            _ => Err(StoreError::Unavailable(format!(
                "append to {stream:?} was acknowledged but its events are not in $all"
            ))),
        }
    }

    /// Checks every tutorlog record in `$all`: it decodes, agrees with where
    /// KurrentDB stored it, revisions are dense per stream and each record carries
    /// the BLAKE3 hash of the previous record of its stream. This is `audit verify`
    /// on this backend; see docs/kurrentdb.md for what it cannot prove.
    pub async fn verify(&self) -> Result<KurrentVerifyReport, StoreError> {
        self.catch_up().await?;
        let end = self.inner.index.read().len();
        let mut heads: HashMap<String, Head> = HashMap::new();
        let mut scanned: Option<Position> = None;
        let mut records = 0u64;
        'pages: while records < end {
            let page = self.read_all_page(scanned, CATCH_UP_PAGE_EVENTS).await?;
            let mut new = 0usize;
            for resolved in page {
                let Some(event) = resolved.event else {
                    continue;
                };
                if scanned.is_some_and(|seen| key(event.position) <= key(seen)) {
                    continue;
                }
                new += 1;
                scanned = Some(event.position);
                if EventMeta::decode(&event.custom_metadata).is_none() {
                    continue;
                }
                let (position, micros) = self.position_of(event.position).await?;
                if position != records {
                    return Err(verify_error(
                        &event,
                        format!("has position {position} where {records} was expected"),
                    ));
                }
                let coordinates = StoredCoordinates {
                    stream: event.stream_id(),
                    revision: event.revision,
                    event_id: event.id,
                    event_type: &event.event_type,
                };
                let (_, body) = mapping::decode_event(&coordinates, &event.data, position, micros)?;
                let (want_revision, want_hash) = heads
                    .get(event.stream_id())
                    .map_or((0, [0; 32]), |&(r, h)| (r + 1, h));
                if body.revision != want_revision {
                    return Err(verify_error(
                        &event,
                        format!(
                            "has revision {} where {want_revision} was expected",
                            body.revision
                        ),
                    ));
                }
                if body.prev_hash != want_hash {
                    return Err(verify_error(
                        &event,
                        "breaks the stream's hash chain: previous-record hash does not match"
                            .into(),
                    ));
                }
                heads.insert(
                    event.stream_id().to_owned(),
                    (body.revision, mapping::chain_hash(&event.data)),
                );
                records += 1;
                if records == end {
                    break 'pages;
                }
            }
            if new == 0 {
                break;
            }
        }
        if records != end {
            return Err(StoreError::Unavailable(format!(
                "$all ended after {records} tutorlog records, {end} were indexed"
            )));
        }
        Ok(KurrentVerifyReport {
            records,
            streams: heads.len(),
            last_position: records.checked_sub(1),
        })
    }
}

/// Encodes each event's record body (chained to the previous record of the stream)
/// and metadata; returns them with the stream's new head (revision, hash).
fn encode_records(
    stream: &str,
    head: Option<Head>,
    events: &[NewEvent],
    written_at_micros: i64,
) -> Result<(Vec<EncodedRecord>, Head), StoreError> {
    let mut prev = head.map_or([0; 32], |(_, hash)| hash);
    let mut revision = head.map_or(0, |(r, _)| r + 1);
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        let body = mapping::record_body(stream, revision, event, prev, written_at_micros);
        let bytes = codec::encode_record(&body)?;
        prev = mapping::chain_hash(&bytes);
        out.push((bytes, EventMeta::of(event).encode()?));
        revision += 1;
    }
    Ok((out, (revision.saturating_sub(1), prev)))
}

fn verify_error(event: &kurrentdb::RecordedEvent, what: String) -> StoreError {
    StoreError::Codec(codec::CodecError::Decode(format!(
        "KurrentDB event {} ({:?} revision {}, $all {}) {what}",
        event.id,
        event.stream_id(),
        event.revision,
        event.position
    )))
}

/// `$all` order: commit position, then prepare position.
fn key(position: Position) -> (u64, u64) {
    (position.commit, position.prepare)
}

#[async_trait]
impl EventStore for KurrentStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        Self::check_append(stream, &events)?;
        if self.is_closed() {
            return Err(StoreError::Closed);
        }
        let mut attempts = 0u32;
        let mut trust_cache = true;
        loop {
            attempts += 1;
            let cached = if trust_cache {
                self.inner.heads.lock().get(stream).copied()
            } else {
                None
            };
            let from_cache = cached.is_some();
            let head = match cached {
                Some(head) => Some(head),
                None => self.read_head(stream).await?,
            };
            let actual = head.map(|(r, _)| r);
            if !expected.matches(actual) {
                if from_cache {
                    // The hint may be stale (another node wrote): ask the server.
                    trust_cache = false;
                    continue;
                }
                self.remember_head(stream, head);
                return Err(StoreError::WrongExpectedRevision {
                    stream: stream.to_owned(),
                    expected,
                    actual,
                });
            }
            let (data, new_head) = Self::encode(stream, head, &events)?;
            // Append with the exact head we chained to: for `Exact` and `NoStream` this
            // is the caller's own expectation; for `Any` and `Exists` a conflict only
            // means "read the head again".
            let options =
                AppendToStreamOptions::default().stream_state(mapping::precise_state(actual));
            match self
                .inner
                .client
                .append_to_stream(stream, &options, data)
                .await
            {
                Ok(_) => {
                    self.remember_head(stream, Some(new_head));
                    let first_revision = actual.map_or(0, |r| r + 1);
                    // The events are durable now: an error from here on would tell the
                    // caller "not written" about written events, so try harder to
                    // learn their positions before giving up.
                    let mut tries = 0;
                    let (first_position, position) = loop {
                        tries += 1;
                        match self
                            .appended_positions(stream, first_revision, &events)
                            .await
                        {
                            Ok(positions) => break positions,
                            Err(error) if tries < POSITION_LOOKUP_TRIES => {
                                tracing::warn!(%error, stream, "append acknowledged; retrying the $all read for its positions");
                                tokio::time::sleep(RESUBSCRIBE_DELAY).await;
                            }
                            Err(error) => {
                                return Err(StoreError::Unavailable(format!(
                                    "append to {stream:?} was acknowledged by KurrentDB (revisions {first_revision}..={}), but reading its $all positions failed: {error}",
                                    new_head.0
                                )))
                            }
                        }
                    };
                    return Ok(AppendResult {
                        first_revision,
                        last_revision: new_head.0,
                        first_position,
                        position,
                    });
                }
                Err(kurrentdb::Error::WrongExpectedVersion { current, .. }) => {
                    self.remember_head(stream, None);
                    trust_cache = false;
                    let retry = match expected {
                        ExpectedRevision::Any | ExpectedRevision::Exists => true,
                        // Same expectation as the caller's, unless it came from a
                        // stale hint: then the caller may still be right.
                        ExpectedRevision::Exact(_) | ExpectedRevision::NoStream => from_cache,
                    };
                    if !retry || attempts >= APPEND_ATTEMPTS_MAX {
                        if retry {
                            return Err(StoreError::Unavailable(format!(
                                "append to {stream:?} lost {attempts} races with other writers; try again"
                            )));
                        }
                        return Err(StoreError::WrongExpectedRevision {
                            stream: stream.to_owned(),
                            expected,
                            actual: mapping::current_revision(current),
                        });
                    }
                    tokio::task::yield_now().await;
                }
                Err(error) => {
                    self.remember_head(stream, None);
                    return Err(mapping::store_error(error, stream, expected));
                }
            }
        }
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_revision: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let max = max.min(READ_EVENTS_MAX);
        // `$` streams belong to KurrentDB, never to tutorlog: they read as empty,
        // like any stream we never wrote.
        if max == 0 || validate_stream_name(stream).is_err() {
            return Ok(Vec::new());
        }
        let options = ReadStreamOptions::default()
            .position(StreamPosition::Position(from_revision))
            .forwards()
            .max_count(max);
        let mut read = match self.inner.client.read_stream(stream, &options).await {
            Ok(read) => read,
            Err(kurrentdb::Error::ResourceNotFound) => return Ok(Vec::new()),
            Err(error) => return Err(client_error(error)),
        };
        let mut events = Vec::new();
        loop {
            match read.next().await {
                Ok(Some(resolved)) => {
                    if let Some(event) = resolved.event {
                        events.push(self.decode(&event).await?);
                    }
                }
                Ok(None) => break,
                Err(kurrentdb::Error::ResourceNotFound) => return Ok(Vec::new()),
                Err(error) => return Err(client_error(error)),
            }
        }
        Ok(events)
    }

    async fn read_all(
        &self,
        from_position: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.catch_up().await?;
        let max = max.min(READ_EVENTS_MAX);
        let (start, to) = {
            let index = self.inner.index.read();
            let Some((start, _)) = index.get(from_position) else {
                return Ok(Vec::new());
            };
            (
                start,
                index.len().min(from_position.saturating_add(max as u64)),
            )
        };
        let mut events = Vec::with_capacity((to - from_position) as usize);
        // Start just before our first event: reads from a position include it.
        let mut scanned: Option<Position> = None;
        let mut from = start;
        while from_position + (events.len() as u64) < to {
            let want = (to - from_position) as usize - events.len();
            let page = self
                .read_all_page(Some(from), want.saturating_add(16))
                .await?;
            let mut new = 0usize;
            for resolved in page {
                let Some(event) = resolved.event else {
                    continue;
                };
                if key(event.position) < key(start)
                    || scanned.is_some_and(|seen| key(event.position) <= key(seen))
                {
                    continue;
                }
                new += 1;
                scanned = Some(event.position);
                from = event.position;
                if EventMeta::decode(&event.custom_metadata).is_none() {
                    continue;
                }
                let expected = from_position + events.len() as u64;
                if expected >= to {
                    break;
                }
                let recorded = self.decode(&event).await?;
                if recorded.position != expected {
                    return Err(StoreError::Unavailable(format!(
                        "$all read returned position {} where {expected} was expected",
                        recorded.position
                    )));
                }
                events.push(recorded);
            }
            if new == 0 {
                break;
            }
        }
        Ok(events)
    }

    async fn stream_revision(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        if validate_stream_name(stream).is_err() {
            return Ok(None);
        }
        let head = self.read_head(stream).await?;
        self.remember_head(stream, head);
        Ok(head.map(|(r, _)| r))
    }

    /// The last position this handle has indexed: this node's view, extended by
    /// every append, read and subscription step (other nodes' writes show up on the
    /// next of those).
    fn last_position(&self) -> Option<u64> {
        self.inner.index.read().last_position()
    }

    fn subscribe_all(&self, from_position: u64) -> Subscription {
        Subscription::new(Box::new(KurrentSubscription::new(
            self.clone(),
            None,
            from_position,
        )))
    }

    fn subscribe_stream(&self, stream: &str, from_revision: u64) -> Subscription {
        Subscription::new(Box::new(KurrentSubscription::new(
            self.clone(),
            Some(stream.to_owned()),
            from_revision,
        )))
    }
}

/// Catch-up then live subscription. Events are always *read* by position (like the
/// embedded log's subscription), so none can be skipped or repeated; KurrentDB's own
/// subscription only wakes the reader when something new was written.
struct KurrentSubscription {
    store: KurrentStore,
    stream: Option<String>,
    /// Next position (for `$all`) or revision (for a stream) to deliver.
    cursor: u64,
    buffer: VecDeque<RecordedEvent>,
    live: Option<kurrentdb::Subscription>,
    /// What the last read covered: a `$all` position, or a stream revision.
    covered_all: Option<Position>,
    closed: watch::Receiver<bool>,
}

impl KurrentSubscription {
    fn new(store: KurrentStore, stream: Option<String>, cursor: u64) -> Self {
        let closed = store.inner.closed.subscribe();
        KurrentSubscription {
            store,
            stream,
            cursor,
            buffer: VecDeque::new(),
            live: None,
            covered_all: None,
            closed,
        }
    }

    async fn fill(&mut self) -> Result<(), StoreError> {
        let events = match &self.stream {
            None => {
                let events = self
                    .store
                    .read_all(self.cursor, SUBSCRIPTION_CHUNK_EVENTS)
                    .await?;
                events
            }
            Some(stream) => {
                self.store
                    .read_stream(stream, self.cursor, SUBSCRIPTION_CHUNK_EVENTS)
                    .await?
            }
        };
        if let Some(last) = events.last() {
            self.cursor = if self.stream.is_some() {
                last.revision + 1
            } else {
                last.position + 1
            };
        }
        if self.stream.is_none() {
            // Covered: exactly what this subscription has read, not the index's
            // tail (another task may have extended the index past what we read).
            self.covered_all = self
                .cursor
                .checked_sub(1)
                .and_then(|p| self.store.inner.index.read().get(p))
                .map(|(at, _)| at);
        }
        self.buffer.extend(events);
        Ok(())
    }

    /// Opens KurrentDB's subscription from just after what was last read. Takes
    /// its inputs by value: the future must not borrow `self`, whose live
    /// subscription is `Send` but not `Sync`.
    fn open_live(&self) -> impl std::future::Future<Output = kurrentdb::Subscription> + Send {
        let client = self.store.inner.client.clone();
        let stream = self.stream.clone();
        let covered_all = self.covered_all;
        let cursor = self.cursor;
        async move {
            match stream {
                None => {
                    let options = SubscribeToAllOptions::default()
                        .position(
                            covered_all.map_or(StreamPosition::Start, StreamPosition::Position),
                        )
                        .filter(SubscriptionFilter::on_stream_name().exclude_system_events());
                    client.subscribe_to_all(&options).await
                }
                Some(stream) => {
                    // Starting after the last revision delivered: the next one wakes us.
                    let from = cursor
                        .checked_sub(1)
                        .map_or(StreamPosition::Start, StreamPosition::Position);
                    let options = SubscribeToStreamOptions::default().start_from(from);
                    client.subscribe_to_stream(stream, &options).await
                }
            }
        }
    }
}

/// Whether a live notification is about something the last read did not cover:
/// for `$all` a position after `covered_all`, for a stream a revision at or after
/// `cursor`.
fn is_news(
    event: &ResolvedEvent,
    on_stream: bool,
    covered_all: Option<Position>,
    cursor: u64,
) -> bool {
    event.event.as_ref().is_some_and(|event| {
        is_news_at(
            event.position,
            event.revision,
            on_stream,
            covered_all,
            cursor,
        )
    })
}

fn is_news_at(
    at: Position,
    revision: u64,
    on_stream: bool,
    covered_all: Option<Position>,
    cursor: u64,
) -> bool {
    if on_stream {
        revision >= cursor
    } else {
        covered_all.is_none_or(|covered| key(at) > key(covered))
    }
}

enum Wake {
    News,
    Closed,
    Dropped(kurrentdb::Error),
}

#[async_trait]
impl SubscriptionSource for KurrentSubscription {
    async fn next(&mut self) -> Option<Result<RecordedEvent, StoreError>> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Some(Ok(event));
            }
            let closed = *self.closed.borrow_and_update();
            if let Err(error) = self.fill().await {
                return Some(Err(error));
            }
            if !self.buffer.is_empty() {
                continue;
            }
            if closed {
                return None;
            }
            let mut live = match self.live.take() {
                Some(live) => live,
                None => self.open_live().await,
            };
            let (on_stream, covered_all, cursor) =
                (self.stream.is_some(), self.covered_all, self.cursor);
            let wake = loop {
                tokio::select! {
                    changed = self.closed.changed() => {
                        let _ = changed; // closed or store dropped: either way, finish
                        break Wake::Closed;
                    }
                    event = live.next_subscription_event() => match event {
                        Ok(SubscriptionEvent::EventAppeared(event))
                            if is_news(&event, on_stream, covered_all, cursor) => break Wake::News,
                        Ok(_) => {}
                        Err(error) => break Wake::Dropped(error),
                    },
                }
            };
            match wake {
                Wake::News => self.live = Some(live),
                Wake::Closed => {}
                Wake::Dropped(error) => {
                    // Reads are by position, so re-subscribing later loses nothing.
                    tracing::warn!(%error, "KurrentDB subscription dropped; resubscribing");
                    tokio::time::sleep(RESUBSCRIBE_DELAY).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact_url("esdb://admin:changeit@db1:2113?tls=false"),
            "esdb://***@db1:2113?tls=false"
        );
        assert_eq!(
            redact_url("esdb://127.0.0.1:2113?tls=false"),
            "esdb://127.0.0.1:2113?tls=false"
        );
    }

    fn event(kind: &str, bytes: usize) -> NewEvent {
        NewEvent::raw(kind, 1, vec![0; bytes])
    }

    #[test]
    fn appends_are_checked_before_any_request() {
        assert!(KurrentStore::check_append("learner-ada", &[event("t", 1)]).is_ok());
        for (stream, events) in [
            ("", vec![event("t", 1)]),
            ("$all", vec![event("t", 1)]),
            ("a\nb", vec![event("t", 1)]),
            ("s", vec![]),
            ("s", vec![event("", 1)]),
            ("s", vec![event("$metadata", 1)]),
            ("s", vec![event("t", codec::RECORD_BODY_BYTES_MAX)]),
        ] {
            assert!(
                matches!(
                    KurrentStore::check_append(stream, &events),
                    Err(StoreError::InvalidInput(_))
                ),
                "{stream:?} with {} events accepted",
                events.len()
            );
        }
    }

    #[test]
    fn records_chain_within_the_stream() {
        let events = vec![event("a", 3), event("b", 4)];
        let (records, head) = encode_records("s", None, &events, 5).expect("encode");
        let bodies: Vec<_> = records
            .iter()
            .map(|(data, _)| codec::decode_record(data).expect("decode"))
            .collect();
        assert_eq!(bodies[0].revision, 0);
        assert_eq!(bodies[0].prev_hash, [0; 32]);
        assert_eq!(bodies[1].revision, 1);
        assert_eq!(bodies[1].prev_hash, mapping::chain_hash(&records[0].0));
        assert_eq!(head, (1, mapping::chain_hash(&records[1].0)));
        assert!(bodies
            .iter()
            .all(|b| b.position == mapping::POSITION_UNASSIGNED && b.recorded_at_micros == 5));
        assert!(records
            .iter()
            .all(|(_, meta)| EventMeta::decode(meta).is_some()));

        let (records, head) = encode_records("s", Some((6, [9; 32])), &events, 5).expect("encode");
        let first = codec::decode_record(&records[0].0).expect("decode");
        assert_eq!((first.revision, first.prev_hash), (7, [9; 32]));
        assert_eq!(head.0, 8);
        assert!(KurrentStore::encode("s", None, &events).is_ok());
    }

    #[test]
    fn only_uncovered_events_wake_a_subscription() {
        let at = |commit, prepare| Position { commit, prepare };
        // $all: anything after what was read; everything when nothing was read.
        assert!(is_news_at(at(10, 10), 0, false, None, 0));
        assert!(is_news_at(at(10, 12), 0, false, Some(at(10, 11)), 0));
        assert!(!is_news_at(at(10, 11), 0, false, Some(at(10, 11)), 0));
        assert!(!is_news_at(at(5, 5), 0, false, Some(at(10, 11)), 0));
        // A stream: the next revision to deliver or later.
        assert!(is_news_at(at(1, 1), 7, true, None, 7));
        assert!(!is_news_at(at(1, 1), 6, true, None, 7));
    }

    #[tokio::test]
    async fn bad_connection_strings_are_invalid_input() {
        match KurrentStore::connect("not a url").await {
            Err(StoreError::InvalidInput(message)) => {
                assert!(message.contains("connection string"), "{message}")
            }
            other => panic!("got {other:?}"),
        }
    }
}
