// Child process of test/pool-retention.test.ts (run with --expose-gc): the fast path pools its per-call
// state; a settled call must leave nothing of its own alive in the pool (its `this`, arguments, task,
// result or promise). Prints, as JSON, which of those a WeakRef still reaches after a full GC.
const { resilient } = await import(process.env.BULWARK_DIST ?? '../../dist/index.js');

const tick = () => new Promise((resolve) => setImmediate(resolve));

async function survivors(options, { args = 1, fails = false, hangs = false } = {}) {
  const refs = {};
  await (async () => {
    const self = { self: true };
    const argsList = Array.from({ length: args }, (_, i) => ({ arg: i }));
    let finish;
    // `fn` outlives the call (the pipeline's shared timer refers to it): it keeps no result itself.
    const fn = function () {
      const result = { result: true };
      refs.result = new WeakRef(result);
      if (hangs) return new Promise((resolve) => (finish = () => resolve(result)));
      return fails ? Promise.reject(result) : Promise.resolve(result);
    };
    const wrapped = resilient(fn, options);
    const promise = wrapped.apply(self, argsList);
    refs.self = new WeakRef(self);
    argsList.forEach((a, i) => (refs[`arg${i}`] = new WeakRef(a)));
    refs.promise = new WeakRef(promise);
    await promise.catch(() => undefined);
    if (hangs) {
      finish(); // fn settles after its timeout
      await tick();
    }
  })();
  for (let i = 0; i < 3; i++) {
    await tick();
    globalThis.gc();
  }
  return Object.keys(refs).filter((k) => refs[k].deref() !== undefined);
}

const out = {
  timeout: await survivors({ timeout: 60_000 }),
  timeoutFourArgs: await survivors({ timeout: 60_000 }, { args: 4 }),
  timeoutSixArgs: await survivors({ timeout: 60_000 }, { args: 6 }),
  timeoutFails: await survivors({ timeout: 60_000 }, { fails: true }),
  timedOut: await survivors({ timeout: 5 }, { hangs: true }),
  retry: await survivors({ retry: true }),
  // A cache keeps the value (the result), not the promise of the call that filled it.
  cached: await survivors({ cache: { key: () => 'k' } }),
  cachedTimeout: await survivors({ cache: { key: () => 'k' }, timeout: 60_000 }),
  allButTimeout: await survivors(
    { retry: true, circuitBreaker: {}, bulkhead: 10, fallback: 0 },
    { args: 2 },
  ),
};
process.stdout.write(JSON.stringify(out));
