//! `devmgr run`.

use std::process::ExitCode;
use std::time::Instant;

use devmgr::config::Config;
use devmgr::subsystem::{self, RunOptions};
use kmod_loader::load::LoaderMsg;
use ractor::{ActorRef, call_t};
use supervisor::{Context, Options, Signal, Supervisor};

use crate::RunArgs;

pub(crate) fn run(args: RunArgs) -> ExitCode {
    let config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(config) => config,
            Err(err) => {
                eprintln!("devmgr: bad configuration: {err}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("devmgr: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config, args))
}

async fn serve(config: Config, args: RunArgs) -> ExitCode {
    let started = Instant::now();
    let options = RunOptions {
        dry_run: args.dry_run,
        instance: String::new(),
    };
    let (devmgr, mut observer) = subsystem::runnable(config, options);
    let root = move |ctx: Context| {
        let devmgr = devmgr.clone();
        async move {
            ctx.run("devmgr", devmgr)?;
            ctx.signal(Signal::Healthy)?;
            ctx.signal(Signal::Done)?;
            Ok(())
        }
    };
    let tree = match Supervisor::new(root, Options::new()).await {
        Ok(tree) => tree,
        Err(err) => {
            eprintln!("devmgr: cannot start the supervision tree: {err}");
            return ExitCode::FAILURE;
        }
    };
    let settled = tokio::select! {
        report = observer.settled.wait_for(Option::is_some) => report.ok().and_then(|r| r.clone()),
        _ = shutdown_signal() => None,
    };
    if let Some(report) = &settled {
        let loader = ActorRef::<LoaderMsg>::where_is(observer.loader.clone());
        let loads = match &loader {
            Some(loader) => {
                let _ = call_t!(loader, LoaderMsg::WaitIdle, 600_000);
                call_t!(loader, LoaderMsg::Stats, 10_000).ok()
            }
            None => None,
        };
        println!(
            "devmgr: settled after {:?}: {} devices, {} replayed, {} answered, {} gone, {} failed, {} unanswered",
            started.elapsed(),
            report.devices,
            report.written,
            report.answered,
            report.gone,
            report.failed.len(),
            report.unanswered.len()
        );
        match loads {
            Some(s) => println!(
                "devmgr: loader{}: {} events with a modalias, {} unresolved, {} plans, {} loaded, {} already loaded, failed {:?}, {} skipped (no device before)",
                if args.dry_run { " (dry run)" } else { "" },
                s.events,
                s.unresolved,
                s.plans,
                s.loads.loaded,
                s.loads.already_loaded,
                s.loads.failed,
                s.skipped_no_device
            ),
            None => println!("devmgr: module loading disabled (see the log)"),
        }
        if !args.exit_when_settled {
            shutdown_signal().await;
        }
    }
    tree.shutdown();
    tree.wait_stopped().await;
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
