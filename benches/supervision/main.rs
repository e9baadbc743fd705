//! Supervision overhead: the `supervisors` crate against bare ractor, side by side in one
//! process.
//!
//! Run with `cargo bench --bench supervision` (release). `BENCH_QUICK=1` shrinks every
//! iteration count about tenfold. Measured:
//!
//! 1. tell throughput, 1 sender -> 1 actor (`u64` increments, then a `call` to sync): a bare
//!    `Actor::spawn` actor against a supervised child (wrapped in `Instrumented`) fed through a
//!    counting `Handle`. Variants run interleaved (A B A B ...); medians are reported.
//! 2. restart latency, one_for_one, no backoff: from casting a "panic" message to the
//!    replacement answering a `call`. The replacement announces itself from `pre_start`
//!    (same mechanism in both variants). A second row finds the replacement the way a client
//!    would, by polling the supervisor until the child's actor id changes. Baseline: a
//!    hand-written ractor supervisor that `spawn_linked`s again on `ActorFailed`.
//! 3. spawn latency of a temporary dynamic child (`start_child`) against `Actor::spawn` from the
//!    caller, and against the fair baseline: a `call` to a hand-written supervisor that
//!    `spawn_linked`s the child.
//! 4. memory per idle actor: RSS delta over N idle actors, each variant in a fresh
//!    subprocess (so one variant does not reuse memory the other freed).
//! 5. one_for_all restart with 10 siblings: from the panic to all ten replaced and the failed
//!    one answering a `call`. Baseline: a hand-written one_for_all supervisor.
//!
//! The summary is printed as a table and as one JSON line prefixed `RESULT `. The 1-minute
//! load average is printed too: on the 2-core box any other work (a build just finished
//! counts) skews the tails; compare runs made at a load below ~0.5.

mod bare;
mod report;

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use ractor::{
    Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent, rpc::CallResult,
};
use serde_json::json;
use supervisors::{
    Backoff, ChildSpec, Handle, Intensity, Introspection, Restart, Strategy, SupervisorRef,
    SupervisorSpec,
};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use bare::*;
use report::*;
// ---------------------------------------------------------------------------------------------
// The actor under test, identical in every variant.

enum Msg {
    Inc(u64),
    Get(RpcReplyPort<u64>),
    Ping(RpcReplyPort<()>),
    Panic,
}

/// Where a freshly started incarnation reports itself: (sibling index, reference).
type Announce = UnboundedSender<(usize, ActorRef<Msg>)>;

struct Counter {
    idx: usize,
    announce: Option<Announce>,
}

impl Counter {
    fn plain() -> Self {
        Counter {
            idx: 0,
            announce: None,
        }
    }

    fn announcing(idx: usize, tx: &Announce) -> Self {
        Counter {
            idx,
            announce: Some(tx.clone()),
        }
    }
}

