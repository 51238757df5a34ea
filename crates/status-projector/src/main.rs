use clap::Parser as _;
use orderflow_service::{ShutdownSignal, telemetry};
use status_projector::{NAME, Settings, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    let _telemetry = telemetry::init(NAME, settings.common.log_format)?;
    run(settings, ShutdownSignal::install()).await
}
