// The reconciler shape: desired -> observed -> diff -> apply; coalesced triggers; resync; backoff; readiness.
import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { Reconciler, type PassOutcome, type ReconcileSpec } from '../../agent/src/node/reconciler.ts';

/** A tiny world: the desired set of names, and the observed set that apply() converges. */
function world() {
  const desired = new Set<string>();
  const actual = new Set<string>();
  const log: string[] = [];
  let failApply = 0;
  const spec: ReconcileSpec<Set<string>, Set<string>, { op: 'add' | 'del'; name: string }> = {
    name: 'test',
    desired: () => new Set(desired),
    observe: async () => new Set(actual),
    diff: (d, o) => [...[...d].filter((n) => !o.has(n)).map((name) => ({ op: 'add' as const, name })),
      ...[...o].filter((n) => !d.has(n)).map((name) => ({ op: 'del' as const, name }))],
    apply: async (ops) => {
      if (failApply > 0) { failApply--; throw new Error('apply failed'); }
      for (const o of ops) { if (o.op === 'add') actual.add(o.name); else actual.delete(o.name); log.push(`${o.op}:${o.name}`); }
    },
  };
  return { desired, actual, log, spec, fail: (n: number) => { failApply = n; } };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('Reconciler', { timeout: 30_000 }, () => {
  it('converges, applies only the difference, and a converged pass applies nothing', async () => {
    const w = world();
    w.desired.add('a').add('b');
    w.actual.add('x');
    const passes: PassOutcome[] = [];
    const r = new Reconciler(w.spec, { resyncMs: 0, onPass: (p) => passes.push(p) });
    assert.deepEqual((await r.runNow()).changes, 3);
    assert.deepEqual([...w.actual].sort(), ['a', 'b']);
    assert.equal((await r.runNow()).changes, 0);
    assert.deepEqual(passes.map((p) => [p.ok, p.changes]), [[true, 3], [true, 0]]);
    assert.equal(r.ready(), true);
  });

  it('coalesces triggers of one loop turn into one pass, and triggers during a pass into one more', async () => {
    const w = world();
    let passes = 0;
    const r = new Reconciler(w.spec, { resyncMs: 0, onPass: () => { passes++; } });
    r.start();
    for (let i = 0; i < 50; i++) r.trigger(`event ${i}`);
    await r.converged();
    await turn(); await turn();
    assert.equal(passes, 1, 'start + 50 triggers in one turn = one pass');
    w.desired.add('late');
    r.trigger('a');
    r.trigger('b');
    while (!w.actual.has('late')) await turn();
    await turn();
    assert.equal(passes, 2);
    await r.stop();
  });

  it('resyncs on its period only (mock clock): a change made behind its back is repaired at the resync', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const w = world();
      w.desired.add('a');
      let passes = 0;
      const r = new Reconciler(w.spec, { resyncMs: 60_000, onPass: () => { passes++; } });
      r.start();
      await r.converged();
      w.actual.delete('a'); // deleted by hand, no event
      mock.timers.tick(59_999);
      await turn(); await turn();
      assert.equal(passes, 1, 'no pass before the resync period');
      mock.timers.tick(1);
      while (!w.actual.has('a')) await turn();
      assert.equal(passes, 2);
      await r.stop();
    } finally {
      mock.timers.reset();
    }
  });

  it('retries a failed pass with exponential backoff (mock clock) and reports unready after repeated failures', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const w = world();
      w.desired.add('a');
      w.fail(4);
      const outcomes: boolean[] = [];
      const r = new Reconciler(w.spec, { resyncMs: 0, initialBackoffMs: 100, maxBackoffMs: 1000, failuresBeforeUnready: 3, onPass: (p) => outcomes.push(p.ok) });
      r.start();
      const settle = async (n: number) => { while (outcomes.length < n) await turn(); };
      await settle(1);
      assert.match(String(r.ready()), /not converged yet: apply failed/);
      for (const [delay, n] of [[100, 2], [200, 3], [400, 4]] as const) {
        mock.timers.tick(delay - 1);
        await turn(); await turn();
        assert.equal(outcomes.length, n - 1, `no retry before ${delay} ms`);
        mock.timers.tick(1);
        await settle(n);
      }
      assert.match(String(r.ready()), /4 failed passes in a row: apply failed/);
      mock.timers.tick(800);
      await settle(5);
      assert.deepEqual(outcomes, [false, false, false, false, true]);
      assert.equal(r.ready(), true);
      assert.ok(w.actual.has('a'));
      await r.stop();
    } finally {
      mock.timers.reset();
    }
  });

  it('stop() waits for a running pass and no trigger runs one afterwards', async () => {
    const w = world();
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const spec = { ...w.spec, observe: async () => { await gate; return new Set(w.actual); } };
    let passes = 0;
    const r = new Reconciler(spec, { resyncMs: 1000, onPass: () => { passes++; } });
    w.desired.add('a');
    r.start();
    await turn();
    const stopped = r.stop();
    release();
    await stopped;
    assert.equal(passes, 1);
    r.trigger('after stop');
    await turn(); await turn();
    assert.equal(passes, 1);
  });

  it('rejects names that are not metric-label safe', () => {
    assert.throws(() => new Reconciler({ ...world().spec, name: 'Bad Name' }, { resyncMs: 0 }), /invalid reconciler name/);
  });

  it('a pass that re-triggers itself forever is slowed down, and the event loop stays free', async () => {
    let passes = 0;
    let r: Reconciler<number, number, number> | undefined;
    // apply() changes what observe() sees and triggers the loop again (as its own kernel or OVSDB event would)
    r = new Reconciler<number, number, number>({
      name: 'spinner', desired: async () => 1, observe: async () => 0, diff: () => [1],
      apply: async () => { passes++; r!.trigger('own-change'); },
    }, { resyncMs: 0 });
    r.start();
    let ticks = 0;
    const tick = setInterval(() => { ticks++; }, 20);
    await new Promise((res) => setTimeout(res, 600));
    clearInterval(tick);
    await r.stop();
    assert.ok(ticks >= 3, `timers still fire while it loops (${ticks} ticks of 20 ms in 600 ms)`);
    // unguarded, this loop ran thousands of passes in 600 ms; guarded: 5 at once, then 20, 40, 80, 160, 320 ms apart
    assert.ok(passes <= 12, `passes in 600 ms: ${passes}`);
    assert.ok(passes >= 5, `it still runs: ${passes}`);
  });
});
