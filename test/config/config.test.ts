import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, FLAGS } from '../../agent/src/config/config.ts';
import { parseDuration, formatDuration } from '../../agent/src/config/duration.ts';
import { parseFlags, parseGoBool } from '../../agent/src/config/flags.ts';
import { nodePodMtu, tunnelOverhead } from '../../agent/src/config/mtu.ts';
import { AgentError } from '../../agent/src/errors.ts';

const load = (argv: string[], env: Record<string, string> = {}, host = 'Node-1') => loadConfig(argv, env, host);

function configError(fn: () => unknown): AgentError {
  try { fn(); } catch (e) { assert.ok(e instanceof AgentError); return e; }
  assert.fail('expected an AgentError');
}

describe('config: defaults', () => {
  it('has the upstream defaults with no flags', () => {
    const c = load([]);
    assert.equal(c.nodeName, 'node-1');
    assert.equal(c.bindSocket, '/run/openvswitch/kube-ovn-daemon.sock');
    assert.equal(c.ovsSocket, '/run/openvswitch/db.sock');
    assert.equal(c.networkType, 'geneve');
    assert.equal(c.mtu, 0);
    assert.equal(c.encapChecksum, true);
    assert.equal(c.pprofPort, 10665);
    assert.equal(c.enableMetrics, true);
    assert.equal(c.enableArpDetectIpConflict, true);
    assert.deepEqual(c.serviceClusterIpRange, ['10.96.0.0/12']);
    assert.equal(c.clusterRouter, 'ovn-cluster');
    assert.equal(c.nodeSwitch, 'join');
    assert.equal(c.dpdkTunnelIface, 'br-phy');
    assert.equal(c.mirrorIface, 'mirror0');
    assert.equal(c.kubeletDir, '/var/lib/kubelet');
    assert.equal(c.ovsVsctlConcurrency, 100);
    assert.equal(c.tcpConnCheckPort, 8100);
    assert.equal(c.udpConnCheckPort, 8101);
    assert.equal(c.logPerm, 0o640);
    assert.equal(c.ovnIpsecCertDuration, 63072000);
    assert.deepEqual(c.listenAddresses, ['0.0.0.0']);
    assert.equal(c.kubeconfig, '');
    assert.equal(c.annotationWaitTimeoutMs, 60_000);
    assert.equal(c.ovnInstalledTimeoutMs, 30_000);
    assert.equal(c.watchIdleTimeoutMs, 300_000);
    assert.equal(c.maxParallelAdds, 32);
    assert.equal(load(['--max-parallel-adds=128']).maxParallelAdds, 128);
    assert.equal(load([], { KOA_MAX_PARALLEL_ADDS: '64' }).maxParallelAdds, 64);
    assert.throws(() => load(['--max-parallel-adds=0']), /max-parallel-adds/);
    assert.equal(c.nodeReadyTimeoutMs, 30_000);
    assert.equal(c.nodeResyncMs, 0, 'built-in resync periods');
    assert.equal(c.ipConflictProbeMs, 60);
    assert.equal(c.delQueueDir, '/run/openvswitch/kube-ovn-del-queue');
    assert.equal(c.logLevel, 'info');
  });
  it('is frozen, lists included', () => {
    const c = load([]);
    assert.ok(Object.isFrozen(c));
    assert.ok(Object.isFrozen(c.serviceClusterIpRange));
    assert.throws(() => { (c as { mtu: number }).mtu = 5; });
  });
  it('every flag default parses (the table is self-consistent)', () => {
    assert.ok(FLAGS.length > 50);
    assert.equal(new Set(FLAGS.map((f) => f.name)).size, FLAGS.length);
  });
});

