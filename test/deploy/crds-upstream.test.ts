// Our deploy/crds/kube-ovn-crds.yaml against upstream's charts/kube-ovn/templates/kube-ovn-crd.yaml (read straight
// from the release archive in ../shared/upstream): for every field the agent reads (agent/src/k8s/types.ts,
// agent/src/node/underlay/types.ts) both CRDs declare the same group, scope, served version and schema type, so
// objects the real kube-ovn-controller writes reach the agent with the shapes it parses. Skipped, with the reason,
// only when the archive is absent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const jsYaml = createRequire(import.meta.url)('js-yaml') as { loadAll(s: string): unknown[] };
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const VERSION = process.env.KUBE_OVN_VERSION ?? 'v1.16.2';
const ARCHIVE = [process.env.KOA_UPSTREAM_DIR, join(ROOT, '..', 'shared', 'upstream'), '/work/shared/upstream']
  .filter((d): d is string => !!d).map((d) => join(d, `kube-ovn-${VERSION}.tar.gz`)).find(existsSync);
const skip = ARCHIVE ? undefined : `kube-ovn-${VERSION}.tar.gz not found in ../shared/upstream (KOA_UPSTREAM_DIR)`;

/** plural.group -> the fields the agent reads, as dotted paths in the v1 schema (`[]` = array items) */
const READ: Record<string, string[]> = {
  'subnets.kubeovn.io': ['spec.provider', 'spec.protocol', 'spec.cidrBlock', 'spec.gateway', 'spec.vpc', 'spec.vlan',
    'spec.logicalGateway', 'spec.u2oInterconnection', 'spec.enableExternalLBAddress', 'spec.disableGatewayCheck', 'spec.mtu', 'spec.nodeNetwork',
    'status.u2oInterconnectionIP', 'status.u2oInterconnectionMAC'],
  'ips.kubeovn.io': ['spec.podName', 'spec.namespace', 'spec.subnet', 'spec.nodeName', 'spec.ipAddress', 'spec.attachIps[]',
    'spec.attachMacs[]', 'spec.attachSubnets[]'],
  'provider-networks.kubeovn.io': ['spec.defaultInterface', 'spec.customInterfaces[].interface', 'spec.customInterfaces[].nodes[]',
    'spec.excludeNodes[]', 'spec.nodeSelector', 'spec.exchangeLinkName', 'spec.autoCreateVlanSubinterfaces', 'status.vlans[]'],
  'vlans.kubeovn.io': ['spec.id', 'spec.provider'],
};

interface Schema { type?: string; properties?: Record<string, Schema>; items?: Schema }
interface Crd { kind?: string; metadata?: { name?: string }; spec?: { group?: string; scope?: string; versions?: { name: string; served?: boolean; schema?: { openAPIV3Schema?: Schema } }[] } }

function crds(text: string): Map<string, Crd> {
  const m = new Map<string, Crd>();
  for (const d of jsYaml.loadAll(text) as Crd[]) if (d?.kind === 'CustomResourceDefinition' && d.metadata?.name) m.set(d.metadata.name, d);
  return m;
}

/** The schema type at a dotted path of the served v1 schema, or a description of where the path breaks off. */
function typeAt(crd: Crd, path: string): string {
  let s = crd.spec?.versions?.find((v) => v.name === 'v1' && v.served)?.schema?.openAPIV3Schema;
  for (const part of path.split('.')) {
    const name = part.replace(/\[\]$/, '');
    s = s?.properties?.[name];
    if (s && part.endsWith('[]')) s = s.type === 'array' ? s.items : undefined;
    if (!s) return `(missing at ${part})`;
  }
  return s?.type ?? '(no type)';
}

test('deploy/crds agrees with upstream kube-ovn-crd.yaml on every field the agent reads', { skip }, () => {
  const upstream = crds(execFileSync('tar', ['-xzOf', ARCHIVE!, '--wildcards', '*/charts/kube-ovn/templates/kube-ovn-crd.yaml'], { encoding: 'utf8', maxBuffer: 64 << 20 }));
  const ours = crds(readFileSync(join(ROOT, 'deploy', 'crds', 'kube-ovn-crds.yaml'), 'utf8'));
  const diffs: string[] = [];
  for (const [name, fields] of Object.entries(READ)) {
    const u = upstream.get(name);
    const o = ours.get(name);
    assert.ok(u, `upstream has ${name}`);
    assert.ok(o, `deploy/crds has ${name}`);
    if (o.spec?.group !== u.spec?.group || o.spec?.scope !== u.spec?.scope) diffs.push(`${name}: group/scope ${o.spec?.group}/${o.spec?.scope} vs ${u.spec?.group}/${u.spec?.scope}`);
    for (const f of fields) {
      const [ot, ut] = [typeAt(o, f), typeAt(u, f)];
      if (ut.startsWith('(')) diffs.push(`${name} ${f}: not in upstream ${ut}`);
      else if (ot !== ut) diffs.push(`${name} ${f}: ours ${ot}, upstream ${ut}`);
    }
  }
  assert.deepEqual(diffs, []);
});