impl Actor for Counter {
    type Msg = Msg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, myself: ActorRef<Msg>, _: ()) -> Result<u64, ActorProcessingErr> {
        if let Some(tx) = &self.announce {
            let _ = tx.send((self.idx, myself));
        }
        Ok(0)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Msg>,
        msg: Msg,
        state: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Inc(n) => *state += n,
            Msg::Get(reply) => {
                let _ = reply.send(*state);
            }
            Msg::Ping(reply) => {
                let _ = reply.send(());
            }
            Msg::Panic => panic!("induced failure"),
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Throughput.

/// Sends `n` increments then syncs with a call; returns msgs/s.
async fn throughput_bare(n: u64) -> f64 {
    let (actor, join) = Actor::spawn(None, Counter::plain(), ()).await.unwrap();
    let t0 = Instant::now();
    for _ in 0..n {
        actor.cast(Msg::Inc(1)).unwrap();
    }
    let total = match actor.call(Msg::Get, None).await.unwrap() {
        CallResult::Success(v) => v,
        _ => panic!("sync call failed"),
    };
    let dt = t0.elapsed();
    assert_eq!(total, n);
    actor.stop(None);
    join.await.unwrap();
    n as f64 / dt.as_secs_f64()
}

async fn throughput_supervised(n: u64, run: usize) -> f64 {
    let introspection = Introspection::new();
    let spec = SupervisorSpec {
        children: vec![ChildSpec::actor("worker", || (Counter::plain(), ()))],
        ..SupervisorSpec::default()
    };
    let path = format!("tp{run}");
    let (root, join) = SupervisorRef::spawn_root(&path, spec, introspection.clone())
        .await
        .unwrap();
    let cell = root.child("worker").await.unwrap().unwrap();
    let stats = introspection.stats(&format!("{path}/worker")).unwrap();
    let handle: Handle<Msg> = Handle::from_cell(cell, stats);
    let t0 = Instant::now();
    for _ in 0..n {
        handle.cast(Msg::Inc(1)).unwrap();
    }
    let total = match handle.call(Msg::Get, None).await.unwrap() {
        CallResult::Success(v) => v,
        _ => panic!("sync call failed"),
    };
    let dt = t0.elapsed();
    assert_eq!(total, n);
    assert_eq!(handle.stats().mailbox_depth(), 0);
    assert_eq!(handle.stats().handled(), n + 1);
    root.shutdown().await;
    join.await.unwrap();
    n as f64 / dt.as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// 2. Restart latency, one_for_one.

async fn restart_supervised(n: usize, round: usize, out: &mut Samples) {
    let (tx, mut rx) = unbounded_channel();
    let spec = SupervisorSpec {
        strategy: Strategy::OneForOne,
        intensity: restart_intensity(),
        children: vec![announcing_spec("c", 0, &tx)],
    };
    let (root, join) = SupervisorRef::spawn_root(format!("r{round}"), spec, Introspection::new())
        .await
        .unwrap();
    let (_, mut current) = rx.recv().await.unwrap();
    for _ in 0..n {
        let t0 = Instant::now();
        current.cast(Msg::Panic).unwrap();
        let (_, next) = rx.recv().await.unwrap();
        ping(&next).await;
        out.push(t0.elapsed());
        current = next;
    }
    root.shutdown().await;
    join.await.unwrap();
}

async fn restart_bare(n: usize, out: &mut Samples) {
    let (tx, mut rx) = unbounded_channel();
    let args = HandArgs {
        n: 1,
        one_for_all: false,
        announce: Some(tx),
    };
    let (sup, join) = Actor::spawn(None, HandSup, args).await.unwrap();
    let (_, mut current) = rx.recv().await.unwrap();
    for _ in 0..n {
        let t0 = Instant::now();
        current.cast(Msg::Panic).unwrap();
        let (_, next) = rx.recv().await.unwrap();
        ping(&next).await;
        out.push(t0.elapsed());
        current = next;
    }
    sup.stop_and_wait(None, None).await.unwrap();
    join.await.unwrap();
}

/// Restart latency as a client sees it: poll the supervisor until the child's id changes.
async fn restart_poll_supervised(n: usize, round: usize, out: &mut Samples, polls: &mut u64) {
    let spec = SupervisorSpec {
        strategy: Strategy::OneForOne,
        intensity: restart_intensity(),
        children: vec![ChildSpec::actor("c", || (Counter::plain(), ())).backoff(Backoff::none())],
    };
    let (root, join) = SupervisorRef::spawn_root(format!("p{round}"), spec, Introspection::new())
        .await
        .unwrap();
    let mut current: ActorRef<Msg> = root.child("c").await.unwrap().unwrap().into();
    for _ in 0..n {
        let t0 = Instant::now();
        current.cast(Msg::Panic).unwrap();
        let next = loop {
            *polls += 1;
            if let Some(cell) = root.child("c").await.unwrap()
                && cell.get_id() != current.get_id()
            {
                break cell;
            }
        };
        let next: ActorRef<Msg> = next.into();
        ping(&next).await;
        out.push(t0.elapsed());
        current = next;
    }
    root.shutdown().await;
    join.await.unwrap();
}

async fn current_child(sup: &ActorRef<HandMsg>, i: usize) -> Option<ActorCell> {
    match sup.call(|r| HandMsg::Current(i, r), None).await.unwrap() {
        CallResult::Success(c) => c,
        _ => panic!("hand supervisor did not answer"),
    }
}

async fn restart_poll_bare(n: usize, out: &mut Samples, polls: &mut u64) {
    let args = HandArgs {
        n: 1,
        one_for_all: false,
        announce: None,
    };
    let (sup, join) = Actor::spawn(None, HandSup, args).await.unwrap();
    let mut current: ActorRef<Msg> = current_child(&sup, 0).await.unwrap().into();
    for _ in 0..n {
        let t0 = Instant::now();
        current.cast(Msg::Panic).unwrap();
        let next = loop {
            *polls += 1;
            if let Some(cell) = current_child(&sup, 0).await
                && cell.get_id() != current.get_id()
            {
                break cell;
            }
        };
        let next: ActorRef<Msg> = next.into();
        ping(&next).await;
        out.push(t0.elapsed());
        current = next;
    }
    sup.stop_and_wait(None, None).await.unwrap();
    join.await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// 3. Spawn latency.

async fn spawn_supervised(n: usize, round: usize, out: &mut Samples) -> Duration {
    let (root, join) = SupervisorRef::spawn_root(
        format!("s{round}"),
        SupervisorSpec::default(),
        Introspection::new(),
    )
    .await
    .unwrap();
    for i in 0..n {
        let spec = ChildSpec::actor(format!("job-{i}"), || (Counter::plain(), ()))
            .restart(Restart::Temporary);
        let t0 = Instant::now();
        let cell = root.start_child(spec).await.unwrap();
        out.push(t0.elapsed());
        assert!(cell.is_some());
    }
    let t0 = Instant::now();
    root.shutdown().await;
    join.await.unwrap();
    t0.elapsed()
}

async fn spawn_bare(n: usize, out: &mut Samples) -> Duration {
    let mut actors = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        let spawned = Actor::spawn(None, Counter::plain(), ()).await.unwrap();
        out.push(t0.elapsed());
        actors.push(spawned);
    }
    let t0 = Instant::now();
    for (actor, _) in &actors {
        actor.stop(None);
    }
    for (_, join) in actors {
        join.await.unwrap();
    }
    t0.elapsed()
}

/// The fair baseline of `start_child`: ask a hand-written supervisor to `spawn_linked`.
async fn spawn_hand(n: usize, out: &mut Samples) -> Duration {
    let args = HandArgs {
        n: 0,
        one_for_all: false,
        announce: None,
    };
    let (sup, join) = Actor::spawn(None, HandSup, args).await.unwrap();
    for _ in 0..n {
        let t0 = Instant::now();
        let reply = sup.call(HandMsg::Spawn, None).await.unwrap();
        out.push(t0.elapsed());
        assert!(matches!(reply, CallResult::Success(_)));
    }
    let t0 = Instant::now();
    sup.stop_and_wait(None, None).await.unwrap();
    join.await.unwrap();
    t0.elapsed()
}

// ---------------------------------------------------------------------------------------------
// 5. One_for_all restart with 10 siblings.

const SIBLINGS: usize = 10;

/// Waits until all `SIBLINGS` announced a new incarnation; returns them by index.
async fn collect_all(rx: &mut UnboundedReceiver<(usize, ActorRef<Msg>)>) -> Vec<ActorRef<Msg>> {
    let mut slots: Vec<Option<ActorRef<Msg>>> = (0..SIBLINGS).map(|_| None).collect();
    let mut seen = HashSet::new();
    while seen.len() < SIBLINGS {
        let (i, r) = rx.recv().await.unwrap();
        seen.insert(i);
        slots[i] = Some(r);
    }
    slots.into_iter().map(Option::unwrap).collect()
}

async fn one_for_all_supervised(n: usize, round: usize, out: &mut Samples) {
    let (tx, mut rx) = unbounded_channel();
    let spec = SupervisorSpec {
        strategy: Strategy::OneForAll,
        intensity: restart_intensity(),
        children: (0..SIBLINGS)
            .map(|i| announcing_spec(&format!("c{i}"), i, &tx))
            .collect(),
    };
    let (root, join) = SupervisorRef::spawn_root(format!("a{round}"), spec, Introspection::new())
        .await
        .unwrap();
    let mut current = collect_all(&mut rx).await;
    for it in 0..n {
        let victim = it % SIBLINGS;
        let t0 = Instant::now();
        current[victim].cast(Msg::Panic).unwrap();
        let next = collect_all(&mut rx).await;
        ping(&next[victim]).await;
        out.push(t0.elapsed());
        current = next;
    }
    root.shutdown().await;
    join.await.unwrap();
}

async fn one_for_all_bare(n: usize, out: &mut Samples) {
    let (tx, mut rx) = unbounded_channel();
    let args = HandArgs {
        n: SIBLINGS,
        one_for_all: true,
        announce: Some(tx),
    };
    let (sup, join) = Actor::spawn(None, HandSup, args).await.unwrap();
    let mut current = collect_all(&mut rx).await;
    for it in 0..n {
        let victim = it % SIBLINGS;
        let t0 = Instant::now();
        current[victim].cast(Msg::Panic).unwrap();
        let next = collect_all(&mut rx).await;
        ping(&next[victim]).await;
        out.push(t0.elapsed());
        current = next;
    }
    sup.stop_and_wait(None, None).await.unwrap();
    join.await.unwrap();
}

fn main() {
    if let Ok(arg) = std::env::var(MEM_CHILD_ENV) {
        let (kind, n) = arg.split_once(':').expect("kind:n");
        mem_child(kind, n.parse().expect("count"));
        return;
    }

    let started = Instant::now();
    let rt = runtime();
    let workers = rt.metrics().num_workers();
    let load_before = loadavg();
    println!(
        "supervision bench: {} mode, tokio multi_thread with {workers} workers, {} cpus, load {load_before:.2}",
        if quick() { "QUICK" } else { "full" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut rows = Vec::new();

    // 1. Throughput.
    let msgs = scaled(1_000_000) as u64;
    let runs = if quick() { 3 } else { 9 };
    let (mut sup_tp, mut bare_tp) = (Vec::new(), Vec::new());
    rt.block_on(async {
        // Warm-up, discarded.
        throughput_bare(msgs / 10).await;
        throughput_supervised(msgs / 10, 999).await;
        for run in 0..runs {
            // Alternate which goes first, so neither always runs on a warmer machine.
            if run % 2 == 0 {
                bare_tp.push(throughput_bare(msgs).await);
                sup_tp.push(throughput_supervised(msgs, run).await);
            } else {
                sup_tp.push(throughput_supervised(msgs, run).await);
                bare_tp.push(throughput_bare(msgs).await);
            }
        }
    });
    let fmt_runs = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{:.2}", x / 1e6))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("\n[1] throughput 1->1, {msgs} casts + 1 call, {runs} runs each (M msg/s)");
    println!("    supervised: {}", fmt_runs(&sup_tp));
    println!("    bare:       {}", fmt_runs(&bare_tp));
    let (sup_med, bare_med) = (median(&mut sup_tp), median(&mut bare_tp));
    // The runs are often bimodal (where the scheduler puts sender and actor), so the best
    // run of each is a second, placement-independent view.
    let best = |v: &[f64]| v.iter().copied().fold(f64::NAN, f64::max);
    println!(
        "    median ratio {:.2}x, best-run ratio {:.2}x",
        sup_med / bare_med,
        best(&sup_tp) / best(&bare_tp)
    );
    rows.push(Row {
        metric: "throughput 1->1 median".into(),
        unit: "msg/s",
        supervised: sup_med,
        bare: bare_med,
        target: ">= 0.9x bare".into(),
        ok: Some(sup_med / bare_med >= 0.9),
    });

    // 2. Restart latency, one_for_one.
    let prev_hook = silence_panics();
    let rounds = 4;
    let per_round = scaled(5_000) / rounds;
    let (mut sup_rs, mut bare_rs) = (Samples::default(), Samples::default());
    let (mut sup_poll, mut bare_poll) = (Samples::default(), Samples::default());
    let (mut sup_polls, mut bare_polls) = (0u64, 0u64);
    rt.block_on(async {
        let mut discard = Samples::default();
        restart_supervised(200.min(per_round), 999, &mut discard).await;
        restart_bare(200.min(per_round), &mut discard).await;
        for round in 0..rounds {
            if round % 2 == 0 {
                restart_bare(per_round, &mut bare_rs).await;
                restart_supervised(per_round, round, &mut sup_rs).await;
            } else {
                restart_supervised(per_round, round, &mut sup_rs).await;
                restart_bare(per_round, &mut bare_rs).await;
            }
        }
        let poll_per_round = per_round / 2;
        for round in 0..rounds {
            if round % 2 == 0 {
                restart_poll_bare(poll_per_round, &mut bare_poll, &mut bare_polls).await;
                restart_poll_supervised(poll_per_round, round, &mut sup_poll, &mut sup_polls).await;
            } else {
                restart_poll_supervised(poll_per_round, round, &mut sup_poll, &mut sup_polls).await;
                restart_poll_bare(poll_per_round, &mut bare_poll, &mut bare_polls).await;
            }
        }
    });
    println!("\n[2] restart one_for_one, panic -> replacement answers a call (announced)");
    println!("    supervised: {}", sup_rs.summary());
    println!("    bare:       {}", bare_rs.summary());
    println!("    ... found by polling the supervisor for the child's new id");
    println!(
        "    supervised: {}  ({:.1} polls/restart)",
        sup_poll.summary(),
        sup_polls as f64 / sup_poll.0.len() as f64
    );
    println!(
        "    bare:       {}  ({:.1} polls/restart)",
        bare_poll.summary(),
        bare_polls as f64 / bare_poll.0.len() as f64
    );
    for (q, name) in [(0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")] {
        let (s, b) = (sup_rs.pct(q), bare_rs.pct(q));
        rows.push(Row {
            metric: format!("restart 1:1 {name}"),
            unit: "µs",
            supervised: s,
            bare: b,
            target: if q == 0.99 {
                "p99 < 100 µs".into()
            } else {
                String::new()
            },
            ok: (q == 0.99).then_some(s < 100.0),
        });
    }
    for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
        rows.push(Row {
            metric: format!("restart 1:1 via child() {name}"),
            unit: "µs",
            supervised: sup_poll.pct(q),
            bare: bare_poll.pct(q),
            target: String::new(),
            ok: None,
        });
    }

    // 5. One_for_all restart (panic hook still silenced).
    let ofa_rounds = 2;
    let ofa_per_round = scaled(2_000) / ofa_rounds;
    let (mut sup_ofa, mut bare_ofa) = (Samples::default(), Samples::default());
    rt.block_on(async {
        let mut discard = Samples::default();
        one_for_all_supervised(50.min(ofa_per_round), 999, &mut discard).await;
        one_for_all_bare(50.min(ofa_per_round), &mut discard).await;
        for round in 0..ofa_rounds {
            if round % 2 == 0 {
                one_for_all_bare(ofa_per_round, &mut bare_ofa).await;
                one_for_all_supervised(ofa_per_round, round, &mut sup_ofa).await;
            } else {
                one_for_all_supervised(ofa_per_round, round, &mut sup_ofa).await;
                one_for_all_bare(ofa_per_round, &mut bare_ofa).await;
            }
        }
    });
    std::panic::set_hook(prev_hook);

    // 3. Spawn latency.
    let spawn_rounds = 2;
    let spawn_n = scaled(10_000);
    let (mut sup_sp, mut bare_sp, mut hand_sp) =
        (Samples::default(), Samples::default(), Samples::default());
    let (mut sup_stop, mut bare_stop, mut hand_stop) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    rt.block_on(async {
        let mut discard = Samples::default();
        spawn_supervised(500.min(spawn_n), 999, &mut discard).await;
        spawn_bare(500.min(spawn_n), &mut discard).await;
        spawn_hand(500.min(spawn_n), &mut discard).await;
        for round in 0..spawn_rounds {
            if round % 2 == 0 {
                bare_stop += spawn_bare(spawn_n, &mut bare_sp).await;
                hand_stop += spawn_hand(spawn_n, &mut hand_sp).await;
                sup_stop += spawn_supervised(spawn_n, round, &mut sup_sp).await;
            } else {
                sup_stop += spawn_supervised(spawn_n, round, &mut sup_sp).await;
                hand_stop += spawn_hand(spawn_n, &mut hand_sp).await;
                bare_stop += spawn_bare(spawn_n, &mut bare_sp).await;
            }
        }
    });
    println!("\n[3] spawn latency, {spawn_rounds} x {spawn_n} sequential (children kept alive)");
    println!(
        "    supervised (start_child, temporary): {}",
        sup_sp.summary()
    );
    println!(
        "    bare (Actor::spawn):                 {}",
        bare_sp.summary()
    );
    println!(
        "    bare (call hand sup, spawn_linked):  {}",
        hand_sp.summary()
    );
    let per_round = |d: Duration| d.as_secs_f64() * 1e3 / spawn_rounds as f64;
    println!(
        "    teardown of {spawn_n} (mean ms): supervised shutdown {:.1}, Actor::spawn stop+join {:.1}, hand sup stop {:.1}",
        per_round(sup_stop),
        per_round(bare_stop),
        per_round(hand_stop)
    );
    for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
        let s = sup_sp.pct(q);
        rows.push(Row {
            metric: format!("spawn {name}"),
            unit: "µs",
            supervised: s,
            bare: bare_sp.pct(q),
            target: if q == 0.99 {
                "p99 < 50 µs".into()
            } else {
                String::new()
            },
            ok: (q == 0.99).then_some(s < 50.0),
        });
    }
    for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
        rows.push(Row {
            metric: format!("spawn {name}, bare = call+spawn_linked"),
            unit: "µs",
            supervised: sup_sp.pct(q),
            bare: hand_sp.pct(q),
            target: String::new(),
            ok: None,
        });
    }

    // 4. Memory per idle actor (fresh subprocesses, interleaved).
    let mem_n = scaled(20_000);
    let mem_runs = if quick() { 1 } else { 3 };
    let (mut sup_mem, mut bare_mem) = (Vec::new(), Vec::new());
    for run in 0..mem_runs {
        if run % 2 == 0 {
            bare_mem.push(mem_measure("bare", mem_n));
            sup_mem.push(mem_measure("supervised", mem_n));
        } else {
            sup_mem.push(mem_measure("supervised", mem_n));
            bare_mem.push(mem_measure("bare", mem_n));
        }
    }
    let fmt_kb = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{:.2}", x / 1024.0))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "\n[4] memory per idle actor, RSS delta over {mem_n} actors, {mem_runs} processes each (KB)"
    );
    println!("    supervised: {}", fmt_kb(&sup_mem));
    println!("    bare:       {}", fmt_kb(&bare_mem));
    let (sup_kb, bare_kb) = (
        median(&mut sup_mem) / 1024.0,
        median(&mut bare_mem) / 1024.0,
    );
    rows.push(Row {
        metric: "memory per idle actor".into(),
        unit: "KB",
        supervised: sup_kb,
        bare: bare_kb,
        target: "< 16 KB".into(),
        ok: Some(sup_kb < 16.0),
    });

    println!(
        "\n[5] one_for_all with {SIBLINGS} siblings, panic -> all replaced, failed one answers"
    );
    println!("    supervised: {}", sup_ofa.summary());
    println!("    bare:       {}", bare_ofa.summary());
    for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
        let s = sup_ofa.pct(q);
        rows.push(Row {
            metric: format!("one_for_all x{SIBLINGS} {name}"),
            unit: "µs",
            supervised: s,
            bare: bare_ofa.pct(q),
            target: if q == 0.99 {
                "p99 < 1 ms".into()
            } else {
                String::new()
            },
            ok: (q == 0.99).then_some(s < 1_000.0),
        });
    }

    print_table(&rows);
    let elapsed = started.elapsed();
    let load_after = loadavg();
    println!(
        "\ntotal {:.1} s; load average {load_before:.2} before, {load_after:.2} after (above ~0.5, \
         other work shares the 2 cores and skews the figures)",
        elapsed.as_secs_f64()
    );

    let json_rows: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "metric": r.metric,
                "unit": r.unit,
                "supervised": r.supervised,
                "bare": r.bare,
                "ratio": r.ratio(),
                "target": r.target,
                "ok": r.ok,
            })
        })
        .collect();
    let result = json!({
        "bench": "supervision",
        "quick": quick(),
        "workers": workers,
        "elapsed_s": elapsed.as_secs_f64(),
        "load_before": load_before,
        "load_after": load_after,
        "rows": json_rows,
    });
    println!("RESULT {result}");

    rt.shutdown_timeout(Duration::from_secs(1));
}
