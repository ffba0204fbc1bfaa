import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_BACKOFF, nextRestart, restartDelay, schedule } from '../../agent/src/k8s/backoff.ts';

describe('watch restart backoff (pure)', () => {
  const o = { baseMs: 500, maxMs: 30_000, factor: 2, jitter: 0.2, minIntervalMs: 1000, stableMs: 60_000 };
  it('doubles from the base up to the cap, never below the minimum interval', () => {
    assert.deepEqual(schedule(9, o), [1000, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });
  it('jitter stays within +-20 %', () => {
    assert.equal(restartDelay(3, o, 0), 3200);
    assert.equal(restartDelay(3, o, 0.999999), 4800);
    assert.equal(restartDelay(20, o, 0.999999), 36000);
    for (let i = 0; i < 50; i++) {
      const d = restartDelay(4, o, Math.random());
      assert.ok(d >= 6400 && d <= 9600, String(d));
    }
  });
  it('keeps restarts at least minIntervalMs apart and resets after a stable run', () => {
    assert.deepEqual(nextRestart(10_000, 9_900, 0, { ...o, baseMs: 10 }, 0.5), { at: 11_000, attempt: 0 });
    assert.deepEqual(nextRestart(100_000, 99_000, 5, o, 0.5), { at: 116_000, attempt: 5 });
    assert.deepEqual(nextRestart(100_000, 30_000, 5, o, 0.5), { at: 101_000, attempt: 0 });
  });
  it('has sane defaults', () => {
    assert.ok(DEFAULT_BACKOFF.minIntervalMs >= 1000);
    assert.ok(DEFAULT_BACKOFF.maxMs <= 60_000);
  });
});