describe('config: node name', () => {
  it('prefers --node-name, then KUBE_NODE_NAME, then NODE_NAME, then the hostname; lower-cased', () => {
    const env = { KUBE_NODE_NAME: 'Kube-A', NODE_NAME: 'node-b' };
    assert.equal(load(['--node-name=Flag-N'], env).nodeName, 'flag-n');
    assert.equal(load([], env).nodeName, 'kube-a');
    assert.equal(load([], { NODE_NAME: 'node-b' }).nodeName, 'node-b');
    assert.equal(load([], {}, 'HOST').nodeName, 'host');
    assert.equal(load([], { NODE_NAME: '' }, 'h2').nodeName, 'h2');
  });
  it('rejects an empty or invalid node name', () => {
    assert.match(configError(() => load([], {}, '')).message, /node name/);
    assert.match(configError(() => load(['--node-name', 'bad_name!'])).message, /not a valid Kubernetes node name/);
  });
});

describe('config: flag syntax', () => {
  it('accepts --a=b, --a b, -a=b, bare bools and explicit false', () => {
    const c = load(['--mtu', '1400', '-iface=eth1', '--enable-mirror', '--encap-checksum=false', '--network-type=vxlan']);
    assert.equal(c.mtu, 1400);
    assert.equal(c.iface, 'eth1');
    assert.equal(c.enableMirror, true);
    assert.equal(c.encapChecksum, false);
    assert.equal(c.networkType, 'vxlan');
  });
  it('the last occurrence wins, as with Go flags', () => {
    assert.equal(load(['--mtu=1400', '--mtu=1300']).mtu, 1300);
  });
  it('accepts the klog flags the DaemonSet passes', () => {
    const c = load(['--logtostderr=false', '--alsologtostderr=true', '--log_file=/var/log/kube-ovn/kube-ovn-cni.log',
      '--log_file_max_size=200', '--v=3']);
    assert.equal(c.logVerbosity, 3);
  });
  it('reads durations in Go syntax, and env for our own flags', () => {
    assert.equal(load(['--annotation-wait-timeout=1m30s']).annotationWaitTimeoutMs, 90_000);
    assert.equal(load([], { KOA_ANNOTATION_WAIT_TIMEOUT: '2500ms' }).annotationWaitTimeoutMs, 2500);
    assert.equal(load(['--annotation-wait-timeout=5s'], { KOA_ANNOTATION_WAIT_TIMEOUT: '2500ms' }).annotationWaitTimeoutMs, 5000);
    assert.equal(load([], { KUBECONFIG: '/tmp/kc' }).kubeconfig, '/tmp/kc');
  });
  it('--node-resync-period is in seconds (ours: upstream has none), 0 to one day', () => {
    assert.equal(load(['--node-resync-period=2']).nodeResyncMs, 2000);
    assert.equal(load([], { KOA_NODE_RESYNC_PERIOD: '5' }).nodeResyncMs, 5000);
    assert.match(configError(() => load(['--node-resync-period=-1'])).message, /--node-resync-period="-1": expected an integer in \[0, 86400\]/);
  });
  it('--enable-external-lb-address is on by default (upstream always runs the flows), off by flag or env', () => {
    assert.equal(load([]).enableExternalLbAddress, true);
    assert.equal(load(['--enable-external-lb-address=false']).enableExternalLbAddress, false);
    assert.equal(load([], { KOA_ENABLE_EXTERNAL_LB_ADDRESS: 'false' }).enableExternalLbAddress, false);
  });
  it('binds to POD_IPS with ENABLE_BIND_LOCAL_IP=true', () => {
    const c = load([], { ENABLE_BIND_LOCAL_IP: 'true', POD_IPS: '10.0.0.5,fd00::5', POD_IP: '10.0.0.5' });
    assert.deepEqual(c.listenAddresses, ['10.0.0.5', 'fd00::5']);
    assert.equal(c.podIp, '10.0.0.5');
  });
});

