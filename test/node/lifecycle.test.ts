// Components start in order and stop in reverse; a failed start stops what started; readiness is registered once.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { component, Lifecycle } from '../../agent/src/lifecycle.ts';
import { NodeGate } from '../../agent/src/node/gate.ts';
import { Readiness } from '../../agent/src/observe/health.ts';
import { AgentError } from '../../agent/src/errors.ts';

describe('Lifecycle', { timeout: 30_000 }, () => {
  it('starts in order, stops in reverse, and the readiness registry names each component', async () => {
    const events: string[] = [];
    const readiness = new Readiness();
    let bReady: true | string = 'b: warming up';
    const life = new Lifecycle({ readiness })
      .add(component('a', { start: () => { events.push('start a'); }, stop: () => { events.push('stop a'); } }))
      .add(component('b', { start: () => { events.push('start b'); }, stop: () => { events.push('stop b'); }, ready: () => bReady }))
      .add(component('c', { start: () => { events.push('start c'); }, stop: () => { throw new Error('c cannot stop'); } }));
    await life.start();
    assert.deepEqual(events, ['start a', 'start b', 'start c']);
    let e = await readiness.evaluate();
    assert.deepEqual(e.checks.map((c) => [c.name, c.ok, c.reason]), [['a', true, 'ok'], ['b', false, 'b: warming up'], ['c', true, 'ok']]);
    bReady = true;
    e = await readiness.evaluate();
    assert.equal(e.ok, true);
    await life.stop();
    assert.deepEqual(events, ['start a', 'start b', 'start c', 'stop b', 'stop a'], 'a failing stop does not stop the others');
    assert.deepEqual(readiness.names(), [], 'readiness checks go with the components');
    await life.stop(); // idempotent
  });

  it('until every component started, readiness names what is starting or waiting; a failed start stops the started ones in reverse', async () => {
    const events: string[] = [];
    const readiness = new Readiness();
    let seenWhileStarting: string[] = [];
    const life = new Lifecycle({ readiness })
      .add(component('a', { start: () => { events.push('start a'); }, stop: () => { events.push('stop a'); } }))
      .add(component('b', { start: async () => { seenWhileStarting = (await readiness.evaluate()).checks.map((c) => `${c.name}=${c.reason}`); events.push('start b'); },
        stop: () => { events.push('stop b'); }, ready: () => true }))
      .add(component('c', { start: () => { throw new Error('no OVSDB'); }, stop: () => { events.push('stop c'); } }));
    await assert.rejects(life.start(), /no OVSDB/);
    assert.deepEqual(seenWhileStarting, ['a=ok', 'b=b: starting', 'c=c: waiting']);
    assert.deepEqual(events, ['start a', 'start b', 'stop b', 'stop a'], 'c never started, so it is not stopped');
  });

  it('refuses a component listed twice', () => {
    const life = new Lifecycle().add(component('a', {}));
    assert.throws(() => life.add(component('a', {})), /listed twice/);
  });
});

describe('NodeGate', { timeout: 30_000 }, () => {
  it('holds ADDs until open, in the order they arrived', async () => {
    const gate = new NodeGate();
    const order: string[] = [];
    const a = gate.wait(60_000).then(() => order.push('a'));
    const b = gate.wait(60_000).then(() => order.push('b'));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, []);
    gate.open();
    await Promise.all([a, b]);
    assert.deepEqual(order, ['a', 'b']);
    await gate.wait(1); // open: at once
  });

  it('times out with code 11 naming what the node waits for', async () => {
    const gate = new NodeGate();
    gate.progress('waiting for the node annotations');
    const e = await gate.wait(20).catch((x: unknown) => x);
    assert.ok(e instanceof AgentError);
    assert.equal(e.cniCode, 11);
    assert.match(e.message, /not initialised after 20 ms: waiting for the node annotations/);
    gate.open();
    gate.close('repairing ovn0');
    assert.equal(gate.reason, 'repairing ovn0');
  });
});
