// Netconf (upstream kube-ovn keys, IPAM-only mode, provider defaulting) and environment validation tables.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNetconf, sniffVersion } from '../../agent/src/cni/netconf.ts';
import { containerIdProblem, ifNameProblem, parseCniArgs, parseEnv, requirePod } from '../../agent/src/cni/env.ts';
import { AgentError } from '../../agent/src/errors.ts';

const SOCK = '/run/openvswitch/kube-ovn-daemon.sock';
const nc = (o: Record<string, unknown>) => JSON.stringify({ cniVersion: '1.0.0', name: 'kube-ovn', type: 'kube-ovn', server_socket: SOCK, ...o });

function codeOf(fn: () => unknown): [number, string] {
  try { fn(); } catch (e) { if (e instanceof AgentError) return [e.cniCode, e.message]; throw e; }
  return [0, ''];
}

test('netconf: upstream keys and defaults', () => {
  const c = parseNetconf(nc({ routes: [{ dst: '10.0.0.0/8', gw: '10.16.0.1' }, { gw: '10.16.0.254' }], dns: { nameservers: ['1.1.1.1'] },
    deviceID: '0000:01:00.1', vf_driver: 'vfio-pci', vhost_user_socket_volume_name: 'v', vhost_user_socket_name: 's',
    vhost_user_socket_consumption: 'kubevirt', runtimeConfig: { mac: 'x' }, unknownKey: [1, 2] }));
  assert.equal(c.provider, 'ovn');
  assert.equal(c.serverSocket, SOCK);
  assert.equal(c.ipamMode, false);
  assert.deepEqual(c.routes, [{ dst: '10.0.0.0/8', gw: '10.16.0.1' }, { gw: '10.16.0.254' }]);
  assert.deepEqual(c.dns, { nameservers: ['1.1.1.1'] });
  assert.equal(c.deviceID, '0000:01:00.1');
  assert.equal(c.vfDriver, 'vfio-pci');
  assert.equal(c.vhostUserSocketConsumption, 'kubevirt');
  assert.deepEqual(c.runtimeConfig, { mac: 'x' });
  assert.equal(c.routes && parseNetconf(nc({})).routes, null);
});

test('netconf: provider defaulting', () => {
  const table: [Record<string, unknown>, string][] = [
    [{}, 'ovn'],
    [{ provider: '' }, 'ovn'],
    [{ provider: 'attachnet.default.ovn' }, 'attachnet.default.ovn'],
    [{ type: 'macvlan', ipam: { type: 'kube-ovn', server_socket: SOCK, provider: 'macvlan.default' } }, 'macvlan.default'],
    [{ type: 'macvlan', provider: 'ignored', ipam: { type: 'kube-ovn', server_socket: SOCK } }, 'ovn'],
  ];
  for (const [o, want] of table) assert.equal(parseNetconf(nc(o)).provider, want, JSON.stringify(o));
});

test('netconf: IPAM-only mode takes server_socket, provider and routes from ipam', () => {
  const c = parseNetconf(JSON.stringify({ cniVersion: '0.3.1', name: 'macvlan', type: 'macvlan', master: 'eth0',
    ipam: { type: 'kube-ovn', server_socket: '/tmp/koac.sock', provider: 'mv.ns', routes: [{ dst: '0.0.0.0/0', gw: '172.17.0.1' }] } }));
  assert.equal(c.ipamMode, true);
  assert.equal(c.serverSocket, '/tmp/koac.sock');
  assert.equal(c.provider, 'mv.ns');
  assert.deepEqual(c.routes, [{ dst: '0.0.0.0/0', gw: '172.17.0.1' }]);
  // top-level server_socket is not used in IPAM mode
  const d = parseNetconf(JSON.stringify({ cniVersion: '0.3.1', name: 'm', type: 'macvlan', server_socket: SOCK, ipam: { type: 'kube-ovn' } }));
  assert.equal(d.serverSocket, '');
  // type kube-ovn with an ipam object is the normal mode
  assert.equal(parseNetconf(nc({ ipam: { type: 'whatever' } })).ipamMode, false);
});

