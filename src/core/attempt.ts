/** What `policy.execute(fn)` passes to `fn` on each attempt. */
export interface AttemptContext {
  /**
   * Aborted when this attempt times out (reason: the `TimeoutError`) or the caller aborts (reason: the
   * caller's `signal.reason`). Created on first read, so attempts that never read it cost nothing.
   */
  readonly signal: AbortSignal;
  /** 1 for the first call, 2 for the first retry, and so on. */
  readonly attempt: number;
}

/** @internal */
export class Attempt implements AttemptContext {
  private controller: AbortController | undefined = undefined;
  private aborted = false;
  private reason: unknown = undefined;

  constructor(readonly attempt: number) {}

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}
