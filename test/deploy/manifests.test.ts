// deploy/*.yaml parse with @kubernetes/client-node's loadAllYaml into typed objects, lose no field in a
// serialize round trip (a misspelled field would be dropped), and keep the drop-in invariants: the upstream names,
// hostNetwork/hostPID, the mounts the agent and the CNI executable rely on, probes, flags the agent accepts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dumpYaml, loadAllYaml, loadYaml, type V1ClusterRole, type V1Container, type V1DaemonSet, type V1Service, type V1ServiceAccount, type V1ClusterRoleBinding, type V1RoleBinding, type V1Volume } from '@kubernetes/client-node';
import { loadConfig } from '../../agent/src/config/config.ts';
import { DEFAULT_SERVER_SOCKET } from '../../agent/src/cni/netconf.ts';
import { DEFAULT_DEL_QUEUE_DIR } from '../../agent/src/server/cni-server.ts';

// js-yaml is what loadAllYaml itself parses with (a dependency of @kubernetes/client-node): the raw documents, to
// compare with what the typed models keep (the deserializer silently drops fields the model does not know)
const jsYaml = createRequire(import.meta.url)('js-yaml') as { load(s: string): unknown; loadAll(s: string): unknown[] };
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const read = (f: string) => readFileSync(join(ROOT, 'deploy', f), 'utf8');
const DS_DOCS = loadAllYaml(read('kube-ovn-cni-ds.yaml')) as (V1DaemonSet | V1Service)[];
const RBAC_DOCS = loadAllYaml(read('rbac.yaml')) as { kind: string; metadata: { name: string; namespace?: string } }[];
const ds = DS_DOCS.find((d) => d.kind === 'DaemonSet') as V1DaemonSet;
const spec = ds.spec!.template.spec!;
const init = (n: string) => spec.initContainers!.find((c) => c.name === n)!;
const server = spec.containers.find((c) => c.name === 'cni-server')!;
const volume = (name: string): V1Volume => { const v = spec.volumes!.find((x) => x.name === name); assert.ok(v, `volume ${name}`); return v; };
/** the host path behind `mountPath` in container c */
function hostPathOf(c: V1Container, mountPath: string): string | undefined {
  const m = c.volumeMounts?.find((x) => x.mountPath === mountPath);
  return m ? volume(m.name).hostPath?.path : undefined;
}
/** typed model instances -> plain JSON for deepEqual */
const plain = (x: unknown): unknown => JSON.parse(JSON.stringify(x));
/** /var/run is a symlink to /run on Debian hosts and in the image */
const norm = (p: string) => p.replace(/^\/var\/run\//, '/run/');
function covered(c: V1Container, path: string): { mount: string; host?: string } | undefined {
  const p = norm(path);
  const m = (c.volumeMounts ?? []).filter((x) => p === norm(x.mountPath) || p.startsWith(`${norm(x.mountPath)}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  return m ? { mount: m.mountPath, ...(volume(m.name).hostPath ? { host: volume(m.name).hostPath!.path } : {}) } : undefined;
}

describe('deploy manifests: YAML', () => {
  it('every document loads into its typed model, which keeps every field of the raw YAML (no typo dropped)', () => {
    for (const f of ['kube-ovn-cni-ds.yaml', 'rbac.yaml']) {
      const docs = loadAllYaml(read(f));
      const raw = jsYaml.loadAll(read(f));
      assert.ok(docs.length > 0, f);
      assert.equal(docs.length, raw.length);
      docs.forEach((d, i) => {
        assert.ok(d && typeof d.kind === 'string' && typeof d.apiVersion === 'string', `${f}: kind/apiVersion`);
        assert.deepEqual(loadYaml(dumpYaml(d)), d, `${f}: ${d.kind}/${d.metadata?.name} typed round trip`);
        // a misspelled field (e.g. `mountPropogation`) is dropped by the model: serialized != raw
        assert.deepEqual(jsYaml.load(dumpYaml(d)), raw[i], `${f}: ${d.kind}/${d.metadata?.name} has only known fields`);
      });
    }
    const typo = read('kube-ovn-cni-ds.yaml').replace('mountPropagation: HostToContainer', 'mountPropogation: HostToContainer');
    assert.notDeepEqual(jsYaml.load(dumpYaml(loadAllYaml(typo)[0])), jsYaml.loadAll(typo)[0], 'the check sees a typo');
    assert.deepEqual(DS_DOCS.map((d) => d.kind), ['DaemonSet', 'Service']);
    assert.deepEqual(RBAC_DOCS.map((d) => `${d.kind}/${d.metadata.name}`),
      ['ServiceAccount/kube-ovn-cni', 'ClusterRole/system:kube-ovn-cni', 'ClusterRoleBinding/kube-ovn-cni', 'Role/secret-reader-ovn-ipsec',
        'RoleBinding/kube-ovn-cni-secret-reader', 'RoleBinding/kube-ovn-cni']);
  });

  it('the raw text has no tabs and no duplicate volume or mount names', () => {
    for (const f of ['kube-ovn-cni-ds.yaml', 'rbac.yaml']) assert.equal(read(f).includes('\t'), false, f);
    const names = spec.volumes!.map((v) => v.name);
    assert.equal(new Set(names).size, names.length);
    for (const c of [...spec.initContainers!, ...spec.containers]) {
      const mounts = (c.volumeMounts ?? []).map((m) => m.mountPath);
      assert.equal(new Set(mounts).size, mounts.length, c.name);
      for (const m of c.volumeMounts ?? []) volume(m.name);
    }
  });
});

describe('deploy manifests: DaemonSet invariants (upstream drop-in)', () => {
  it('upstream names, labels, host namespaces, service account, scheduling', () => {
    assert.equal(ds.metadata!.name, 'kube-ovn-cni');
    assert.equal(ds.metadata!.namespace, 'kube-system');
    assert.deepEqual(ds.spec!.selector.matchLabels, { app: 'kube-ovn-cni' });
    assert.deepEqual(ds.spec!.template.metadata!.labels, { app: 'kube-ovn-cni', component: 'network', type: 'infra' });
    assert.equal(spec.hostNetwork, true);
    assert.equal(spec.hostPID, true);
    assert.equal(spec.priorityClassName, 'system-node-critical');
    assert.equal(spec.serviceAccountName, 'kube-ovn-cni');
    assert.deepEqual(spec.nodeSelector, { 'kubernetes.io/os': 'linux' });
    assert.ok(spec.tolerations!.some((t) => t.operator === 'Exists' && t.effect === 'NoSchedule'));
    assert.ok(spec.tolerations!.some((t) => t.operator === 'Exists' && t.effect === 'NoExecute'));
    assert.equal(spec.securityContext!.seccompProfile!.type, 'RuntimeDefault');
  });

  it('one image everywhere; init containers hostpath-init then install-cni; the image paths exist in deploy/image', () => {
    assert.deepEqual(spec.initContainers!.map((c) => c.name), ['hostpath-init', 'install-cni']);
    assert.deepEqual(spec.containers.map((c) => c.name), ['cni-server']);
    const images = new Set([...spec.initContainers!, ...spec.containers].map((c) => c.image));
    assert.equal(images.size, 1);
    const ic = init('install-cni');
    assert.deepEqual(ic.command, ['/kube-ovn/install-cni.sh', '--cni-conf-dir=/etc/cni/net.d', '--cni-conf-file=/kube-ovn/01-kube-ovn.conflist', '--cni-conf-name=01-kube-ovn.conflist']);
    assert.deepEqual(server.command, ['bash', '/kube-ovn/start-cniserver.sh']);
    for (const f of ['install-cni.sh', 'start-cniserver.sh', '01-kube-ovn.conflist', 'kube-ovn-daemon']) assert.ok(existsSync(join(ROOT, 'deploy/image', f)), f);
    assert.equal(ic.securityContext!.privileged, true);
    assert.deepEqual(ic.env!.map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]), [['POD_IPS', 'status.podIPs']]);
  });

  it('install-cni writes into the host CNI dirs', () => {
    const ic = init('install-cni');
    assert.equal(hostPathOf(ic, '/opt/cni/bin'), '/opt/cni/bin');
    assert.equal(hostPathOf(ic, '/etc/cni/net.d'), '/etc/cni/net.d');
    assert.equal(hostPathOf(ic, '/usr/local/bin'), '/usr/local/bin');
  });

  it('cni-server mounts: OVS/OVN run dirs, netns (HostToContainer), CNI socket and delete queue on the host', () => {
    const m = (p: string) => server.volumeMounts!.find((x) => x.mountPath === p);
    for (const [p, host] of [['/run/openvswitch', '/run/openvswitch'], ['/var/run/netns', '/var/run/netns'], ['/run/ovn', '/run/ovn'],
      ['/lib/modules', '/lib/modules'], ['/run/xtables.lock', '/run/xtables.lock'], ['/var/lib/kubelet/pods', '/var/lib/kubelet/pods'],
      ['/etc/openvswitch', '/etc/origin/openvswitch'], ['/var/log/kube-ovn', '/var/log/kube-ovn'], ['/host/var/run/dbus', '/var/run/dbus'],
      ['/etc/localtime', '/etc/localtime']] as const) {
      assert.equal(hostPathOf(server, p), host, p);
    }
    for (const p of ['/run/openvswitch', '/var/run/netns', '/host/var/run/dbus']) assert.equal(m(p)!.mountPropagation, 'HostToContainer', p);
    for (const p of ['/lib/modules', '/etc/openvswitch', '/etc/localtime']) assert.equal(m(p)!.readOnly, true, p);
    assert.equal(volume('xtables-lock').hostPath!.type, 'FileOrCreate');
    assert.deepEqual(plain(volume('usr-local-sbin').emptyDir), {});
    // what the agent and the shim (on the host) share: the socket and the DEL queue must be the host's directories
    assert.deepEqual(covered(server, DEFAULT_SERVER_SOCKET), { mount: '/run/openvswitch', host: '/run/openvswitch' });
    assert.deepEqual(covered(server, DEFAULT_DEL_QUEUE_DIR), { mount: '/run/openvswitch', host: '/run/openvswitch' });
    assert.ok(covered(init('hostpath-init'), '/usr/local/sbin'));
  });

  it('probes on :10665 /readyz and /livez, as upstream', () => {
    assert.deepEqual({ ...server.readinessProbe!.httpGet, port: Number(server.readinessProbe!.httpGet!.port) }, { path: '/readyz', port: 10665, scheme: 'HTTP' });
    assert.deepEqual({ ...server.livenessProbe!.httpGet, port: Number(server.livenessProbe!.httpGet!.port) }, { path: '/livez', port: 10665, scheme: 'HTTP' });
    assert.equal(server.readinessProbe!.periodSeconds, 7);
    assert.equal(server.livenessProbe!.initialDelaySeconds, 30);
    for (const p of [server.readinessProbe!, server.livenessProbe!]) { assert.equal(p.timeoutSeconds, 5); assert.equal(p.failureThreshold, 3); }
    const svc = DS_DOCS.find((d) => d.kind === 'Service') as V1Service;
    assert.equal(svc.metadata!.name, 'kube-ovn-cni');
    assert.deepEqual(svc.spec!.selector, { app: 'kube-ovn-cni' });
    assert.deepEqual(svc.spec!.ports!.map((p) => [p.name, p.port]), [['metrics', 10665]]);
  });

  it('cni-server: root, not privileged, upstream capabilities, env from the downward API', () => {
    const sc = server.securityContext!;
    assert.equal(sc.runAsUser, 0);
    assert.equal(sc.privileged, false);
    assert.deepEqual([...sc.capabilities!.add!].sort(), ['NET_ADMIN', 'NET_BIND_SERVICE', 'NET_RAW', 'SYS_ADMIN', 'SYS_NICE', 'SYS_PTRACE']);
    const env = new Map(server.env!.map((e) => [e.name, e.value ?? `field:${e.valueFrom?.fieldRef?.fieldPath}`]));
    assert.equal(env.get('NODE_NAME'), 'field:spec.nodeName');
    assert.equal(env.get('POD_NAME'), 'field:metadata.name');
    assert.equal(env.get('POD_NAMESPACE'), 'field:metadata.namespace');
    assert.equal(env.get('POD_IP'), 'field:status.podIP');
    assert.equal(env.get('POD_IPS'), 'field:status.podIPs');
    assert.equal(env.get('ENABLE_BIND_LOCAL_IP'), 'true');
    assert.equal(env.get('DBUS_SYSTEM_BUS_ADDRESS'), 'unix:path=/host/var/run/dbus/system_bus_socket');
    assert.deepEqual(server.resources!.requests, { cpu: '100m', memory: '100Mi' });
  });

  it('every cni-server flag (plus the two start-cniserver.sh adds) is accepted by the agent\'s configuration', () => {
    const argv = ['--ovs-socket=/run/openvswitch/db.sock', `--bind-socket=${DEFAULT_SERVER_SOCKET}`, ...server.args!];
    const cfg = loadConfig(argv, { NODE_NAME: 'node-1', POD_IPS: '192.0.2.10,2001:db8::10', POD_IP: '192.0.2.10', ENABLE_BIND_LOCAL_IP: 'true' }, 'host');
    assert.equal(cfg.nodeName, 'node-1');
    assert.deepEqual(cfg.listenAddresses, ['192.0.2.10', '2001:db8::10']);
    assert.equal(cfg.networkType, 'geneve');
    assert.equal(cfg.bindSocket, DEFAULT_SERVER_SOCKET);
    loadConfig(init('install-cni').command!.slice(1).concat('--install-cni-config'), {}, 'host');
  });
});

describe('deploy manifests: RBAC (spec §1.8)', () => {
  const role = RBAC_DOCS.find((d) => d.kind === 'ClusterRole') as unknown as V1ClusterRole;
  const allows = (group: string, resource: string, verb: string) =>
    role.rules!.some((r) => r.apiGroups!.includes(group) && r.resources!.includes(resource) && r.verbs.includes(verb));

  it('binds system:kube-ovn-cni to the DaemonSet\'s ServiceAccount', () => {
    const sa = RBAC_DOCS.find((d) => d.kind === 'ServiceAccount') as unknown as V1ServiceAccount;
    assert.equal(sa.metadata!.name, spec.serviceAccountName);
    assert.equal(sa.metadata!.namespace, ds.metadata!.namespace);
    const crb = RBAC_DOCS.find((d) => d.kind === 'ClusterRoleBinding') as unknown as V1ClusterRoleBinding;
    assert.deepEqual(plain(crb.roleRef), { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:kube-ovn-cni' });
    assert.deepEqual(plain(crb.subjects), [{ kind: 'ServiceAccount', name: 'kube-ovn-cni', namespace: 'kube-system' }]);
    const rbs = RBAC_DOCS.filter((d) => d.kind === 'RoleBinding') as unknown as V1RoleBinding[];
    assert.deepEqual(rbs.map((b) => b.roleRef.name).sort(), ['extension-apiserver-authentication-reader', 'secret-reader-ovn-ipsec']);
  });

  it('grants the upstream rules', () => {
    const want: [string, string, string[]][] = [
      ['kubeovn.io', 'subnets', ['get', 'list', 'watch']], ['kubeovn.io', 'vlans', ['get', 'list', 'watch']],
      ['kubeovn.io', 'provider-networks', ['get', 'list', 'watch']], ['', 'pods', ['get', 'list', 'patch', 'watch']],
      ['', 'nodes', ['get', 'list', 'patch', 'watch']], ['', 'nodes/status', ['get', 'list', 'patch', 'watch']],
      ['', 'services', ['get', 'list', 'patch', 'watch']], ['kubeovn.io', 'ovn-eips', ['get', 'list', 'patch', 'watch']],
      ['kubeovn.io', 'ovn-eips/status', ['get', 'list', 'patch', 'watch']], ['kubeovn.io', 'ips', ['get', 'update']],
      ['', 'events', ['create', 'patch', 'update']], ['', 'configmaps', ['get', 'list', 'watch']],
      ['authentication.k8s.io', 'tokenreviews', ['create']], ['authorization.k8s.io', 'subjectaccessreviews', ['create']],
      ['certificates.k8s.io', 'certificatesigningrequests', ['create', 'get', 'list', 'watch', 'delete']],
      ['networking.k8s.io', 'servicecidrs', ['get', 'list', 'watch']],
    ];
    for (const [g, r, verbs] of want) for (const v of verbs) assert.ok(allows(g, r, v), `${v} ${g}/${r}`);
    assert.equal(allows('', 'secrets', 'get'), false, 'no cluster-wide secrets');
    assert.equal(allows('kubeovn.io', 'ips', 'delete'), false);
  });
});
