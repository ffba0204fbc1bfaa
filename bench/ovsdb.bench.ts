// OVSDB benchmarks: the native client (one persistent connection) against `ovs-vsctl` doing the same thing, in the
// same run, on a private ovsdb-server + ovs-vswitchd (userspace datapath) in a namespace of our own (prefix koaob).
//   ovsdb.port_add       add a pod port with the upstream external_ids, not waiting for vswitchd (ovs-vsctl --no-wait)
//   ovsdb.port_add_wait  the same, returning once ovs-vswitchd applied it (next_cfg/cur_cfg; ovs-vsctl without --no-wait)
//   ovsdb.port_del       delete the port with its interface (ovs-vsctl --no-wait --if-exists --with-iface del-port)
//   ovsdb.port_add_x100  100 concurrent adds, total ms per batch (100 concurrent ovs-vsctl processes as baseline)
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { BenchContext } from './lib.ts';
import { report, percentile } from './lib.ts';
import { cleanupAll, newPrefix } from '../integration/bed/netns.ts';
import { startOvs } from '../integration/bed/ovs.ts';
import { OvsVswitch } from '../agent/src/datapath/ovsdb/vswitch.ts';
import type { PodPortSpec } from '../agent/src/datapath/ovsdb/port.ts';

export const ids = ['ovsdb.port_add', 'ovsdb.port_add_wait', 'ovsdb.port_del', 'ovsdb.port_add_x100'] as const;
const exec = promisify(execFile);

const spec = (name: string, i = 0): PodPortSpec => ({
  name, ifaceId: `bench${i}.default`, podName: `bench${i}`, podNamespace: 'default', podNetns: '/var/run/netns/cni-bench', ips: ['10.16.0.50'],
});
const vsctlAdd = (name: string, i = 0): string[] => {
  const s = spec(name, i);
  return ['--may-exist', 'add-port', 'br-int', name, '--', 'set', 'interface', name, `external_ids:iface-id=${s.ifaceId}`,
    'external_ids:vendor=kube-ovn', `external_ids:pod_name=${s.podName}`, `external_ids:pod_namespace=${s.podNamespace}`,
    `external_ids:pod_netns=${s.podNetns}`, 'external_ids:ip=10.16.0.50'];
};

export default async function bench(ctx: BenchContext): Promise<void> {
  if (!ids.some((id) => ctx.wants(id))) return;
  const prefix = newPrefix('koaob');
  try {
    const ovs = await startOvs({ prefix, name: 'node' });
    await ovs.addBridge('br-int');
    // a real device, so vswitchd has work to do when it applies the change (as for a pod's veth)
    await ovs.nodeNs.ip(['link', 'add', 'koaobv0', 'type', 'veth', 'peer', 'name', 'koaobv0p']);
    await ovs.nodeNs.ip(['link', 'set', 'koaobv0', 'up']);
    const vsctl = (args: string[]): Promise<unknown> => exec('ovs-vsctl', ['--timeout=10', ...args], { env: ovs.env });
    const vs = await OvsVswitch.connect({ remote: `unix:${ovs.dbSock}` });
    const N = 50;
    try {
      if (ctx.wants('ovsdb.port_add')) {
        const base: number[] = [];
        const ours: number[] = [];
        for (let i = -3; i < N; i++) {
          let t = performance.now();
          await vsctl(['--no-wait', ...vsctlAdd('koaobv0')]);
          if (i >= 0) base.push(performance.now() - t);
          await vs.client.waitUntil(() => vs.getPort('koaobv0'), 5000, () => 'port in replica');
          await vs.deletePort('koaobv0');
          t = performance.now();
          await vs.addPodPort(spec('koaobv0'));
          if (i >= 0) ours.push(performance.now() - t);
          await vs.deletePort('koaobv0');
        }
        report('ovsdb.port_add', 'ms', ours, { name: 'ovs-vsctl --no-wait add-port', p50: percentile(base, 50) });
      }
      if (ctx.wants('ovsdb.port_add_wait')) {
        const base: number[] = [];
        const ours: number[] = [];
        for (let i = -3; i < N; i++) {
          let t = performance.now();
          await vsctl(vsctlAdd('koaobv0'));
          if (i >= 0) base.push(performance.now() - t);
          await vs.deletePort('koaobv0', { wait: true });
          t = performance.now();
          await vs.addPodPort(spec('koaobv0'), { wait: true });
          if (i >= 0) ours.push(performance.now() - t);
          await vs.deletePort('koaobv0', { wait: true });
        }
        report('ovsdb.port_add_wait', 'ms', ours, { name: 'ovs-vsctl add-port (waits for vswitchd)', p50: percentile(base, 50) });
      }
      if (ctx.wants('ovsdb.port_del')) {
        const base: number[] = [];
        const ours: number[] = [];
        for (let i = -3; i < N; i++) {
          await vs.addPodPort(spec('koaobv0'));
          let t = performance.now();
          await vsctl(['--no-wait', '--if-exists', '--with-iface', 'del-port', 'br-int', 'koaobv0']);
          if (i >= 0) base.push(performance.now() - t);
          await vs.client.waitUntil(() => (vs.getPort('koaobv0') ? undefined : true), 5000, () => 'port gone');
          await vs.addPodPort(spec('koaobv0'));
          t = performance.now();
          await vs.deletePort('koaobv0');
          if (i >= 0) ours.push(performance.now() - t);
        }
        report('ovsdb.port_del', 'ms', ours, { name: 'ovs-vsctl --no-wait --if-exists --with-iface del-port', p50: percentile(base, 50) });
      }
      if (ctx.wants('ovsdb.port_add_x100')) {
        const names = Array.from({ length: 100 }, (_, i) => `koaobx${i}`);
        const clear = async (): Promise<void> => { await Promise.all(names.map((n) => vs.deletePort(n))); };
        const base: number[] = [];
        const ours: number[] = [];
        for (let r = -1; r < 5; r++) {
          let t = performance.now();
          await Promise.all(names.map((n, i) => vsctl(['--no-wait', ...vsctlAdd(n, i)])));
          if (r >= 0) base.push(performance.now() - t);
          await vs.client.waitUntil(() => (names.every((n) => vs.getPort(n)) ? true : undefined), 10_000, () => 'ports in replica');
          await clear();
          t = performance.now();
          await Promise.all(names.map((n, i) => vs.addPodPort(spec(n, i))));
          if (r >= 0) ours.push(performance.now() - t);
          await clear();
        }
        report('ovsdb.port_add_x100', 'ms', ours, { name: '100 concurrent ovs-vsctl --no-wait add-port', p50: percentile(base, 50) });
      }
    } finally {
      vs.close();
    }
  } finally {
    await cleanupAll();
  }
}
