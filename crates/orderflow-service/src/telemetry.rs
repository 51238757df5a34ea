//! Logs, traces and metrics, set up the same way in every service.
//!
//! Traces leave the process only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set
//! (OTLP over HTTP/protobuf); the exporter reads the standard `OTEL_*`
//! variables itself. Trace context exists either way: spans get W3C trace
//! and span ids from a tracer provider that simply has no exporter when
//! none is configured, so every event written to the outbox carries a
//! `traceparent` that subscribers and log searches can correlate on. The
//! W3C propagator is installed globally so a trace started by an HTTP
//! request is carried through the outbox and Kafka headers into the
//! projectors.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// Default log filter when `RUST_LOG` is not set.
const DEFAULT_FILTER: &str = "info,sqlx=warn,rdkafka=warn,h2=warn,hyper=warn,reqwest=warn";

/// Latency buckets (seconds) for every histogram: 1 ms to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Flushes exported spans when dropped; keep it alive for the life of `main`.
#[derive(Debug)]
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("telemetry: flushing spans failed: {err}");
        }
    }
}

/// Installs the tracing subscriber, the OTLP exporter (when configured) and
/// the Prometheus recorder.
///
/// Safe to call more than once (tests start several services in one
/// process): only the first call installs the subscriber.
pub fn init(service_name: &'static str, format: LogFormat) -> anyhow::Result<TelemetryGuard> {
    init_to(service_name, format, std::io::stdout)
}

/// As [`init`], for a command-line tool: logs go to standard error, so
/// standard output carries only the command's answer (a table or JSON a
/// script parses).
pub fn init_cli(service_name: &'static str, format: LogFormat) -> anyhow::Result<TelemetryGuard> {
    init_to(service_name, format, std::io::stderr)
}

fn init_to<W>(
    service_name: &'static str,
    format: LogFormat,
    writer: W,
) -> anyhow::Result<TelemetryGuard>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    metrics_handle();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    let provider = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.trim().is_empty() => otlp_provider(service_name)?,
        _ => SdkTracerProvider::builder()
            .with_resource(resource(service_name))
            .build(),
    };
    opentelemetry::global::set_tracer_provider(provider.clone());
    // Spans (and events) at info and above always reach the trace layer,
    // whatever RUST_LOG says: the log filter decides what is printed, not
    // whether events carry a trace context. A level filter, not a
    // `filter_fn`: with the latter, a span the log filter also enabled lost
    // its trace context (no traceparent at the default RUST_LOG=info).
    let otel_layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service_name))
        .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    let provider = Some(provider);

    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Each layer has a filter of its own.
    let fmt_layer = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_target(true)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_filter(filter)
            .boxed(),
    };
    // An error here means a subscriber is already installed: fine in tests.
    let _ = tracing_subscriber::registry()
        .with(fmt_layer)
        .with(otel_layer)
        .try_init();

    Ok(TelemetryGuard { provider })
}

fn otlp_provider(service_name: &'static str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| anyhow::anyhow!("building the OTLP span exporter: {e}"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource(service_name))
        .build())
}

fn resource(service_name: &'static str) -> opentelemetry_sdk::Resource {
    opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name)
        .build()
}

/// The W3C `traceparent` of the current span (`None` outside any span).
pub fn current_traceparent() -> Option<String> {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let context = tracing::Span::current().context();
    let mut carrier = std::collections::HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut carrier));
    carrier.remove("traceparent")
}

/// Makes `span` a child of the trace in `traceparent` (a request header or
/// a Kafka header), so one trace runs across processes. A missing or
/// malformed value leaves `span` the root of a new trace.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier =
        std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let context = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

/// The request span of every HTTP server: method and path, continuing the
/// caller's `traceparent` when it sends one.
pub fn http_span<B>(request: &http::Request<B>) -> tracing::Span {
    let span = tracing::info_span!(
        "http.request",
        method = %request.method(),
        path = %request.uri().path(),
    );
    let traceparent = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok());
    continue_trace(&span, traceparent);
    span
}

/// The process-wide Prometheus recorder; installed on first use.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .expect("latency buckets are non-empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (a test harness); then
        // this handle renders only what it recorded, which is still valid.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}
