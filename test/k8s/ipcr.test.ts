import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ipCrPatched, updateIpCr, type IpCrApi } from '../../agent/src/k8s/ipcr.ts';
import { subnetFacts, subnetForProvider } from '../../agent/src/pod/subnets.ts';
import type { IpCr, Subnet } from '../../agent/src/k8s/types.ts';

const ip = (nodeName: string): IpCr => ({
  apiVersion: 'kubeovn.io/v1', kind: 'IP',
  metadata: { name: 'p.ns', resourceVersion: '5', labels: { 'ovn.kubernetes.io/subnet': 'ovn-default' } },
  spec: { podName: 'p', namespace: 'ns', subnet: 'ovn-default', nodeName, ipAddress: '10.16.0.9', attachIps: ['1.1.1.1'], attachMacs: ['m'], attachSubnets: ['s'] },
});

class FakeIpApi implements IpCrApi {
  calls: string[] = [];
  script: (IpCr | undefined | Error)[];
  replaced: IpCr[] = [];
  replaceErrors: Error[] = [];
  constructor(script: (IpCr | undefined | Error)[]) { this.script = script; }
  async get(name: string): Promise<IpCr | undefined> {
    this.calls.push(`get ${name}`);
    const v = this.script.length > 1 ? this.script.shift() : this.script[0];
    if (v instanceof Error) throw v;
    return v;
  }
  async replace(o: IpCr): Promise<void> {
    this.calls.push(`put ${o.metadata!.name}`);
    const e = this.replaceErrors.shift();
    if (e) throw e;
    this.replaced.push(o);
  }
}

describe('IP CR update (spec §3.3)', () => {
  it('sets nodeName, clears attach*, adds the subnet and node-name labels', () => {
    assert.deepEqual(ipCrPatched(ip('other'), 'ovn-default', 'node-1'), {
      apiVersion: 'kubeovn.io/v1', kind: 'IP',
      metadata: { name: 'p.ns', resourceVersion: '5', labels: { 'ovn.kubernetes.io/subnet': 'ovn-default', 'ovn-default': '', 'ovn.kubernetes.io/node-name': 'node-1' } },
      spec: { podName: 'p', namespace: 'ns', subnet: 'ovn-default', nodeName: 'node-1', ipAddress: '10.16.0.9', attachIps: [], attachMacs: [], attachSubnets: [] },
    });
    assert.equal(ipCrPatched(ip('node-1'), 'ovn-default', 'node-1'), undefined);
  });
  it('updates once, or does nothing when already on this node', async () => {
    const api = new FakeIpApi([ip('')]);
    assert.deepEqual(await updateIpCr(api, 'p.ns', 'ovn-default', 'node-1', { delayMs: 1 }), { result: 'updated', attempts: 1 });
    assert.deepEqual(api.calls, ['get p.ns', 'put p.ns']);
    assert.equal(api.replaced[0]!.spec!.nodeName, 'node-1');
    const api2 = new FakeIpApi([ip('node-1')]);
    assert.deepEqual(await updateIpCr(api2, 'p.ns', 'ovn-default', 'node-1', { delayMs: 1 }), { result: 'unchanged', attempts: 1 });
  });
  it('retries a conflict with a fresh GET, and a CR that appears late', async () => {
    const api = new FakeIpApi([ip('')]);
    api.replaceErrors.push(Object.assign(new Error('PUT ips/p.ns: HTTP 409: conflict'), { statusCode: 409 }));
    assert.deepEqual(await updateIpCr(api, 'p.ns', 'ovn-default', 'node-1', { delayMs: 1 }), { result: 'updated', attempts: 2 });
    const late = new FakeIpApi([undefined, undefined, ip('')]);
    assert.deepEqual(await updateIpCr(late, 'p.ns', 'ovn-default', 'node-1', { delayMs: 1 }), { result: 'updated', attempts: 3 });
  });
  it('never throws: reports missing or failed after the attempts', async () => {
    const missing = await updateIpCr(new FakeIpApi([undefined]), 'p.ns', 's', 'n', { attempts: 3, delayMs: 1 });
    assert.deepEqual(missing, { result: 'missing', attempts: 3, error: 'IP p.ns not found' });
    const failed = await updateIpCr(new FakeIpApi([new Error('HTTP 500')]), 'p.ns', 's', 'n', { attempts: 2, delayMs: 1 });
    assert.deepEqual(failed, { result: 'failed', attempts: 2, error: 'HTTP 500' });
  });
  it('stops retrying when aborted', async () => {
    const ac = new AbortController();
    const p = updateIpCr(new FakeIpApi([undefined]), 'p.ns', 's', 'n', { attempts: 20, delayMs: 10_000, signal: ac.signal });
    setTimeout(() => ac.abort(), 10);
    // without the abort the next attempt would start only 10 s later: the race tells which came first
    const r = await Promise.race([p, new Promise<'still retrying'>((res) => setTimeout(() => res('still retrying'), 9_000).unref())]);
    assert.notEqual(r, 'still retrying');
    assert.equal((r as Awaited<typeof p>).result, 'missing');
  });
});

describe('subnets', () => {
  const subs: Subnet[] = [
    { metadata: { name: 'ovn-default' }, spec: { provider: 'ovn' } },
    { metadata: { name: 'attach' }, spec: { provider: 'attachnet.default.ovn', mtu: 1300, vlan: 'v1', logicalGateway: true, disableGatewayCheck: true, nodeNetwork: 'n1' },
      status: { u2oInterconnectionIP: '10.0.0.254' } },
  ];
  it('finds the subnet a provider is bound to (ifname suffix stripped); ovn needs none', () => {
    assert.equal(subnetForProvider(subs, 'ovn', 'eth0'), null);
    assert.equal(subnetForProvider(subs, 'attachnet.default.ovn', 'net1')?.metadata?.name, 'attach');
    assert.equal(subnetForProvider(subs, 'attachnet.default.ovn.net2', 'net2')?.metadata?.name, 'attach');
    assert.equal(subnetForProvider(subs, 'nope.default', 'net1'), undefined);
  });
  it('extracts the planner facts', () => {
    assert.deepEqual(subnetFacts(subs[1]!), { name: 'attach', mtu: 1300, vlan: 'v1', logicalGateway: true,
      u2oInterconnectionIp: '10.0.0.254', disableGatewayCheck: true, nodeNetwork: 'n1' });
    assert.deepEqual(subnetFacts(subs[0]!), { name: 'ovn-default' });
  });
});