test('netconf: bad input is the right CNI code with a clear message', () => {
  const table: [string, number, RegExp][] = [
    ['not json', 6, /cannot decode network configuration/],
    ['[1,2]', 6, /expected a JSON object/],
    ['"str"', 6, /expected a JSON object/],
    [nc({ cniVersion: '9.9.9' }), 1, /CNI version "9.9.9" is not supported/],
    [nc({ cniVersion: 1 }), 1, /not supported/],
    [nc({ name: '' }), 7, /"name" is required/],
    [nc({ name: 'bad name' }), 7, /name "bad name"/],
    [nc({ type: 5 }), 7, /"type" is required/],
    [nc({ server_socket: 5 }), 7, /server_socket must be a string/],
    [nc({ server_socket: 'relative.sock' }), 7, /must be an absolute path/],
    [nc({ provider: {} }), 7, /provider must be a string/],
    [nc({ routes: {} }), 7, /routes must be an array/],
    [nc({ routes: [{ dst: '10.0.0.0' }] }), 7, /routes\[0\]\.dst "10\.0\.0\.0" is not a CIDR/],
    [nc({ routes: [{ gw: 'x' }] }), 7, /routes\[0\]\.gw "x" is not an IP address/],
    [nc({ routes: [{}] }), 7, /needs dst or gw/],
    [nc({ routes: ['x'] }), 7, /must be an object/],
    [nc({ ipam: 'x' }), 7, /ipam must be an object/],
    [nc({ type: 'macvlan', ipam: { type: 'host-local' } }), 7, /ipam type kube-ovn/],
    [nc({ type: 'macvlan', ipam: { type: 'kube-ovn', routes: 3 } }), 7, /ipam\.routes must be an array/],
    [nc({ dns: [] }), 7, /dns must be an object/],
    [nc({ runtimeConfig: 3 }), 7, /runtimeConfig must be an object/],
    [nc({ prevResult: { ips: [{ address: 'x' }] } }), 7, /prevResult\.ips\[0\]\.address/],
    [nc({ 'cni.dev/valid-attachments': [{ containerID: 1 }] }), 7, /valid-attachments\[0\]/],
  ];
  for (const [text, code, re] of table) {
    const [c, msg] = codeOf(() => parseNetconf(text));
    assert.equal(c, code, `${text} -> ${msg}`);
    assert.match(msg, re, text);
  }
});

