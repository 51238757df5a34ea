//! `/healthz`, `/readyz` and `/metrics` on their own address: with
//! `OPS_ADDR` set, order-command and order-query serve them only there, and
//! their API port answers API routes only (the port customers reach does
//! not hand out metrics, and the ops port serves no API).

use system_tests::{Pipeline, ServiceProcess, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apis_serve_ops_endpoints_only_on_the_ops_address() {
    let pipeline = Pipeline::fresh("ops_addr").await;
    let http = reqwest::Client::new();
    // (service, its API address setting, an API route, what GET answers
    // there: the command API's /products takes POST only)
    for (name, addr, api_route, api_status) in [
        ("order-command", "COMMAND_HTTP_ADDR", "/products", 405),
        ("order-query", "QUERY_HTTP_ADDR", "/orders", 200),
    ] {
        let (api_port, ops_port) = (free_port(), free_port());
        let mut env = pipeline.env(name);
        env.extend(pipeline.access.service_env(
            name,
            &pipeline.write.url,
            &pipeline.read.url,
            &orderflow_testkit::redis_url(),
        ));
        env.push((addr, format!("127.0.0.1:{api_port}")));
        env.push(("OPS_ADDR", format!("127.0.0.1:{ops_port}")));
        // `base` is the ops address: that is where readiness is asked.
        let mut process = ServiceProcess::start(name, ops_port, &env);
        process.ready(std::time::Duration::from_secs(60)).await;
        let api = format!("http://127.0.0.1:{api_port}");
        let status = |url: String| {
            let http = http.clone();
            async move {
                http.get(url)
                    .send()
                    .await
                    .expect("request")
                    .status()
                    .as_u16()
            }
        };
        for path in ["/healthz", "/readyz", "/metrics"] {
            assert_eq!(
                status(format!("{}{path}", process.base)).await,
                200,
                "{name} ops {path}"
            );
            let on_api = status(format!("{api}{path}")).await;
            assert_eq!(
                on_api, 404,
                "{name} answers {path} on its API port with {on_api}"
            );
        }
        let metrics = http
            .get(format!("{}/metrics", process.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        assert!(
            metrics.contains("http_requests_total"),
            "{name} /metrics: {metrics}"
        );
        assert_eq!(
            status(format!("{api}{api_route}")).await,
            api_status,
            "{name} API {api_route}"
        );
        assert_eq!(
            status(format!("{}{api_route}", process.base)).await,
            404,
            "{name} serves its API on the ops port"
        );
    }
}
