//! A parent supervisor running two subsystems: `stable` keeps running while `flaky` fails,
//! is restarted with backoff (from a TOML restart policy) and finally comes up.
//!
//! Run with `cargo run -p supervisor --example two_subsystems`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use supervisor::{
    Canceled, Context, Metrics, NodeState, Options, RestartPolicy, RunResult, Signal, Supervisor,
};

/// Prints every state change with the time since start.
struct Print(Instant);

impl Metrics for Print {
    fn notify_node_state(&self, dn: &str, state: NodeState) {
        println!("{:>7.3}s  {dn:<12} {state}", self.0.elapsed().as_secs_f64());
    }
}

const POLICY: &str = r#"
[defaults]
initial_interval = "500ms"

[overrides."root.flaky"]
initial_interval = "200ms"
multiplier = 2.0
randomization_factor = 0.0
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let policy = RestartPolicy::from_toml_str(POLICY)?;
    let stable_runs = Arc::new(AtomicUsize::new(0));
    let flaky_runs = Arc::new(AtomicUsize::new(0));

    let stable = {
        let runs = stable_runs.clone();
        move |ctx: Context| {
            runs.fetch_add(1, Ordering::SeqCst);
            async move {
                ctx.signal(Signal::Healthy)?;
                let mut tick = tokio::time::interval(Duration::from_millis(400));
                loop {
                    tokio::select! {
                        _ = tick.tick() => ctx.logger().info("tick"),
                        _ = ctx.cancelled() => return RunResult::Err(Canceled.into()),
                    }
                }
            }
        }
    };
    let flaky = {
        let runs = flaky_runs.clone();
        move |ctx: Context| {
            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n <= 3 {
                    return RunResult::Err(format!("attempt {n}: device not ready").into());
                }
                ctx.signal(Signal::Healthy)?;
                ctx.cancelled().await;
                RunResult::Err(Canceled.into())
            }
        }
    };

    let sup = Supervisor::new(
        move |ctx: Context| {
            let (stable, flaky) = (stable.clone(), flaky.clone());
            async move {
                // Separate groups: a death of `flaky` does not cancel `stable`.
                ctx.run("stable", stable)?;
                ctx.run("flaky", flaky)?;
                ctx.signal(Signal::Healthy)?;
                ctx.signal(Signal::Done)?;
                RunResult::Ok(())
            }
        },
        Options::new()
            .restart_policy(policy)
            .metrics(Arc::new(Print(start))),
    )
    .await?;

    // flaky dies three times, waiting 200 ms, 400 ms and 800 ms before its restarts.
    while sup.node_state("root.flaky") != Some(NodeState::Healthy) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "{:>7.3}s  flaky is up after {} runs; stable ran {} time(s)",
        start.elapsed().as_secs_f64(),
        flaky_runs.load(Ordering::SeqCst),
        stable_runs.load(Ordering::SeqCst),
    );
    println!("live: {:?}", sup.live_runnables());
    sup.shutdown();
    sup.wait_stopped().await;
    println!("{:>7.3}s  shut down", start.elapsed().as_secs_f64());
    Ok(())
}
