//! The scripts against their model functions, behaviour for behaviour: for generated model
//! states and inputs ([`cases`]), the state is written into a real `redis-server`, the real
//! script runs through the product's own [`Store`] method (the call the gateway or the worker
//! makes), the resulting Redis state is read back into the model's [`Redis`], and both the
//! reply and the end state must equal what the function of [`crate::scripts`] gives for the
//! same state and input. One test per script that `scripts::CONTRACTS` marks as modelled, a
//! few thousand cases each (all of them in seconds); each requires every kind of reply of
//! the model function, and each path to it, to occur in its sample.
//!
//! Time: a case runs at model time [`NOW`]; model time `t` is the Redis time read just before
//! the case plus `(t - NOW)` ticks of [`TICK_MS`], so the milliseconds a case takes never move
//! a value across a tick. What a script computes from its own `TIME` is mapped back to the
//! nearest tick (and must lie within a fifth of a tick of it). An entry pending since `t` is
//! written with `XCLAIM … TIME`, and read back as the time of the read minus `XPENDING`'s idle.
//! Entry ids: entry `g` of payment `p` is the explicit id `<1 + 1000p + g>-0`, far below any
//! id `XADD *` makes; an id of that form reads back as its entry, any other as the next fresh
//! entry of its payment (accept and redrive add one each), as the model numbers them. Model
//! ids are per payment and Redis' are one order across payments, so a purge case (whose
//! `last` says, per payment, which entries came after the purge started) writes those later
//! entries with ids past all others (`1 000 000` on), after `purge_start` read where the
//! stream ended (set with `XSETID` to its newest earlier entry, deleted or not).
//!
//! Compared: the status hash's fields the model has (`st`, `proc`, `amb`, `safe`, `safe0` —
//! missing and `'0'` both read as none, the scripts' own reading —, `held`, `att`, `sid`,
//! `rq0`, a requestedAt written in the same ticks),
//! the stream with the consumer group's pending list (owner and since when), its orphans, its
//! consumers, the dead letters per payment, the summary events (payment, processor,
//! requestedAt) and the purge flag; the summary's bucket hashes and days index must hold
//! exactly what those events make, and no other key may exist. An orphan (an entry delivered
//! and then left out of every pending list by `XGROUP DELCONSUMER`) is an entry at or before
//! the group's last-delivered id that is pending nowhere: the setup sets that id to the newest
//! orphan, and a state has its orphans before its undelivered entries (in the order of the
//! real ids), as a group delivers in order. A consumer exists unless the model deleted it
//! (`XGROUP CREATECONSUMER`; a deleted one holds no pending entry). A pending-list record
//! whose entry is gone is compared too ([`End`]): the model has no place for one, and
//! `purge_finish`'s `XTRIM` leaves one for each entry it trims while pending (the pending
//! list is not trimmed with the stream), so the model side expects exactly those.
//!
//! Replies are compared as the product sees them: [`Store`]'s outcome types, so fail.lua's
//! `stale` and `unresolved` are one outcome (`Recorded::Unresolved`; neither changes
//! anything), accept's entry id is compared through the state, unanswered's `stale` carries no bound, touch's lost entries
//! are compared by payment (the model returns payments), record.lua's refusal while a purge
//! runs is its `TRYAGAIN` error, and a purge's is the count `purge_sweep` returns. The `now`
//! a script returns must be the case's `NOW`.
//!
//! A purge case runs the whole purge (`purge_start`, the later entries and dead letters
//! written, `purge_sweep`, and `purge_finish` or not) against the model's `purge` on every
//! payment with a status (and `purge_finish`): `purge_start`'s own call is the model's `purge`
//! of no payment, which only sets the flag the sweep sets again.
//!
//! Not compared, because the model has no such field: the amount, `at` (kept by the model
//! only where seeded fault (o) reads it), `upd`, `ambat`, `req` and `err` of the status
//! hash, its expiry (`PEXPIRE` / `PERSIST`) and the purge flag's, the dead letters' and entries' other fields, and the consumers' idle times
//! (the model lets every consumer be idle long enough: the cleanup runs with a least idle
//! time of 0).
//! Not generated, because the model abstracts it: the modes the model leaves out (fail.lua's
//! `entry`, record.lua's `overflow`, begin.lua's upgrade of a pin without `safe` — so a
//! pinned, unresolved status is written with `safe = '0'` when the model has none), a
//! `keep` dead letter without an entry id (the worker always has one), a summary event for a
//! payment that is not processed (the model has no expiry that would let an id come back),
//! batches of several payments (one script call per case; a batch is the same steps back
//! to back), and a purge's SCAN in several batches (two payments are one batch).

