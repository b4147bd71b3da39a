//! Metrics in the Prometheus text exposition format, without a metrics crate: counters and
//! gauges are atomics, labelled series live in small mutex-guarded maps, histograms have fixed
//! buckets. Labels stay low-cardinality: routes (never paths), status classes, models only from
//! `CODEX_MODELS` (anything else is `other`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::quota::QuotaSnapshot;
use crate::token_cache::Readiness;

/// Histogram bucket bounds in seconds (latency of a proxied model call spans ms to minutes).
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// What one finished request contributes.
#[derive(Debug, Clone)]
pub struct RequestObservation<'a> {
    /// The route name.
    pub route: &'static str,
    /// The HTTP status sent (0 when none).
    pub status: u16,
    /// Whether the answer streamed.
    pub streamed: bool,
    /// The model asked for, when known.
    pub model: Option<&'a str>,
    /// Whole request time.
    pub duration: Duration,
    /// Time to the first byte of the answer, when one was sent.
    pub first_byte: Option<Duration>,
    /// Whether the client went away and the upstream call was cancelled.
    pub client_disconnected: bool,
}

type RequestKey = (&'static str, &'static str, bool, String);

/// All metrics of one proxy.
#[derive(Debug, Default)]
pub struct Metrics {
    models: Vec<String>,
    requests: Mutex<BTreeMap<RequestKey, u64>>,
    durations: Mutex<BTreeMap<&'static str, Histogram>>,
    first_bytes: Mutex<BTreeMap<&'static str, Histogram>>,
    upstream_responses: Mutex<BTreeMap<String, u64>>,
    quota: Mutex<Option<QuotaSnapshot>>,
    /// Upstream retries (5xx or transport failures before the first byte).
    pub upstream_retries: AtomicU64,
    /// Requests waiting in the queue.
    pub queued: AtomicUsize,
    /// Workers serving a request.
    pub busy_workers: AtomicUsize,
    /// Requests refused with 503 because workers and queue were full.
    pub overloaded: AtomicU64,
    /// Streams being written to clients.
    pub open_streams: AtomicUsize,
    /// Clients that went away mid-stream (the upstream call was cancelled).
    pub client_disconnects: AtomicU64,
    /// Body bytes sent to clients.
    pub bytes_relayed: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}

impl Metrics {
    /// Metrics whose `model` label accepts the configured models.
    pub fn new(models: &[String]) -> Self {
        Metrics {
            models: models.to_vec(),
            ..Default::default()
        }
    }

    /// Records a finished request.
    pub fn observe_request(&self, observation: &RequestObservation<'_>) {
        let model = match observation.model {
            None => "-".to_string(),
            Some(model) if self.models.iter().any(|m| m == model) => model.to_string(),
            Some(_) => "other".to_string(),
        };
        let key = (
            observation.route,
            status_class(observation.status),
            observation.streamed,
            model,
        );
        *lock(&self.requests).entry(key).or_default() += 1;
        lock(&self.durations)
            .entry(observation.route)
            .or_default()
            .observe(observation.duration.as_secs_f64());
        if let Some(first_byte) = observation.first_byte {
            lock(&self.first_bytes)
                .entry(observation.route)
                .or_default()
                .observe(first_byte.as_secs_f64());
        }
        if observation.client_disconnected {
            self.client_disconnects.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records an upstream answer (`Some(status)`) or a transport failure (`None`).
    pub fn observe_upstream(&self, status: Option<u16>) {
        let key = status.map_or_else(|| "transport_error".to_string(), |s| s.to_string());
        *lock(&self.upstream_responses).entry(key).or_default() += 1;
    }

    /// Keeps the latest rate-limit snapshot.
    pub fn set_quota(&self, snapshot: QuotaSnapshot) {
        *lock(&self.quota) = Some(snapshot);
    }

    /// The latest rate-limit snapshot.
    pub fn quota(&self) -> Option<QuotaSnapshot> {
        lock(&self.quota).clone()
    }

    /// The exposition text.
    pub fn render(&self, credentials: &Readiness) -> String {
        let mut out = String::with_capacity(4096);
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            );
        };
        let gauge = |out: &mut String, name: &str, help: &str, value: f64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            );
        };

        out.push_str("# HELP codex_proxy_requests_total Requests answered, by route, status class, streaming and model.\n# TYPE codex_proxy_requests_total counter\n");
        for ((route, class, stream, model), value) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "codex_proxy_requests_total{{route=\"{}\",status=\"{class}\",stream=\"{stream}\",model=\"{}\"}} {value}",
                escape(route),
                escape(model)
            );
        }
        render_histograms(
            &mut out,
            "codex_proxy_request_duration_seconds",
            "Time from accepting a request to its last byte, by route.",
            &lock(&self.durations),
        );
        render_histograms(
            &mut out,
            "codex_proxy_time_to_first_byte_seconds",
            "Time from accepting a request to the first byte of its answer, by route.",
            &lock(&self.first_bytes),
        );

        out.push_str("# HELP codex_proxy_upstream_responses_total Upstream answers by HTTP status (transport_error: no answer).\n# TYPE codex_proxy_upstream_responses_total counter\n");
        for (status, value) in lock(&self.upstream_responses).iter() {
            let _ = writeln!(
                out,
                "codex_proxy_upstream_responses_total{{status=\"{}\"}} {value}",
                escape(status)
            );
        }
        counter(
            &mut out,
            "codex_proxy_upstream_retries_total",
            "Upstream attempts repeated after a 5xx or transport failure.",
            self.upstream_retries.load(Ordering::Relaxed),
        );

        out.push_str("# HELP codex_proxy_token_refreshes_total Access-token refreshes by outcome.\n# TYPE codex_proxy_token_refreshes_total counter\n");
        for (outcome, value) in [
            ("ok", credentials.refresh_ok),
            ("transient_failure", credentials.refresh_transient),
            ("permanent_failure", credentials.refresh_permanent),
        ] {
            let _ = writeln!(
                out,
                "codex_proxy_token_refreshes_total{{outcome=\"{outcome}\"}} {value}"
            );
        }
        gauge(
            &mut out,
            "codex_proxy_credentials_usable",
            "1 when usable upstream credentials are held.",
            if credentials.usable { 1.0 } else { 0.0 },
        );
        if let Some(expires_at) = credentials.expires_at {
            gauge(
                &mut out,
                "codex_proxy_access_token_expires_at_seconds",
                "Expiry of the access token, Unix seconds.",
                expires_at as f64,
            );
        }

        gauge(
            &mut out,
            "codex_proxy_queue_depth",
            "Requests waiting for a worker.",
            self.queued.load(Ordering::Relaxed) as f64,
        );
        gauge(
            &mut out,
            "codex_proxy_busy_workers",
            "Workers serving a request.",
            self.busy_workers.load(Ordering::Relaxed) as f64,
        );
        counter(
            &mut out,
            "codex_proxy_overloaded_total",
            "Requests refused with 503 because workers and queue were full.",
            self.overloaded.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "codex_proxy_open_streams",
            "Event streams being written to clients.",
            self.open_streams.load(Ordering::Relaxed) as f64,
        );
        counter(
            &mut out,
            "codex_proxy_client_disconnects_total",
            "Clients that went away mid-stream; their upstream call was cancelled.",
            self.client_disconnects.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "codex_proxy_bytes_relayed_total",
            "Response body bytes sent to clients.",
            self.bytes_relayed.load(Ordering::Relaxed),
        );

        if let Some(quota) = self.quota() {
            for (name, help) in [
                (
                    "codex_proxy_rate_limit_used_percent",
                    "Share of the subscription's rate-limit window used, from the latest x-codex-* headers.",
                ),
                (
                    "codex_proxy_rate_limit_window_minutes",
                    "Length of the rate-limit window, minutes.",
                ),
                (
                    "codex_proxy_rate_limit_reset_at_seconds",
                    "When the rate-limit window resets, Unix seconds.",
                ),
            ] {
                let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n");
                for (window, values) in
                    [("primary", &quota.primary), ("secondary", &quota.secondary)]
                {
                    let value = match name {
                        "codex_proxy_rate_limit_used_percent" => values.used_percent,
                        "codex_proxy_rate_limit_window_minutes" => {
                            values.window_minutes.map(|v| v as f64)
                        }
                        _ => values.reset_at.map(|v| v as f64),
                    };
                    if let Some(value) = value {
                        let _ = writeln!(out, "{name}{{window=\"{window}\"}} {value}");
                    }
                }
            }
            gauge(
                &mut out,
                "codex_proxy_rate_limit_observed_at_seconds",
                "When the latest rate-limit snapshot was seen, Unix seconds.",
                quota.observed_at as f64,
            );
        }
        out
    }
}

