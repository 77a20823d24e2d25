//! Load generator for the training API (a second process beside `tutorlog serve`).
//!
//! ```text
//! cargo run --release --example learning_load -- --base http://127.0.0.1:8080 \
//!     --clients 256 --seconds 20            # throughput: sessions until time is up
//! cargo run --release --example learning_load -- --base http://127.0.0.1:8080 \
//!     --clients 64 --users 100000           # scale: N distinct learners, one session each
//! ```
//!
//! Each client runs whole sessions (start, then `--rounds` rounds) with keep-alive
//! and TCP_NODELAY; it prints durable rounds per second and round latency p50/p99.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Options {
    base: String,
    clients: usize,
    seconds: u64,
    users: Option<u64>,
    rounds: u32,
    prefix: String,
}

fn options() -> Options {
    let mut options = Options {
        base: "http://127.0.0.1:8080".into(),
        clients: 256,
        seconds: 20,
        users: None,
        rounds: 5,
        prefix: format!("load{}", std::process::id()),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair.first().map(String::as_str) {
            Some("--base") => options.base = value,
            Some("--clients") => options.clients = value.parse().expect("--clients N"),
            Some("--seconds") => options.seconds = value.parse().expect("--seconds N"),
            Some("--users") => options.users = Some(value.parse().expect("--users N")),
            Some("--rounds") => options.rounds = value.parse().expect("--rounds N"),
            Some("--prefix") => options.prefix = value,
            other => panic!("unknown option {other:?}"),
        }
    }
    options
}

async fn post(client: &reqwest::Client, url: &str, body: Value) -> Result<Value, String> {
    let response = client
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let value: Value = response.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(value)
    } else {
        Err(format!("{status}: {value}"))
    }
}

#[tokio::main]
async fn main() {
    let options = Arc::new(options());
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(options.clients)
        .build()
        .expect("client");
    let next_user = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..options.clients {
        let (client, options, next_user, errors) = (
            client.clone(),
            Arc::clone(&options),
            Arc::clone(&next_user),
            Arc::clone(&errors),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut sessions = 0u64;
            loop {
                let user = next_user.fetch_add(1, Ordering::Relaxed);
                match options.users {
                    Some(total) if user >= total => break,
                    None if Instant::now() >= deadline => break,
                    _ => {}
                }
                let start = post(
                    &client,
                    &format!("{}/api/v1/training/start", options.base),
                    json!({ "user_id": format!("{}-{user}", options.prefix), "focus_area": "algebra", "rounds": options.rounds }),
                )
                .await;
                let Ok(start) = start else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let session = start["session_id"].clone();
                for _ in 0..options.rounds {
                    let sent = Instant::now();
                    let round = post(
                        &client,
                        &format!("{}/api/v1/training/round", options.base),
                        json!({ "session_id": session, "response": "42" }),
                    )
                    .await;
                    match round {
                        Ok(_) => latencies.push(sent.elapsed()),
                        Err(error) => {
                            if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                                eprintln!("round failed: {error}");
                            }
                            break;
                        }
                    }
                }
                sessions += 1;
            }
            (latencies, sessions)
        }));
    }
    let mut latencies = Vec::new();
    let mut sessions = 0;
    for task in tasks {
        let (mut own, count) = task.await.expect("client task");
        latencies.append(&mut own);
        sessions += count;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{}",
        json!({
            "clients": options.clients,
            "sessions": sessions,
            "rounds": latencies.len(),
            "seconds": elapsed,
            "rounds_per_sec": latencies.len() as f64 / elapsed,
            "requests_per_sec": (latencies.len() as f64 + sessions as f64) / elapsed,
            "round_p50_ms": percentile(0.50),
            "round_p99_ms": percentile(0.99),
            "errors": errors.load(Ordering::Relaxed),
        })
    );
}