use std::collections::BTreeSet;
use std::time::Instant;

use paystream_common::store::{Accepted, Recorded};

mod cases;
mod mapping;
mod real;

use cases::{
    gen_accept, gen_begin, gen_drop_consumers, gen_fail, gen_purge, gen_purge_finish, gen_record,
    gen_redrive, gen_settle, gen_touch, gen_unanswered, Case, Input, Rng, NOW,
};
use mapping::{fresh, Clock, TICK_MS};
use real::{End, Real, Reply};

use crate::protocol::Gen;
use crate::scripts::{self, AcceptReply, BeginReply, FailReply, Settle, St, NP};

/// The model function's reply, the name of its kind (with the path taken where two lead to
/// it: the coverage a test requires) and its end state.
fn model(case: &Case) -> (Reply, String, End) {
    let mut r = case.state.clone();
    let mut dangling = Vec::new();
    let kind = |reply: &dyn std::fmt::Debug, path: &str| {
        let text = format!("{reply:?}");
        let name = text.split(['(', ' ', '{']).next().unwrap_or("");
        format!("{name}{path}")
    };
    let (reply, kind) = match case.input.clone() {
        Input::Accept { first } => {
            let first = (first > 0).then_some(scripts::FirstAttempt {
                now: NOW,
                bound: first,
            });
            let reply = scripts::accept(&mut r, 0, fresh(&case.state, 0), first);
            let seen = match reply {
                AcceptReply::Ok(_) => Accepted::Enqueued,
                AcceptReply::Dup(st) => Accepted::Replay(
                    st.name()
                        .parse()
                        .expect("the model's status names are the product's"),
                ),
            };
            (Reply::Accept(seen), kind(&reply, ""))
        }
        Input::Begin {
            wanted,
            consumer,
            entry,
            bound,
        } => {
            // The worker's requestedAt is sent as Redis' now (`BeginRequest` below).
            let reply = scripts::begin(
                &mut r,
                0,
                wanted,
                consumer,
                entry,
                bound,
                NOW,
                Some(NOW),
                true,
                true,
            );
            let earlier = matches!(
                reply,
                BeginReply::Go {
                    earlier_unresolved: true,
                    ..
                }
            );
            let path = if earlier { " earlier" } else { "" };
            (Reply::Begin(reply), kind(&reply, path))
        }
        Input::Unanswered {
            proc,
            att,
            grace,
            held,
            entry,
        } => {
            let reply = scripts::unanswered(&mut r, 0, entry, proc, att, grace, held, NOW);
            let kind = match (reply.ok, held) {
                (true, true) => "ok held",
                (true, false) => "ok",
                (false, _) => "stale",
            };
            (
                Reply::Unanswered(reply.ok.then_some(reply.safe)),
                kind.into(),
            )
        }
        Input::Settle {
            proc,
            att,
            how,
            entry,
        } => {
            let reply = scripts::settle(&mut r, 0, entry, proc, att, how, true);
            let path = match how {
                Settle::Failed => " failed",
                Settle::Absent { .. } => " absent",
            };
            (Reply::Settle(reply), kind(&reply, path))
        }
        Input::Record {
            proc,
            requested_at,
            entry,
        } => {
            let reply = scripts::record_unless_purging(&mut r, 0, proc, requested_at, entry, true);
            let kind = reply.map_or("Refused".into(), |reply| kind(&reply, ""));
            (Reply::Record(reply), kind)
        }
        Input::Fail { entry, keep } => {
            let reply = scripts::fail(&mut r, 0, entry, keep);
            let seen = match reply {
                FailReply::Ok => Recorded::Now,
                FailReply::Processed => Recorded::AlreadyDone,
                FailReply::Missing => Recorded::Missing,
                FailReply::Unresolved | FailReply::Stale => Recorded::Unresolved,
            };
            (
                Reply::Fail(seen),
                kind(&reply, if keep.is_some() { " keep" } else { "" }),
            )
        }
        Input::Redrive => {
            let mut next: [Gen; NP] = std::array::from_fn(|p| fresh(&case.state, p));
            let moved = scripts::redrive(&mut r, NOW, false, |p| {
                next[p] += 1;
                next[p] - 1
            });
            (Reply::Redrive(u64::from(moved)), format!("moved {moved}"))
        }
        Input::Touch { consumer, entries } => {
            let lost = scripts::touch(&mut r, consumer, &entries, NOW);
            let kind = format!("{} lost", lost.len().min(1));
            (Reply::Touch(lost), kind)
        }
        Input::Purge {
            last,
            dead_before,
            finish,
            lose,
        } => {
            let path = match case.state.status[0] {
                None => "none",
                Some(h) => match (h.st, h.sid > last[0]) {
                    (St::Processed | St::Failed, true) => "kept done",
                    (St::Processed | St::Failed, false) => "deleted done",
                    (St::Queued | St::Processing, true) => "kept queued",
                    (St::Queued | St::Processing, false) => "deleted queued",
                },
            };
            let lost_at = |at_finish: bool, r: &mut scripts::Redis| {
                if let Some((when, flag)) = lose {
                    if when == at_finish {
                        r.purging = flag;
                    }
                }
            };
            if !scripts::purge_start(&mut r, scripts::OWN) {
                (Reply::PurgeRunning, "start refused".to_string())
            } else {
                lost_at(false, &mut r);
                let present: Vec<usize> = (0..NP).filter(|&p| r.status[p].is_some()).collect();
                match scripts::purge(&mut r, scripts::OWN, &present, &last, true, true) {
                    None => (Reply::PurgeLost, "lost in sweep".to_string()),
                    Some(deleted) => {
                        lost_at(true, &mut r);
                        let before = r.clone();
                        if !finish {
                            (Reply::Purge(deleted.len() as u64), path.to_string())
                        } else if scripts::purge_finish(
                            &mut r,
                            scripts::OWN,
                            &last,
                            &dead_before,
                            true,
                        ) {
                            dangling = before
                                .stream
                                .iter()
                                .filter(|e| {
                                    e.pending.is_some() && e.id <= last[usize::from(e.payment)]
                                })
                                .map(|e| (usize::from(e.payment), e.id))
                                .collect();
                            (
                                Reply::Purge(deleted.len() as u64),
                                format!("{path} finished"),
                            )
                        } else {
                            (Reply::PurgeLost, "finish lost".to_string())
                        }
                    }
                }
            }
        }
        Input::DropConsumers { me } => {
            let gone = scripts::drop_consumers(&mut r, me, NP);
            let kind = format!("dropped {}", gone.len());
            (Reply::DropConsumers(gone), kind)
        }
    };
    (reply, kind, End { redis: r, dangling })
}

