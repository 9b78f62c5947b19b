//! Compaction: what to merge (`picker`, pure policy), when and beside what (`manager`:
//! reservations and threads), how (`task`: a self-contained [`CompactionTask`] and
//! [`run_compaction`]; `job`: subtasks, commit), and how to survive a crash (`log`: intent and
//! finished outputs, resumed at open). `docs/lsm.md` ("Compaction") has the protocol:
//! 1. reserve the inputs' (level, key range) pairs and files;
//! 2. create the job's log with its intent (every subtask: inputs, key range, reserved output
//!    numbers, `seq_cutoff`), sync it, sync the directory; a resumed job then removes the log
//!    it replaces and syncs the directory again;
//! 3. run the subtasks in parallel; each output is synced, its name made durable (directory
//!    sync), then recorded in the log (append, sync);
//! 4. commit one manifest edit: inputs deleted, outputs added, the job id;
//! 5. remove the log; the inputs go once no reader holds them and a later manifest record is
//!    durable.
//!
//! A crash before 4 leaves the inputs live and the log on disk: open keeps the recorded outputs
//! and resumes the job after the last one (unrecorded outputs are removed as orphans). After 4
//! the outputs are live; the log, if it survived, is recognised as committed (its inputs are no
//! longer live) and removed. A crash inside step 2 of a resumed job can leave its old and new
//! logs both: open resumes only the newest log of a set of inputs, and sets aside a damaged log
//! as void (a log is an optimisation: its job's inputs are still live).

pub(crate) mod cutter;
mod job;
mod log;
mod manager;
pub(crate) mod picker;
mod task;

use std::sync::Arc;

use engine_api::{CompactionSummary, Error, Result};

pub(crate) use job::Job;
pub use job::JobKind;
pub(crate) use job::resumed;
pub(crate) use log::{LoggedJob, read_log};
pub(crate) use manager::whole_levels;
pub use manager::{CompactionManager, JobCounts, JobInfo, ReservedRange};
pub use task::{CompactionOutput, CompactionTask, KeySpan, OutputTable, TaskInput, run_compaction};

use crate::db::Inner;

/// `compact()`: a full compaction into the last level, through the manager.
pub(crate) fn compact_all(inner: &Arc<Inner>) -> Result<CompactionSummary> {
    if inner.read_only() {
        return Err(Error::ReadOnly);
    }
    inner.poison().check()?;
    inner.compactions.run_full(inner)
}
