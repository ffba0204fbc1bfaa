// The service CIDRs: the flag merged with Ready ServiceCIDR objects (pure), and the source that watches them only
// when discovery says the API serves them (driven by a fake informer and a manual clock).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeRest } from '../../agent/src/k8s/rest.ts';
import { servesServiceCidrs } from '../../agent/src/k8s/client.ts';
import { mergeServiceCidrs, readyServiceCidrs, ServiceCidrSource, type ServiceCidr } from '../../agent/src/k8s/service-cidrs.ts';
import { ResilientListWatch } from '../../agent/src/k8s/watch.ts';
import type { KubeList } from '../../agent/src/k8s/types.ts';
import { FakeInformer, ManualTimers, flush } from './fakes.ts';

const sc = (name: string, cidrs: string[], ready: 'True' | 'False' | undefined, rv = '1'): ServiceCidr => ({
  metadata: { name, resourceVersion: rv }, spec: { cidrs },
  ...(ready ? { status: { conditions: [{ type: 'Ready', status: ready }] } } : {}),
});
const backoff = { baseMs: 500, maxMs: 8000, factor: 2, jitter: 0, minIntervalMs: 500, stableMs: 60_000 };

describe('mergeServiceCidrs', () => {
  it('is the flag alone when there are no objects (an API without ServiceCIDRs)', () => {
    assert.deepEqual(mergeServiceCidrs(['10.96.0.0/12'], []), ['10.96.0.0/12']);
  });

  it('adds the Ready objects\' CIDRs after the flag, in name order, each once', () => {
    const objs = [
      sc('second', ['10.100.0.0/16', 'fd00:10:96::/112'], 'True'),
      sc('kubernetes', ['10.96.0.0/12'], 'True'), // the default object mirrors the API server's own flag
      sc('b-also', ['10.100.0.0/16'], 'True'),
    ];
    assert.deepEqual(mergeServiceCidrs(['10.96.0.0/12'], objs), ['10.96.0.0/12', '10.100.0.0/16', 'fd00:10:96::/112']);
    assert.deepEqual(readyServiceCidrs(objs), ['10.100.0.0/16', '10.96.0.0/12', '10.100.0.0/16', 'fd00:10:96::/112']);
  });

  it('leaves out objects that are not Ready (no status yet, Ready False, e.g. terminating)', () => {
    const objs = [sc('new', ['10.200.0.0/16'], undefined), sc('going', ['10.201.0.0/16'], 'False'),
      { metadata: { name: 'other' }, spec: { cidrs: ['10.202.0.0/16'] }, status: { conditions: [{ type: 'Other', status: 'True' }] } }];
    assert.deepEqual(mergeServiceCidrs(['10.96.0.0/12'], objs), ['10.96.0.0/12']);
  });

  it('compares canonical networks and drops what is not a CIDR', () => {
    assert.deepEqual(mergeServiceCidrs(['10.96.0.1/12', 'nonsense'], [sc('k', ['10.96.0.0/12', 'fd00:0:0::0/112', 'x/y'], 'True')]),
      ['10.96.0.0/12', 'fd00::/112']);
  });
});

function source(discover: () => Promise<boolean>, lists: KubeList<ServiceCidr>[] = [{ items: [] }]) {
  const timers = new ManualTimers();
  const informers: FakeInformer<ServiceCidr>[] = [];
  let built = 0;
  let calls = 0;
  const s = new ServiceCidrSource({
    discover,
    watch: () => {
      built++;
      return new ResilientListWatch<ServiceCidr>({
        resource: 'servicecidrs', list: async () => lists[Math.min(calls++, lists.length - 1)]!,
        informer: (l) => { const f = new FakeInformer(l); informers.push(f); return f; },
        idleTimeoutMs: 300_000, backoff, timers, random: () => 0.5,
      });
    },
    backoff, timers, random: () => 0.5,
  });
  return { s, timers, informers, built: () => built };
}

