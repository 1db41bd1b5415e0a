//! Cases found by the fuzz targets in `fuzz/`, kept as tests.

mod common;
use common::*;
use sip_failover::core::{Event, Side};

/// fuzz target `agent`: on the backup, a new configuration removes the backup; the firmware fails to
/// apply the move back to the primary. The agent used to stay on the removed backup for good (its
/// policy never runs without a backup), where any other failed switch is retried at the next cycle.
#[test]
fn a_failed_move_off_a_removed_backup_is_retried_at_the_next_cycle() {
    let mut lab = Lab::new(config(), |_, side, _| if side == Side::Primary { Answer::Drop } else { OK });
    lab.run_until(2_000);
    assert_eq!(lab.agent.active(), Side::Backup, "{:?}", lab.switches());

    lab.fail_apply = true;
    let mut no_backup = config();
    no_backup.backup = None;
    lab.agent.update_config(lab.now, no_backup).unwrap();
    lab.drain();
    assert_eq!(lab.count(|e| matches!(e, Event::ApplyFailed { .. })), 1);
    assert_eq!(lab.agent.active(), Side::Backup);

    lab.fail_apply = false;
    lab.run_until(15_500);
    let last = *lab.switches().last().unwrap();
    assert_eq!((last.0, last.2, last.3), (15_000, Side::Primary, "reconfigured"), "{:?}", lab.switches());
    assert_eq!(lab.agent.active(), Side::Primary);
    assert_eq!(lab.agent.pending(), None);
}
