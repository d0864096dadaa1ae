//! LATENCY LATEST / HISTORY / RESET / DOCTOR / HELP over the engine's latency monitor
//! (`sluice::metrics::LatencyMonitor`), replying as Redis 7.0 does.
//!
//! Events: `command` and `fast-command` (a command, by its `fast` flag, that ran at least
//! `latency-monitor-threshold` ms; recorded by `dispatch`), and the engine's
//! `journal-fsync`, `keyspace-flush` and `store-commit` (see `sluice::metrics::events`).
//! GRAPH and HISTOGRAM are not served.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sluice::metrics::LatencySeries;

use super::spec::{Ctx, Handler, Spec};
use crate::frontend::Frame;

/// The LATENCY command.
pub static COMMANDS: &[Spec] = &[Spec {
    name: "latency",
    arity: -2,
    categories: &["@slow"],
    summary: "A container for latency diagnostics commands.",
    subcommands: &[
        ("doctor", 2),
        ("history", 3),
        ("latest", 2),
        ("reset", -2),
        ("help", 2),
    ],
    handler: Handler::Sync(latency),
    ..Spec::DEFAULT
}];

/// LATENCY LATEST | HISTORY event | RESET [event ...] | DOCTOR | HELP
fn latency(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let args: &[Bytes] = argv;
    let monitor = ctx.shared.sluice.latency();
    let sub = args[1].to_ascii_lowercase();
    match &sub[..] {
        b"latest" => Frame::Array(
            monitor
                .series()
                .iter()
                .filter_map(|s| {
                    let last = s.samples.last()?;
                    Some(Frame::Array(vec![
                        Frame::bulk(s.event),
                        Frame::Integer(as_int(last.time)),
                        Frame::Integer(as_int(last.millis)),
                        Frame::Integer(as_int(s.max)),
                    ]))
                })
                .collect(),
        ),
        b"history" => {
            let event = String::from_utf8_lossy(&args[2]);
            let samples = monitor
                .history(&event)
                .map(|s| s.samples)
                .unwrap_or_default();
            Frame::Array(
                samples
                    .iter()
                    .map(|s| {
                        Frame::Array(vec![
                            Frame::Integer(as_int(s.time)),
                            Frame::Integer(as_int(s.millis)),
                        ])
                    })
                    .collect(),
            )
        }
        b"reset" => {
            let events: Vec<&[u8]> = args[2..].iter().map(|a| &a[..]).collect();
            let reset = monitor.reset((!events.is_empty()).then_some(&events[..]));
            Frame::Integer(as_int(reset as u64))
        }
        b"doctor" => Frame::Verbatim(Bytes::from(doctor(
            &monitor.series(),
            monitor.threshold_ms(),
            ctx.shared.settings.slowlog_log_slower_than(),
        ))),
        _ => Frame::Array(
            [
                "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "DOCTOR",
                "    Return a human readable latency analysis report.",
                "GRAPH <event>",
                "    Return an ASCII latency graph for the <event> class.",
                "HISTORY <event>",
                "    Return time-latency samples for the <event> class.",
                "LATEST",
                "    Return the latest latency samples for all events.",
                "RESET [<event> ...]",
                "    Reset latency data of one or more <event> classes.",
                "    (default: reset all data for all event classes)",
                "HISTOGRAM [COMMAND ...]",
                "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
                "    If no commands are specified then all histograms are replied.",
                "HELP",
                "    Prints this help.",
            ]
            .iter()
            .map(|s| Frame::Simple(s.to_string()))
            .collect(),
        ),
    }
}

fn as_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Redis's `createLatencyReport`, with its advice for the `command` event; the engine's events
/// get the report's line and no advice.
fn doctor(series: &[LatencySeries], threshold_ms: u64, slowlog_slower_than: i64) -> String {
    if series.is_empty() && threshold_ms == 0 {
        return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n".to_string();
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut report = String::new();
    let mut advices = Vec::new();
    for (i, s) in series.iter().filter(|s| !s.samples.is_empty()).enumerate() {
        if i == 0 {
            report.push_str("Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n");
        }
        let n = s.samples.len() as u64;
        let avg = s.samples.iter().map(|x| x.millis).sum::<u64>() / n;
        let mad = s
            .samples
            .iter()
            .map(|x| x.millis.abs_diff(avg))
            .sum::<u64>()
            / n;
        let oldest = s.samples.iter().map(|x| x.time).min().unwrap_or(now);
        let period = now.saturating_sub(oldest).max(1);
        let _ = writeln!(
            report,
            "{}. {}: {} latency spikes (average {avg}ms, mean deviation {mad}ms, period {:.2} sec). Worst all time event {}ms.",
            i + 1,
            s.event,
            n,
            period as f64 / n as f64,
            s.max,
        );
        if s.event == "command" {
            if slowlog_slower_than < 0 {
                advices.push(format!("- Enable the Slow Log in order to track commands that are slow to execute. To do so use \"CONFIG SET slowlog-log-slower-than {}\".\n", threshold_ms * 1000));
            } else if (slowlog_slower_than / 1000).unsigned_abs() > threshold_ms {
                advices.push(format!("- Your current Slow Log configuration only logs events that are slower than your configured latency monitor threshold. Please use 'CONFIG SET slowlog-log-slower-than {}'.\n", threshold_ms * 1000));
            }
            advices.push("- Check your Slow Log to understand what are the commands you are running which are too slow to execute. Please check https://redis.io/commands/slowlog for more information.\n".to_string());
            advices.push("- Deleting, expiring or evicting (because of maxmemory policy) large objects is a blocking operation. If you have very large objects that are often deleted, expired, or evicted, try to fragment those objects into multiple smaller objects.\n".to_string());
        }
    }
    if report.is_empty() {
        report.push_str("Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n");
    } else if advices.is_empty() {
        report.push_str("\nWhile there are latency events logged, I'm not able to suggest any easy fix. Please use the Redis community to get some help, providing this report in your help request.\n");
    } else {
        report.push_str("\nI have a few advices for you:\n\n");
        for advice in advices {
            report.push_str(&advice);
        }
    }
    report
}
