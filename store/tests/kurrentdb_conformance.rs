//! The store conformance suite against a real KurrentDB server.
//!
//! Runs only when `TUTORLOG_KURRENTDB_URL` is set (and the `kurrentdb` feature is
//! on), e.g. against a throwaway single node:
//!
//! ```text
//! docker run --rm -d -p 2113:2113 docker.kurrent.io/kurrent-latest/kurrentdb:latest --insecure
//! TUTORLOG_KURRENTDB_URL='esdb://127.0.0.1:2113?tls=false' \
//!   cargo test -p tutorlog-store --features kurrentdb --test kurrentdb_conformance -- --nocapture
//! ```
//!
//! Without the variable it prints how to run it and passes, so CI without a server
//! still builds and runs this file.
#![cfg(feature = "kurrentdb")]

use async_trait::async_trait;
use tutorlog_store::{conformance, KurrentStore};

/// Environment variable naming the server to test against.
const URL_VAR: &str = "TUTORLOG_KURRENTDB_URL";

struct KurrentHarness {
    url: String,
}

#[async_trait]
impl conformance::Harness for KurrentHarness {
    type Store = KurrentStore;

    async fn open(&self) -> KurrentStore {
        KurrentStore::connect(&self.url)
            .await
            .expect("connect to the KurrentDB server in TUTORLOG_KURRENTDB_URL")
    }

    async fn close(&self, store: KurrentStore) {
        store.close();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kurrentdb_passes_the_conformance_suite() {
    let Ok(url) = std::env::var(URL_VAR) else {
        println!(
            "skipped: set {URL_VAR}=esdb://... to run the KurrentDB conformance suite \
             (e.g. {URL_VAR}='esdb://127.0.0.1:2113?tls=false')"
        );
        return;
    };
    conformance::run_all(&KurrentHarness { url }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kurrentdb_hash_chains_verify() {
    let Ok(url) = std::env::var(URL_VAR) else {
        println!("skipped: set {URL_VAR}=esdb://... to verify the per-stream hash chains");
        return;
    };
    let store = KurrentStore::connect(&url).await.expect("connect");
    let report = store
        .verify()
        .await
        .expect("every tutorlog record verifies");
    println!(
        "verified {} records in {} streams",
        report.records, report.streams
    );
    store.close();
}

#[tokio::test]
async fn an_unreachable_server_is_reported_as_unavailable() {
    // Port 1 on loopback: nothing listens there, so this needs no server. The
    // client retries discovery before giving up; bound the wait.
    let result = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        KurrentStore::connect("esdb://127.0.0.1:1?tls=false&maxDiscoverAttempts=1&discoveryInterval=10&gossipTimeout=1000"),
    )
    .await;
    match result {
        Ok(Err(tutorlog_store::StoreError::Unavailable(message))) => {
            assert!(message.contains("127.0.0.1:1"), "{message}")
        }
        Ok(other) => panic!("expected Unavailable, got {other:?}"),
        Err(_) => panic!("connect did not give up within 60 s"),
    }
}
