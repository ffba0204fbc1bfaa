// kubeovn.io/v1 ProviderNetwork and Vlan (cluster-scoped): the fields the node agent reads (spec §6, user guide
// §2.3 / §8.12.4). The controller owns the status; the agent reports through node labels (plan.ts).
import type { KubeObject } from '../../k8s/types.ts';

export interface ProviderNetwork extends KubeObject {
  spec?: {
    defaultInterface?: string;
    customInterfaces?: { interface?: string; nodes?: string[] }[];
    excludeNodes?: string[];
    nodeSelector?: { matchLabels?: Record<string, string>; matchExpressions?: LabelSelectorRequirement[] };
    exchangeLinkName?: boolean;
    /** create the NIC `<parent>.<id>` as a kernel 802.1Q link when it is missing (upstream v1.15) */
    autoCreateVlanSubinterfaces?: boolean;
    /** kernel VLAN links (`<if>.<id>`) whose addresses and routes move to a VLAN internal port of the bridge */
    vlanInterfaces?: string[];
    /** also every kernel 802.1Q link named `<nic>.<id>` on the NIC */
    preserveVlanInterfaces?: boolean;
    [k: string]: unknown;
  };
  status?: { vlans?: string[]; [k: string]: unknown };
}

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface Vlan extends KubeObject {
  spec?: { id?: number; provider?: string; [k: string]: unknown };
}
