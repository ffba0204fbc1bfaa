import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ObjectStore } from '../../agent/src/k8s/store.ts';
import type { Pod } from '../../agent/src/k8s/types.ts';

const pod = (name: string, rv: string, ns = 'default'): Pod => ({ metadata: { name, namespace: ns, resourceVersion: rv } });

describe('object store', () => {
  it('emits once per real change, keyed ns/name', () => {
    const s = new ObjectStore<Pod>();
    const ev: string[] = [];
    const unsub = s.subscribe((e, o, old) => ev.push(`${e}:${o.metadata!.name}@${o.metadata!.resourceVersion}${old ? `<${old.metadata!.resourceVersion}` : ''}`));
    s.upsert(pod('a', '1'));
    s.upsert(pod('a', '1'));
    s.upsert(pod('a', '2'));
    s.upsert(pod('b', '3', 'kube-system'));
    s.remove(pod('a', '9'));
    s.remove(pod('zz', '1'));
    assert.deepEqual(ev, ['add:a@1', 'update:a@2<1', 'add:b@3', 'delete:a@2<2']);
    assert.deepEqual(s.keys(), ['kube-system/b']);
    unsub();
    s.upsert(pod('c', '1'));
    assert.equal(ev.length, 4);
  });
  it('replace() emits exactly the differences of a relist', () => {
    const s = new ObjectStore<Pod>();
    s.replace([pod('a', '1'), pod('b', '1'), pod('c', '1')]);
    const ev: string[] = [];
    s.subscribe((e, o) => ev.push(`${e}:${o.metadata!.name}`));
    s.replace([pod('a', '1'), pod('b', '2'), pod('d', '1')]);
    assert.deepEqual(ev, ['delete:c', 'update:b', 'add:d']);
    assert.equal(s.size, 3);
  });
  it('a throwing listener does not break the others', () => {
    const s = new ObjectStore<Pod>();
    let seen = 0;
    s.subscribe(() => { throw new Error('boom'); });
    s.subscribe(() => { seen++; });
    s.upsert(pod('a', '1'));
    assert.equal(seen, 1);
  });
});