describe('ServiceCidrSource', () => {
  it('an API without the resource (discovery says no, e.g. a 404): no watch, synced and healthy, no objects', async () => {
    const { s, built } = source(async () => false);
    s.start();
    await s.waitSynced();
    assert.equal(s.state, 'absent');
    assert.equal(built(), 0, 'no watch is built, so nothing asks the API for servicecidrs');
    assert.deepEqual(s.list(), []);
    const h = s.health();
    assert.deepEqual([h.resource, h.synced, h.healthy, h.lastError], ['servicecidrs', true, true, undefined]);
    assert.deepEqual(mergeServiceCidrs(['10.96.0.0/12'], s.list()), ['10.96.0.0/12']);
    await s.stop();
  });

  it('a failing discovery is retried on the backoff schedule; not synced until it answers', async () => {
    let n = 0;
    const { s, timers, built } = source(async () => { if (n++ < 2) throw new Error('connect ECONNREFUSED'); return true; });
    let synced = false;
    s.start();
    void s.waitSynced().then(() => { synced = true; });
    await flush();
    assert.deepEqual([s.state, s.health().synced, s.health().lastError], ['discovering', false, 'connect ECONNREFUSED']);
    assert.deepEqual(timers.pending(), [500]);
    await timers.advance(500);
    assert.deepEqual(timers.pending().slice(0, 1), [1000], 'doubled');
    await timers.advance(1000);
    await flush();
    assert.equal(s.state, 'watching');
    assert.equal(built(), 1);
    assert.equal(synced, true, 'waiters of the discovery are released by the first list');
    assert.equal(s.health().synced, true);
    await s.stop();
  });

  it('served: lists and watches; listeners hear only changes of the Ready CIDRs', async () => {
    const { s, informers } = source(async () => true, [{ items: [sc('kubernetes', ['10.96.0.0/12'], 'True')] }]);
    const heard: string[][] = [];
    s.subscribe(() => heard.push(mergeServiceCidrs(['10.96.0.0/12'], s.list())));
    s.start();
    await s.waitSynced();
    await flush();
    assert.deepEqual(heard, [['10.96.0.0/12']], 'the first list (the default object) is one change');
    const inf = informers[0]!;
    inf.emit('add', sc('second', ['10.100.0.0/16'], undefined, '2'));
    assert.equal(heard.length, 1, 'not Ready yet: nothing to hear');
    inf.emit('update', sc('second', ['10.100.0.0/16'], 'True', '3'));
    assert.deepEqual(heard.at(-1), ['10.96.0.0/12', '10.100.0.0/16']);
    inf.emit('update', { ...sc('second', ['10.100.0.0/16'], 'True', '4'), metadata: { name: 'second', resourceVersion: '4', labels: { a: 'b' } } });
    assert.equal(heard.length, 2, 'a label change is not a CIDR change');
    inf.emit('delete', sc('second', ['10.100.0.0/16'], 'True', '4'));
    assert.deepEqual(heard.at(-1), ['10.96.0.0/12']);
    assert.equal(heard.length, 3);
    await s.stop();
    assert.equal(inf.stopped, true);
  });

  it('stop during a discovery retry: no watch is built later, waiters are released', async () => {
    const { s, timers, built } = source(async () => { throw new Error('503'); });
    s.start();
    await flush();
    const w = s.waitSynced();
    await s.stop();
    await w;
    await timers.advance(60_000);
    assert.equal(built(), 0);
    assert.deepEqual(timers.pending(), []);
  });
});

describe('servesServiceCidrs (the real client against a loopback API server)', () => {
  it('404 for the group version: no; listed: yes; not listed: no; a 500 throws (retried)', async () => {
    let answer: { status: number; body: unknown } = { status: 404, body: { kind: 'Status', code: 404, message: 'the server could not find the requested resource' } };
    const paths: string[] = [];
    const server = createServer((req, res) => {
      paths.push(req.url!);
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer.body));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as { port: number }).port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x',
    });
    const net = new KubeRest(kc);
    const list = (names: string[]) => ({ kind: 'APIResourceList', apiVersion: 'v1', groupVersion: 'networking.k8s.io/v1',
      resources: names.map((name) => ({ name, singularName: '', namespaced: false, kind: 'X', verbs: ['list', 'watch'] })) });
    try {
      assert.equal(await servesServiceCidrs(net), false);
      answer = { status: 200, body: list(['ingressclasses', 'ingresses', 'networkpolicies', 'servicecidrs', 'servicecidrs/status']) };
      assert.equal(await servesServiceCidrs(net), true);
      answer = { status: 200, body: list(['ingressclasses', 'ingresses', 'networkpolicies']) };
      assert.equal(await servesServiceCidrs(net), false);
      answer = { status: 500, body: { kind: 'Status', code: 500, message: 'etcd down' } };
      await assert.rejects(servesServiceCidrs(net), /HTTP 500/);
      assert.deepEqual(new Set(paths), new Set(['/apis/networking.k8s.io/v1']));
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