/// Runs `cases` generated cases of one script on a real Redis and its model function;
/// every kind of reply in `kinds` must occur.
async fn agree(script: &str, cases: usize, generate: fn(&mut Rng) -> Case, kinds: &[&str]) {
    let started = Instant::now();
    let seed = script.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut rng = Rng::new(seed);
    let mut real = Real::start().await;
    let mut seen = BTreeSet::new();
    let mut wrong = Vec::new();
    let mut mismatches = 0;
    for i in 0..cases {
        let case = generate(&mut rng);
        let (want, kind, want_state) = model(&case);
        seen.insert(kind);
        let clock = Clock {
            base: real.now_ms().await - i64::from(NOW) * TICK_MS,
        };
        real.write(clock, &case, false).await;
        let got = real.run(clock, &case).await;
        let got_state = real.read(clock, &case.state).await;
        if got.as_ref() != Ok(&want) || got_state.as_ref() != Ok(&want_state) {
            mismatches += 1;
            if wrong.len() < 3 {
                wrong.push(format!(
                    "case {i}:\n  state:  {:?}\n  input:  {:?} (style {:#x})\n  model:  {want:?}\n          \
                     {want_state:?}\n  redis:  {got:?}\n          {got_state:?}",
                    case.state, case.input, case.style
                ));
            }
        }
    }
    println!(
        "{script}: {cases} cases, replies {seen:?}, {:.1?}",
        started.elapsed()
    );
    assert!(
        mismatches == 0,
        "{script}.lua and scripts::{script} disagree in {mismatches} of {cases} cases; the first:\n{}",
        wrong.join("\n")
    );
    let missing: Vec<&&str> = kinds.iter().filter(|k| !seen.contains(**k)).collect();
    assert!(missing.is_empty(), "{script}: no case got {missing:?}");
}

