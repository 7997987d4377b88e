//! Prometheus metrics, kept in a few locked maps. Labels come from a fixed set (the matched route,
//! never the raw path), so the maps stay small.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; 14],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, &'static str, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    uploads: Mutex<BTreeMap<&'static str, u64>>,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    pub upload_bytes: AtomicU64,
    pub download_bytes: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
}

impl Metrics {
    pub fn observe(&self, route: &str, method: &'static str, status: u16, seconds: f64) {
        *self.requests.lock().entry((route.to_string(), method, status)).or_default() += 1;
        let mut lat = self.latency.lock();
        let h = lat.entry(route.to_string()).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    /// `result` is one of `accepted`, `identical`, `rejected`.
    pub fn upload(&self, result: &'static str, bytes: u64) {
        *self.uploads.lock().entry(result).or_default() += 1;
        if result == "accepted" {
            self.upload_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// `limit` is the `[http]` cap that refused a connection or request.
    pub fn connection_refused(&self, limit: &'static str) {
        *self.refused.lock().entry(limit).or_default() += 1;
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP palisade_http_requests_total HTTP requests by route, method and status.\n# TYPE palisade_http_requests_total counter\n",
        );
        for ((route, method, status), n) in self.requests.lock().iter() {
            let _ = writeln!(out, "palisade_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}");
        }
        out.push_str("# HELP palisade_http_request_duration_seconds Request latency by route.\n# TYPE palisade_http_request_duration_seconds histogram\n");
        for (route, h) in self.latency.lock().iter() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(out, "palisade_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {}", h.counts[i]);
            }
            let _ = writeln!(out, "palisade_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "palisade_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum);
            let _ = writeln!(out, "palisade_http_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
        }
        out.push_str("# HELP palisade_uploads_total Uploads by result.\n# TYPE palisade_uploads_total counter\n");
        for (result, n) in self.uploads.lock().iter() {
            let _ = writeln!(out, "palisade_uploads_total{{result=\"{result}\"}} {n}");
        }
        out.push_str(
            "# HELP palisade_http_refused_total Connections (or, behind a proxy, requests) refused by a cap, by cap.\n# TYPE palisade_http_refused_total counter\n",
        );
        for (limit, n) in self.refused.lock().iter() {
            let _ = writeln!(out, "palisade_http_refused_total{{limit=\"{limit}\"}} {n}");
        }
        for (name, help, v) in [
            ("palisade_upload_bytes_total", "Bytes of accepted uploads.", &self.upload_bytes),
            ("palisade_download_bytes_total", "Bytes of files served.", &self.download_bytes),
            ("palisade_index_cache_hits_total", "Index pages and JSON API answers served from memory.", &self.cache_hits),
            ("palisade_index_cache_misses_total", "Index pages and JSON API answers rendered.", &self.cache_misses),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        }
        out
    }
}
