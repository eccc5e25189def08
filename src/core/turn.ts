/**
 * @internal Work done once at the end of a turn of the event loop, for every stage that deferred some:
 * one `setImmediate` per turn for all of them (where there is none, a 0 ms timer). The deadline queue
 * unrefs its timer there and stamps the deadlines of the turn's calls; a cache stamps the expiry of the
 * turn's results there, when the turn has such a run anyway (see Cache.storeNow).
 *
 * A task must not throw; each stage keeps its own flag so that it queues itself once per turn.
 */

// eslint-disable-next-line no-restricted-syntax -- one list per process, made at load time
const tasks: (() => void)[] = [];
let scheduled = false;

function runTurnEnd(): void {
  // Tasks queued while these run run in this same pass. A task that throws (a custom clock's
  // `refTimer`, say) leaves the rest for another pass; its error goes where an immediate's goes.
  let done = 0;
  try {
    while (done < tasks.length) tasks[done++]!();
  } finally {
    if (done === tasks.length) tasks.length = 0;
    else tasks.splice(0, done);
    scheduled = false;
    if (tasks.length > 0) schedule();
  }
}

function schedule(): void {
  scheduled = true;
  if (typeof setImmediate === 'function') setImmediate(runTurnEnd);
  else setTimeout(runTurnEnd, 0);
}

/** Runs `task` at the end of this turn of the event loop. */
export function atTurnEnd(task: () => void): void {
  tasks.push(task);
  if (!scheduled) schedule();
}

/** True when a run at the end of this turn is already scheduled: joining it costs no timer. */
export function turnEndScheduled(): boolean {
  return scheduled;
}