describe('config: validation', () => {
  it('--pprof-port=0 means an ephemeral port (tests start several agents)', () => {
    assert.equal(load(['--pprof-port=0']).pprofPort, 0);
    assert.ok(configError(() => load(['--pprof-port=-1'])).message.includes('--pprof-port="-1"'));
  });
  it('lists every invalid setting in one error', () => {
    const e = configError(() => load(['--mtu=abc', '--network-type=gre', '--pprof-port=70000', '--encap-checksum=maybe',
      '--bogus', '--annotation-wait-timeout=5min', '--service-cluster-ip-range=10.96.0.0/12,nope', '--bind-socket=rel.sock',
      '--log-perm=9', '--log-level=loud']));
    assert.equal(e.code, 'KOA_CONFIG');
    for (const needle of ['--mtu="abc"', '--network-type="gre"', '--pprof-port="70000"', '--encap-checksum="maybe"',
      'unknown flag --bogus', '--annotation-wait-timeout="5min"', '"nope" is not a CIDR', '--bind-socket="rel.sock"',
      '--log-perm="9"', '--log-level="loud"']) {
      assert.ok(e.message.includes(needle), `missing ${needle} in: ${e.message}`);
    }
    assert.match(e.message, /^invalid configuration: 10 invalid settings: /);
  });
  it('rejects a timeout at or above kubelet\'s CRI timeout and too small MTUs', () => {
    assert.match(configError(() => load(['--annotation-wait-timeout=2m'])).message, /between 100ms and/);
    assert.match(configError(() => load(['--mtu=60'])).message, /at least 68/);
  });
  it('rejects a missing value, positionals, and bind-local without POD_IPS', () => {
    assert.match(configError(() => load(['--iface'])).message, /--iface needs a value/);
    assert.match(configError(() => load(['extra'])).message, /unexpected arguments: extra/);
    assert.match(configError(() => load([], { ENABLE_BIND_LOCAL_IP: 'true' })).message, /needs POD_IPS/);
    assert.match(configError(() => load([], { POD_IPS: '1.2.3' })).message, /POD_IPS: "1.2.3"/);
    assert.match(configError(() => load([], { KOA_WATCH_IDLE_TIMEOUT: 'x' })).message, /env KOA_WATCH_IDLE_TIMEOUT="x"/);
  });
});

describe('config: helpers', () => {
  it('parses Go durations', () => {
    const cases: [string, number | undefined][] = [['0', 0], ['60s', 60000], ['1m30s', 90000], ['500ms', 500], ['1.5s', 1500],
      ['2h', 7_200_000], ['1000us', 1], ['', undefined], ['60', undefined], ['-1s', undefined], ['1x', undefined], ['s', undefined]];
    for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
    assert.equal(formatDuration(90_000), '90s');
    assert.equal(formatDuration(300_000), '5m');
    assert.equal(formatDuration(1500), '1500ms');
  });
  it('parses Go booleans', () => {
    for (const t of ['1', 't', 'T', 'true', 'TRUE', 'True']) assert.equal(parseGoBool(t), true);
    for (const f of ['0', 'f', 'F', 'false', 'FALSE', 'False']) assert.equal(parseGoBool(f), false);
    assert.equal(parseGoBool('yes'), undefined);
  });
  it('stops at --', () => {
    const p = parseFlags(['--a=1', '--', '--b'], [{ name: 'a', kind: 'string' }]);
    assert.deepEqual(p.positionals, ['--b']);
    assert.equal(p.values.get('a'), '1');
  });
  it('computes the pod MTU by encap type (spec §5.2)', () => {
    assert.equal(tunnelOverhead('geneve', false), 100);
    assert.equal(tunnelOverhead('vlan', false), 100);
    assert.equal(tunnelOverhead('vxlan', false), 50);
    assert.equal(tunnelOverhead('stt', false), 72);
    assert.equal(tunnelOverhead('geneve', true), 120);
    assert.deepEqual(nodePodMtu(0, 1500, 'geneve', false), { mtu: 1400 });
    assert.deepEqual(nodePodMtu(0, 1500, 'vxlan', true), { mtu: 1430 });
    assert.deepEqual(nodePodMtu(1333, 9000, 'geneve', false), { mtu: 1333 });
    assert.equal(nodePodMtu(0, 1300, 'geneve', false).warning, 'pod MTU 1200 is below 1280, the IPv6 minimum');
  });
});