#[tokio::test]
async fn accept_agrees_with_the_model() {
    agree("accept", 1000, gen_accept, &["Ok", "Dup"]).await;
}

#[tokio::test]
async fn begin_agrees_with_the_model() {
    let kinds = ["Go", "Go earlier", "Pinned", "Done", "Missing", "Lost"];
    agree("begin", 4000, gen_begin, &kinds).await;
}

#[tokio::test]
async fn unanswered_agrees_with_the_model() {
    let kinds = ["ok", "ok held", "stale"];
    agree("unanswered", 3000, gen_unanswered, &kinds).await;
}

#[tokio::test]
async fn settle_agrees_with_the_model() {
    let kinds = [
        "Cleared failed",
        "Cleared absent",
        "Early failed",
        "Early absent",
        "Held absent",
        "Stale absent",
    ];
    agree("settle", 4000, gen_settle, &kinds).await;
}

#[tokio::test]
async fn record_agrees_with_the_model() {
    let kinds = ["Ok", "Dup", "Missing", "Refused"];
    agree("record", 3000, gen_record, &kinds).await;
}

#[tokio::test]
async fn fail_agrees_with_the_model() {
    let kinds = [
        "Ok",
        "Ok keep",
        "Processed",
        "Unresolved",
        "Missing",
        "Stale keep",
    ];
    agree("fail", 4000, gen_fail, &kinds).await;
}

#[tokio::test]
async fn redrive_agrees_with_the_model() {
    let kinds = ["moved 0", "moved 1", "moved 2"];
    agree("redrive", 2000, gen_redrive, &kinds).await;
}

#[tokio::test]
async fn touch_agrees_with_the_model() {
    agree("touch", 2000, gen_touch, &["0 lost", "1 lost"]).await;
}

#[tokio::test]
async fn purge_agrees_with_the_model() {
    let kinds = [
        "none",
        "kept done",
        "deleted done",
        "kept queued",
        "deleted queued",
        "none finished",
        "kept done finished",
        "deleted done finished",
        "kept queued finished",
        "deleted queued finished",
        "start refused",
        "lost in sweep",
        "finish lost",
    ];
    agree("purge", 2000, gen_purge, &kinds).await;
}

#[tokio::test]
async fn purge_finish_agrees_with_the_model() {
    let kinds = [
        "none finished",
        "kept done finished",
        "deleted done finished",
        "kept queued finished",
        "deleted queued finished",
        "finish lost",
    ];
    agree("purge_finish", 1000, gen_purge_finish, &kinds).await;
}

#[tokio::test]
async fn drop_consumers_agrees_with_the_model() {
    let kinds = ["dropped 0", "dropped 1", "dropped 2"];
    agree("drop_consumers", 1000, gen_drop_consumers, &kinds).await;
}

#[test]
fn every_modelled_script_has_a_differential_test() {
    let source = include_str!("differential.rs");
    for c in scripts::CONTRACTS.iter().filter(|c| c.modelled) {
        let test = format!("async fn {}_agrees_with_the_model()", c.script);
        assert!(source.contains(&test), "no differential test `{test}`");
    }
}
