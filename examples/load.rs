//! A bounded load test of `cae serve`: `REQUESTS` `POST /api/analyze` requests of one real-looking
//! digit (28×28 pixels as JSON) from `CLIENTS` threads against a server on this machine, then
//! throughput, latency percentiles and the count of each status, as one JSON line.
//!
//! ```sh
//! cargo run --release --example load -- http://127.0.0.1:8080/ 5000 32
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).map_or("http://127.0.0.1:8080/", String::as_str);
    let host = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("");
    assert!(
        host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]"),
        "this load test only targets loopback addresses, not {host}"
    );
    let requests: usize = args.get(2).map_or(5000, |a| a.parse().expect("REQUESTS"));
    let clients: usize = args.get(3).map_or(32, |a| a.parse().expect("CLIENTS"));
    // A vertical stroke, as a drawn one would look after preparation.
    let pixels: Vec<f32> = (0..784)
        .map(|i| {
            if (13..15).contains(&(i % 28)) && (4..24).contains(&(i / 28)) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let body = format!("{{\"pixels\":{pixels:?}}}");
    let endpoint = format!("{}api/analyze", url.trim_end_matches('/').to_owned() + "/");
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let results: Vec<(u16, Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(Duration::from_secs(30)))
                        .build()
                        .into();
                    let mut mine = Vec::new();
                    while next.fetch_add(1, Ordering::Relaxed) < requests {
                        let t = Instant::now();
                        let status = match agent
                            .post(&endpoint)
                            .header("Content-Type", "application/json")
                            .send(body.as_bytes())
                        {
                            Ok(mut r) => {
                                let _ = r.body_mut().read_to_vec();
                                r.status().as_u16()
                            }
                            Err(_) => 0,
                        };
                        mine.push((status, t.elapsed()));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let wall = started.elapsed().as_secs_f64();
    let mut latencies: Vec<f64> = results.iter().map(|r| r.1.as_secs_f64() * 1e3).collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((p * latencies.len() as f64) as usize).min(latencies.len() - 1)];
    let mut statuses = std::collections::BTreeMap::new();
    for (s, _) in &results {
        *statuses.entry(s.to_string()).or_insert(0usize) += 1;
    }
    println!(
        "{{\"requests\":{},\"clients\":{clients},\"seconds\":{wall:.3},\"requests_per_sec\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"statuses\":{:?}}}",
        results.len(),
        results.len() as f64 / wall,
        pct(0.50),
        pct(0.99),
        statuses
    );
}
