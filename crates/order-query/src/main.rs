use clap::Parser as _;
use order_query::{NAME, Settings, run};
use orderflow_service::{ShutdownSignal, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    let _telemetry = telemetry::init(NAME, settings.common.log_format)?;
    run(settings, ShutdownSignal::install()).await
}
