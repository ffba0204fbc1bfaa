// deploy/*.yaml against a real kube-apiserver (the bed's fixture): every object is created with
// fieldValidation=Strict (unknown or duplicate fields are refused), and SubjectAccessReviews show what the
// DaemonSet's ServiceAccount may do with the upstream ClusterRole.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startKube, type Kube } from '../bed/kube.ts';
import { cleanupAll, newPrefix } from '../bed/netns.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
// the YAML parser @kubernetes/client-node's loadAllYaml uses; raw documents are what kubectl would send
const jsYaml = createRequire(import.meta.url)('js-yaml') as { loadAll(s: string): unknown[] };
type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } };
const docs = (f: string) => jsYaml.loadAll(readFileSync(join(ROOT, 'deploy', f), 'utf8')) as Obj[];

const PLURAL: Record<string, string> = {
  ServiceAccount: 'serviceaccounts', ClusterRole: 'clusterroles', ClusterRoleBinding: 'clusterrolebindings', Role: 'roles',
  RoleBinding: 'rolebindings', DaemonSet: 'daemonsets', Service: 'services',
};
function collectionPath(o: Obj): string {
  const base = o.apiVersion === 'v1' ? '/api/v1' : `/apis/${o.apiVersion}`;
  const ns = o.metadata.namespace ? `/namespaces/${o.metadata.namespace}` : '';
  return `${base}${ns}/${PLURAL[o.kind]!}`;
}

let kube: Kube | undefined;
before(async () => { kube = await startKube({ prefix: newPrefix('koai'), crds: true }); });
after(async () => { await kube?.stop(); await cleanupAll(); });

const SA_USER = 'system:serviceaccount:kube-system:kube-ovn-cni';
async function can(verb: string, group: string, resource: string, namespace?: string, name?: string): Promise<boolean> {
  const r = await kube!.api.post<{ status: { allowed: boolean } }>('/apis/authorization.k8s.io/v1/subjectaccessreviews', {
    apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
    spec: { user: SA_USER, groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
      resourceAttributes: { verb, group, resource, ...(namespace ? { namespace } : {}), ...(name ? { name } : {}) } },
  });
  return r.status.allowed;
}

describe('deploy manifests on a real kube-apiserver', () => {
  it('rbac.yaml and kube-ovn-cni-ds.yaml are created with strict field validation', async () => {
    for (const o of [...docs('rbac.yaml'), ...docs('kube-ovn-cni-ds.yaml')]) {
      const created = await kube!.api.post<Obj>(`${collectionPath(o)}?fieldValidation=Strict`, o);
      assert.equal(created.metadata.name, o.metadata.name, `${o.kind}/${o.metadata.name}`);
    }
    const ds = await kube!.api.get<{ spec: { template: { spec: { hostNetwork: boolean } } } }>('/apis/apps/v1/namespaces/kube-system/daemonsets/kube-ovn-cni');
    assert.equal(ds.spec.template.spec.hostNetwork, true);
  });

  it('a misspelled field is refused by the same path (the check is real)', async () => {
    const bad = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'koai-bad', namespace: 'kube-system' }, automountServiceAccountTokn: false };
    await assert.rejects(kube!.api.post(`/api/v1/namespaces/kube-system/serviceaccounts?fieldValidation=Strict`, bad), /unknown field/);
  });

  it('the ServiceAccount may do what the agent does today (pods, nodes, subnets, ips, events)', async () => {
    const allowed: [string, string, string, string?, string?][] = [
      ['list', '', 'pods'], ['watch', '', 'pods'], ['get', '', 'pods', 'default'], ['patch', '', 'pods', 'default'],
      ['get', '', 'nodes'], ['list', '', 'nodes'], ['watch', '', 'nodes'], ['patch', '', 'nodes'], ['patch', '', 'nodes/status'],
      ['list', 'kubeovn.io', 'subnets'], ['watch', 'kubeovn.io', 'subnets'], ['get', 'kubeovn.io', 'ips'], ['update', 'kubeovn.io', 'ips'],
      ['create', '', 'events', 'default'], ['create', 'events.k8s.io', 'events', 'default'], ['list', 'kubeovn.io', 'provider-networks'],
      ['list', 'kubeovn.io', 'vlans'], ['create', 'authentication.k8s.io', 'tokenreviews'], ['create', 'authorization.k8s.io', 'subjectaccessreviews'],
      ['get', '', 'secrets', 'kube-system', 'ovn-ipsec-ca'], ['get', '', 'configmaps', 'kube-system', 'extension-apiserver-authentication'],
    ];
    for (const [verb, group, res, ns, name] of allowed) assert.equal(await can(verb, group, res, ns, name), true, `${verb} ${group}/${res}`);
  });

  it('and nothing beyond upstream: no secrets elsewhere, no pod deletes, no IP CR list/watch', async () => {
    const denied: [string, string, string, string?, string?][] = [
      ['get', '', 'secrets', 'kube-system', 'other'], ['list', '', 'secrets', 'default'], ['delete', '', 'pods', 'default'],
      ['create', '', 'pods', 'default'], ['delete', 'kubeovn.io', 'ips'], ['create', 'kubeovn.io', 'ips'],
      // upstream grants only get/update on ips: an agent that lists/watches IP CRs is refused under the upstream
      // ClusterRole (see README "Image and deployment": the k8s area's IP-CR watch must cope with a 403)
      ['list', 'kubeovn.io', 'ips'], ['watch', 'kubeovn.io', 'ips'],
    ];
    for (const [verb, group, res, ns, name] of denied) assert.equal(await can(verb, group, res, ns, name), false, `${verb} ${group}/${res}`);
  });
});