fn render_histograms(
    out: &mut String,
    name: &str,
    help: &str,
    series: &BTreeMap<&'static str, Histogram>,
) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} histogram\n");
    for (route, histogram) in series {
        let route = escape(route);
        for (bound, count) in BUCKETS.iter().zip(histogram.counts.iter()) {
            let _ = writeln!(
                out,
                "{name}_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
            histogram.count
        );
        let _ = writeln!(out, "{name}_sum{{route=\"{route}\"}} {}", histogram.sum);
        let _ = writeln!(out, "{name}_count{{route=\"{route}\"}} {}", histogram.count);
    }
}

/// Escapes a label value.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(
        route: &'static str,
        status: u16,
        seconds: f64,
        model: Option<&'static str>,
    ) -> RequestObservation<'static> {
        RequestObservation {
            route,
            status,
            streamed: false,
            model,
            duration: Duration::from_secs_f64(seconds),
            first_byte: Some(Duration::from_secs_f64(seconds / 2.0)),
            client_disconnected: false,
        }
    }

    #[test]
    fn renders_counters_histograms_and_normalised_models() {
        let metrics = Metrics::new(&["gpt-5.5".to_string()]);
        metrics.observe_request(&observation("/v1/responses", 200, 0.02, Some("gpt-5.5")));
        metrics.observe_request(&observation(
            "/v1/responses",
            200,
            3.0,
            Some("made-up-model"),
        ));
        metrics.observe_request(&observation("/healthz", 200, 0.001, None));
        metrics.observe_upstream(Some(200));
        metrics.observe_upstream(None);
        let text = metrics.render(&Readiness::default());
        assert!(text.contains("codex_proxy_requests_total{route=\"/v1/responses\",status=\"2xx\",stream=\"false\",model=\"gpt-5.5\"} 1"));
        assert!(text.contains("model=\"other\"} 1"));
        assert!(!text.contains("made-up-model"));
        assert!(text.contains(
            "codex_proxy_request_duration_seconds_bucket{route=\"/v1/responses\",le=\"0.025\"} 1"
        ));
        assert!(text.contains(
            "codex_proxy_request_duration_seconds_bucket{route=\"/v1/responses\",le=\"5\"} 2"
        ));
        assert!(text.contains(
            "codex_proxy_request_duration_seconds_bucket{route=\"/v1/responses\",le=\"+Inf\"} 2"
        ));
        assert!(
            text.contains("codex_proxy_upstream_responses_total{status=\"transport_error\"} 1")
        );
        assert!(
            !text.contains("codex_proxy_rate_limit_used_percent"),
            "no quota gauges before a snapshot"
        );
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
