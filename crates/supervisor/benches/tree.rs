//! Benchmarks: starting a tree of 1,000 runnables until every one is Healthy (and until the tree
//! has settled), and the restart latency of a dead node with a zero backoff.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use supervisor::{
    BackoffParams, Canceled, Context, MIN_INITIAL_INTERVAL, Options, RandomSource, RestartPolicy,
    RunResult, Runnable, Signal, Supervisor,
};
use tokio::sync::{Notify, mpsc};

fn main() {
    divan::main();
}

/// A random source that always returns 0 (see the restart-latency benchmark).
#[derive(Debug)]
struct ZeroRandom;

impl RandomSource for ZeroRandom {
    fn next_f64(&mut self) -> f64 {
        0.0
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A leaf: Healthy, then wait for cancellation.
fn leaf(healthy: Arc<(AtomicUsize, Notify)>) -> Runnable {
    Runnable::new(move |ctx: Context| {
        let healthy = healthy.clone();
        async move {
            ctx.signal(Signal::Healthy)?;
            if healthy.0.fetch_add(1, Ordering::SeqCst) + 1 == 1000 {
                healthy.1.notify_one();
            }
            ctx.cancelled().await;
            RunResult::Err(Canceled.into())
        }
    })
}

/// root (1) + 9 groups of a parent (9) and 110 leaves (990) = 1,000 runnables.
fn tree(healthy: Arc<(AtomicUsize, Notify)>) -> Runnable {
    Runnable::new(move |ctx: Context| {
        let healthy = healthy.clone();
        async move {
            for p in 0..9 {
                let h = healthy.clone();
                ctx.run(
                    format!("p{p}"),
                    Runnable::new(move |ctx: Context| {
                        let h = h.clone();
                        async move {
                            ctx.run_group((0..110).map(|i| (format!("l{i}"), leaf(h.clone()))))?;
                            ctx.signal(Signal::Healthy)?;
                            if h.0.fetch_add(1, Ordering::SeqCst) + 1 == 1000 {
                                h.1.notify_one();
                            }
                            ctx.cancelled().await;
                            RunResult::Err(Canceled.into())
                        }
                    }),
                )?;
            }
            ctx.signal(Signal::Healthy)?;
            if healthy.0.fetch_add(1, Ordering::SeqCst) + 1 == 1000 {
                healthy.1.notify_one();
            }
            ctx.cancelled().await;
            RunResult::Err(Canceled.into())
        }
    })
}

/// Starts a 1,000-runnable tree per sample; the previous sample's tree is shut down (and waited
/// for) while the next input is prepared, outside the measured section.
fn bench_start(b: divan::Bencher, settle: bool) {
    let rt = runtime();
    let previous: RefCell<Option<Supervisor>> = RefCell::new(None);
    b.with_inputs(|| {
        if let Some(s) = previous.borrow_mut().take() {
            rt.block_on(async {
                s.shutdown();
                s.wait_stopped().await;
            });
        }
        Arc::new((AtomicUsize::new(0), Notify::new()))
    })
    .bench_local_values(|healthy| {
        let s = rt.block_on(async {
            let s = Supervisor::new(tree(healthy.clone()), Options::new())
                .await
                .expect("start");
            if settle {
                s.wait_settled().await.expect("settle");
            } else {
                healthy.1.notified().await;
            }
            s
        });
        *previous.borrow_mut() = Some(s);
    });
    if let Some(s) = previous.borrow_mut().take() {
        rt.block_on(async {
            s.shutdown();
            s.wait_stopped().await;
        });
    }
}

/// Time from `Supervisor::new` until all 1,000 runnables signalled Healthy.
#[divan::bench(sample_count = 20, sample_size = 1)]
fn start_1000_until_all_healthy(b: divan::Bencher) {
    bench_start(b, false);
}

/// Time from `Supervisor::new` until the settle detector reports the tree quiet (this includes
/// its fixed 51 ms quiet period).
#[divan::bench(sample_count = 20, sample_size = 1)]
fn start_1000_until_settled(b: divan::Bencher) {
    bench_start(b, true);
}

/// Time from a node's failure until its next incarnation runs, with a zero backoff.
#[divan::bench(sample_count = 200)]
fn restart_latency_after_death(b: divan::Bencher) {
    let rt = runtime();
    let (die_tx, die_rx) = mpsc::unbounded_channel::<()>();
    let die_rx = Arc::new(tokio::sync::Mutex::new(die_rx));
    let (started_tx, mut started) = mpsc::unbounded_channel::<()>();
    let worker = Runnable::new(move |ctx: Context| {
        let (die_rx, started_tx) = (die_rx.clone(), started_tx.clone());
        async move {
            let _ = started_tx.send(());
            let mut rx = die_rx.lock().await;
            tokio::select! {
                _ = rx.recv() => RunResult::Err("dies".into()),
                _ = ctx.cancelled() => RunResult::Err(Canceled.into()),
            }
        }
    });
    // Zero backoff from valid parameters: with a randomization factor of 1 and a random source
    // that always returns 0, every delay is cur·(1 − 1) = 0.
    let zero = BackoffParams {
        initial_interval: MIN_INITIAL_INTERVAL,
        randomization_factor: 1.0,
        ..BackoffParams::default()
    };
    let s = rt.block_on(async {
        let s = Supervisor::new(
            move |ctx: Context| {
                let worker = worker.clone();
                async move {
                    ctx.run("worker", worker)?;
                    ctx.signal(Signal::Healthy)?;
                    ctx.signal(Signal::Done)?;
                    RunResult::Ok(())
                }
            },
            Options::new()
                .restart_policy(RestartPolicy::new(zero).expect("valid parameters"))
                .random_source(|| Box::new(ZeroRandom)),
        )
        .await
        .expect("start");
        started.recv().await;
        s
    });
    b.bench_local(|| {
        rt.block_on(async {
            let _ = die_tx.send(());
            started.recv().await;
        })
    });
    rt.block_on(async {
        s.shutdown();
        s.wait_stopped().await;
    });
}
