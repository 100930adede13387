//! Runs the fake VAN and fake LiveVox with demo data until interrupted, for local demos.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use callsync_tests::fake_livevox::{FakeLiveVox, LiveVoxData};
use callsync_tests::fake_van::{FakeVan, VanData};

const USAGE: &str = "\
Usage: fakes [--van-port PORT] [--livevox-port PORT] [--today YYYY-MM-DD]

Starts the fake VAN and fake LiveVox on 127.0.0.1 with demo data and runs until
SIGINT or SIGTERM. Port 0 picks a free port.

  --van-port PORT       fake VAN port (default 7001)
  --livevox-port PORT   fake LiveVox port (default 7002)
  --today YYYY-MM-DD    LiveVox's today (UTC); demo calls are on the day before
                        (default: the current UTC date)
  -h, --help            print this help";

#[derive(Debug)]
struct Options {
    van_port: u16,
    livevox_port: u16,
    today: Option<jiff::civil::Date>,
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        van_port: 7001,
        livevox_port: 7002,
        today: None,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--van-port" => {
                let raw = value("--van-port")?;
                options.van_port = raw.parse().map_err(|_| format!("bad port: {raw}"))?;
            }
            "--livevox-port" => {
                let raw = value("--livevox-port")?;
                options.livevox_port = raw.parse().map_err(|_| format!("bad port: {raw}"))?;
            }
            "--today" => {
                let raw = value("--today")?;
                options.today = Some(raw.parse().map_err(|_| format!("bad date: {raw}"))?);
            }
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    Ok(Some(options))
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let today = options.today.unwrap_or_else(|| {
        jiff::Timestamp::now()
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .date()
    });
    let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));

    let van = match FakeVan::start_on(loopback(options.van_port), VanData::demo()).await {
        Ok(van) => van,
        Err(e) => {
            eprintln!(
                "fake VAN could not listen on port {}: {e}",
                options.van_port
            );
            return ExitCode::FAILURE;
        }
    };
    let livevox =
        match FakeLiveVox::start_on(loopback(options.livevox_port), LiveVoxData::demo_for(today))
            .await
        {
            Ok(livevox) => livevox,
            Err(e) => {
                eprintln!(
                    "fake LiveVox could not listen on port {}: {e}",
                    options.livevox_port
                );
                return ExitCode::FAILURE;
            }
        };
    println!("fake VAN      {}", van.base_url());
    println!("fake LiveVox  {} (today {today})", livevox.base_url());

    shutdown_signal().await;
    println!(
        "stopping: VAN answered {} requests, LiveVox {}",
        van.requests().len(),
        livevox.requests().len()
    );
    ExitCode::SUCCESS
}
