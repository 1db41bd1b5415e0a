//! A reply counts only if it matches what was sent: source, branch, Call-ID, CSeq and method.

mod common;
use common::*;
use sip_failover::core::{Event, IgnoreReason, Side};

fn ignored(lab: &Lab) -> Vec<IgnoreReason> {
    lab.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Ignored { reason } => Some(*reason),
            _ => None,
        })
        .collect()
}

#[test]
fn a_late_reply_to_attempt_1_at_1000_ms_counts() {
    let mut lab = Lab::new(config(), |ms, side, attempt| match (side, attempt) {
        (Side::Primary, 1) if ms == 0 => Answer::Reply { status: 200, delay_ms: 1000 },
        (Side::Primary, _) if ms < 15_000 => Answer::Drop,
        _ => OK,
    });
    lab.run_until(14_000);
    assert!(lab.switches().is_empty());
    // Attempt 2 went out at 800; the reply to attempt 1 arrived at 1000 and stopped the ladder.
    assert_eq!(lab.probes_to(Side::Primary), vec![(0, 1), (800, 2)]);
    let reply = lab.events.iter().find_map(|(t, e)| match e {
        Event::Reply { server: Side::Primary, attempt, rtt, status, .. } => {
            Some((*t, *attempt, rtt.as_millis(), *status))
        }
        _ => None,
    });
    assert_eq!(reply, Some((1000, 1, 1000, 200)));
}

#[test]
fn a_reply_after_1600_ms_does_not_count() {
    let mut lab = Lab::new(config(), |ms, side, attempt| match (side, attempt) {
        (Side::Primary, 1) if ms == 0 => Answer::Reply { status: 200, delay_ms: 1700 },
        (Side::Primary, _) if ms < 15_000 => Answer::Drop,
        _ => OK,
    });
    lab.run_until(2_000);
    assert_eq!(lab.switches(), vec![(1600, Side::Primary, Side::Backup, "failover", 1)]);
    assert_eq!(ignored(&lab), vec![IgnoreReason::NotWaiting]);
    assert!(!lab.events.iter().any(|(_, e)| matches!(e, Event::Reply { server: Side::Primary, .. })));
}

#[test]
fn forged_replies_are_ignored_and_the_switch_still_happens() {
    let mut lab = Lab::new(config(), |_, side, _| if side == Side::Primary { Answer::Drop } else { OK });
    lab.run_until(100);
    let req = lab.sent.iter().find(|s| s.server == Side::Primary).unwrap().text.clone();
    let good = response_to(&req, 200);
    let via = req.lines().find(|l| l.starts_with("Via:")).unwrap().trim_end().to_string();
    let cseq: u32 =
        req.lines().find(|l| l.starts_with("CSeq:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let forged = [
        // A guessed branch.
        with_header(&good, "Via", via.replace("branch=z9hG4bK", "branch=z9hG4bKff").trim_start_matches("Via: ")),
        // Another Call-ID.
        with_header(&good, "Call-ID", "deadbeefdeadbeefdeadbeefdeadbeef"),
        // A CSeq of an attempt not sent.
        with_header(&good, "CSeq", &format!("{} OPTIONS", cseq + 5)),
        // The right CSeq number for another method.
        with_header(&good, "CSeq", &format!("{cseq} INVITE")),
        // Garbage.
        "\u{1}\u{2}garbage".to_string(),
    ];
    for f in &forged {
        lab.inject(addr(PRIMARY), f.as_bytes());
    }
    // The right reply from the wrong source (an off-path spoofer's address, then the other server's).
    lab.inject(addr("127.0.0.9:5060"), good.as_bytes());
    lab.inject(addr(BACKUP), good.as_bytes());
    let reasons = ignored(&lab);
    assert_eq!(
        reasons[..4],
        [
            IgnoreReason::BranchMismatch,
            IgnoreReason::CallIdMismatch,
            IgnoreReason::CSeqMismatch,
            IgnoreReason::MethodMismatch
        ]
    );
    assert!(matches!(reasons[4], IgnoreReason::Malformed(_)));
    assert_eq!(reasons[5..], [IgnoreReason::UnknownSource, IgnoreReason::CallIdMismatch]);
    assert_eq!(lab.agent.stats().ignored.iter().sum::<u32>(), 7);
    lab.run_until(2_000);
    assert_eq!(lab.switches(), vec![(1600, Side::Primary, Side::Backup, "failover", 1)]);
}

#[test]
fn a_provisional_response_is_not_an_answer() {
    let mut lab = Lab::new(config(), |_, side, _| if side == Side::Primary { Answer::Drop } else { OK });
    lab.run_until(10);
    let req = lab.sent.iter().find(|s| s.server == Side::Primary).unwrap().text.clone();
    lab.inject(addr(PRIMARY), response_to(&req, 100).as_bytes());
    assert_eq!(ignored(&lab), vec![IgnoreReason::Provisional]);
    lab.run_until(2_000);
    assert_eq!(lab.switches().len(), 1);
}

#[test]
fn a_duplicate_reply_is_ignored() {
    let mut lab = Lab::new(config(), |_, _, _| OK);
    lab.run_until(10);
    let req = lab.sent.iter().find(|s| s.server == Side::Primary).unwrap().text.clone();
    lab.inject(addr(PRIMARY), response_to(&req, 200).as_bytes());
    assert_eq!(ignored(&lab), vec![IgnoreReason::NotWaiting]);
}