test('netconf: a missing cniVersion means 0.1.0; prevResult decoded per version', () => {
  assert.equal(parseNetconf(JSON.stringify({ name: 'n', type: 'kube-ovn' })).cniVersion, '0.1.0');
  const c = parseNetconf(nc({ cniVersion: '0.4.0', prevResult: { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.1.1.2/24' }] } }));
  assert.deepEqual(c.prevResult, { ips: [{ address: '10.1.1.2/24' }] });
  assert.equal(sniffVersion(nc({ cniVersion: '0.3.0' })), '0.3.0');
  assert.equal(sniffVersion('garbage'), undefined);
  assert.equal(sniffVersion(nc({ cniVersion: '7' })), undefined);
});

test('CNI_ARGS parsing and IgnoreUnknown', () => {
  const a = parseCniArgs('IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1;FOO=bar');
  assert.deepEqual([a.ignoreUnknown, a.podName, a.podNamespace, a.infraContainerId, a.podUid, a.all.FOO], [true, 'p', 'ns', 'abc', 'u-1', 'bar']);
  assert.deepEqual(parseCniArgs(undefined).all, {});
  assert.deepEqual(parseCniArgs('K8S_POD_NAME=p;').podName, 'p');
  assert.equal(parseCniArgs('K8S_POD_NAME=').podName, undefined);
  // a repeated key: the last wins (libcni); Multus sends containerd's IgnoreUnknown=1 and its own IgnoreUnknown=true
  assert.equal(parseCniArgs('K8S_POD_NAME=a;K8S_POD_NAME=b').podName, 'b');
  assert.equal(parseCniArgs('IgnoreUnknown=1;K8S_POD_NAME=p;FOO=x;IgnoreUnknown=true').ignoreUnknown, true);
  const bad: [string, RegExp][] = [
    ['FOO=bar', /unknown key\(s\) FOO/],
    ['IgnoreUnknown=0;FOO=bar', /unknown key/],
    ['IgnoreUnknown=maybe', /not a boolean/],
    ['K8S_POD_NAME', /not a KEY=VALUE pair/],
    ['=x', /not a KEY=VALUE pair/],
    ['K8S_POD_NAME=a=b', /not a KEY=VALUE pair/],
  ];
  for (const [s, re] of bad) {
    const [c, msg] = codeOf(() => parseCniArgs(s));
    assert.equal(c, 4, s);
    assert.match(msg, re, s);
  }
});

test('K8S_POD_NAME and K8S_POD_NAMESPACE are required (code 7 as upstream)', () => {
  assert.deepEqual(requirePod(parseCniArgs('K8S_POD_NAME=a;K8S_POD_NAMESPACE=b')), { podName: 'a', podNamespace: 'b' });
  const [c, msg] = codeOf(() => requirePod(parseCniArgs('IgnoreUnknown=1')));
  assert.equal(c, 7);
  assert.match(msg, /K8S_POD_NAME and K8S_POD_NAMESPACE/);
});

test('CNI_IFNAME rules', () => {
  for (const ok of ['eth0', 'net1', 'a', '123456789012345', 'ém']) assert.equal(ifNameProblem(ok), null, ok);
  for (const bad of ['', '.', '..', '1234567890123456', 'a/b', 'a:b', 'a b', 'a\tb', 'a\nb', 'éééééééé']) assert.notEqual(ifNameProblem(bad), null, bad);
});

test('CNI_CONTAINERID rules', () => {
  for (const ok of ['abc', 'A1', '0123456789abcdef'.repeat(4), 'a_b.c-d']) assert.equal(containerIdProblem(ok), null, ok);
  for (const bad of ['', '-abc', '_a', '.a', 'a/b', 'a b', 'a;b', '../x']) assert.notEqual(containerIdProblem(bad), null, bad);
});

test('environment per command', () => {
  const base = { CNI_CONTAINERID: 'c1', CNI_NETNS: '/var/run/netns/koac', CNI_IFNAME: 'eth0', CNI_ARGS: 'K8S_POD_NAME=p;K8S_POD_NAMESPACE=n', CNI_PATH: '/opt/cni/bin:/x' };
  assert.deepEqual(parseEnv({ ...base, CNI_COMMAND: 'ADD' }).cniPath, ['/opt/cni/bin', '/x']);
  assert.equal(parseEnv({ ...base, CNI_COMMAND: 'DEL', CNI_NETNS: '' }).netns, '');
  assert.equal(parseEnv({ CNI_COMMAND: 'STATUS' }).command, 'STATUS');
  assert.equal(parseEnv({ CNI_COMMAND: 'GC' }).command, 'GC');
  const bad: [Record<string, string>, RegExp][] = [
    [{ ...base }, /CNI_COMMAND: it is not set/],
    [{ ...base, CNI_COMMAND: 'add' }, /unknown command "add"/],
    [{ ...base, CNI_COMMAND: 'ADD', CNI_NETNS: '' }, /CNI_NETNS: it is required/],
    [{ ...base, CNI_COMMAND: 'CHECK', CNI_NETNS: 'netns/x' }, /CNI_NETNS: "netns\/x" must be an absolute path/],
    [{ ...base, CNI_COMMAND: 'DEL', CNI_NETNS: 'rel' }, /must be an absolute path/],
    [{ ...base, CNI_COMMAND: 'ADD', CNI_IFNAME: '' }, /CNI_IFNAME: it is required/],
    [{ ...base, CNI_COMMAND: 'ADD', CNI_IFNAME: 'a/b' }, /CNI_IFNAME/],
    [{ ...base, CNI_COMMAND: 'DEL', CNI_IFNAME: '' }, /CNI_IFNAME: it is required/],
    [{ ...base, CNI_COMMAND: 'ADD', CNI_IFNAME: 'thisnameistoolong' }, /longer than 15 bytes/],
    [{ ...base, CNI_COMMAND: 'ADD', CNI_CONTAINERID: '' }, /CNI_CONTAINERID: it is required/],
    [{ ...base, CNI_COMMAND: 'ADD', CNI_CONTAINERID: '/etc' }, /CNI_CONTAINERID/],
  ];
  for (const [env, re] of bad) {
    const [c, msg] = codeOf(() => parseEnv(env));
    assert.equal(c, 4, JSON.stringify(env));
    assert.match(msg, re);
  }
  // issue 14 item 4: a DEL of a value no ADD accepts has nothing to remove and must not fail (kubelet retries forever)
  for (const over of [{ CNI_IFNAME: 'a/b' }, { CNI_IFNAME: 'ñetñetñetñet0' }, { CNI_CONTAINERID: '/etc' }]) {
    const e = parseEnv({ ...base, CNI_COMMAND: 'DEL', ...over });
    assert.match(e.delIgnoredBecause ?? '', /CNI_IFNAME|CNI_CONTAINERID/, JSON.stringify(over));
  }
  assert.equal(parseEnv({ ...base, CNI_COMMAND: 'DEL', CNI_IFNAME: 'ñet0' }).delIgnoredBecause, undefined);
});
