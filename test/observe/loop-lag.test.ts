import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { LoopLagMonitor } from '../../agent/src/observe/loop-lag.ts';
import { createAgentMetrics } from '../../agent/src/observe/metrics.ts';

describe('event-loop lag sampled only while busy', () => {
  it('samples from the first busy() until the tail after the last release', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const m = new LoopLagMonitor({ tailMs: 1000 });
      assert.equal(m.sampling, false, 'idle: no sampling timer');
      const a = m.busy();
      const b = m.busy();
      assert.equal(m.sampling, true);
      a();
      a(); // a second release of the same holder is a no-op
      mock.timers.tick(5000);
      assert.equal(m.sampling, true, 'one holder still open');
      b();
      mock.timers.tick(999);
      assert.equal(m.sampling, true, 'tail not over');
      const c = m.busy(); // new work during the tail keeps sampling and cancels the tail
      mock.timers.tick(2000);
      assert.equal(m.sampling, true);
      c();
      mock.timers.tick(1000);
      assert.equal(m.sampling, false, 'back to idle: no timer left');
      m.close();
    } finally {
      mock.timers.reset();
    }
  });

  it('reports the window since the last scrape, 0 when nothing ran', async () => {
    const registry = new Registry();
    const m = new LoopLagMonitor({ resolutionMs: 1, tailMs: 10_000 });
    m.register(registry);
    const p99 = async () => (await registry.getSingleMetric('nodejs_eventloop_lag_p99_seconds')!.get()).values[0]!.value;
    const release = m.busy();
    await new Promise((r) => setTimeout(r, 5)); // let the sampling timer start
    const t0 = Date.now();
    while (Date.now() - t0 < 60) { /* block the loop: a lag of ~60 ms */ }
    await new Promise((r) => setTimeout(r, 20));
    await registry.metrics();
    const max = (await registry.getSingleMetric('nodejs_eventloop_lag_max_seconds')!.get()).values[0]!.value;
    assert.ok(max > 0.02, `the blocked loop shows as lag (max ${max})`);
    release();
    m.close();
    await registry.metrics(); // the previous scrape reset the window; nothing was sampled since
    assert.equal(await p99(), 0);
  });

  it('the agent registry has every prom-client default metric', async () => {
    const ours = createAgentMetrics({ nodeName: 'n', version: 'v', sysctls: false });
    const theirs = new Registry();
    collectDefaultMetrics({ register: theirs });
    const names = (r: Registry) => r.getMetricsAsArray().map((x) => x.name).sort();
    const have = new Set(names(ours.registry));
    for (const n of names(theirs)) assert.ok(have.has(n), `missing default metric ${n}`);
    ours.close();
  });
});
