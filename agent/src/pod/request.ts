// Adapters from the CNI layer's validated request (cni/types.ts) to the planners' inputs.

import type { CniRequest } from '../cni/types.ts';
import type { DelRequest, NicRequest } from './plan.ts';

export function nicRequestFromCni(req: CniRequest): NicRequest {
  const n = req.netconf;
  return {
    containerId: req.containerId,
    netns: req.netns,
    ifName: req.ifName,
    podName: req.podName,
    podNamespace: req.podNamespace,
    ...(req.podUid ? { podUid: req.podUid } : {}),
    provider: n.provider,
    cniType: n.type,
    routes: n.routes,
    ...(n.dns ? { dns: n.dns } : {}),
    ...(n.deviceID ? { deviceId: n.deviceID } : {}),
    ...(n.vhostUserSocketVolumeName ? { vhostUserSocketVolumeName: n.vhostUserSocketVolumeName } : {}),
  };
}

export function delRequestFromCni(req: CniRequest): DelRequest {
  return {
    containerId: req.containerId,
    netns: req.netns,
    ifName: req.ifName,
    podName: req.podName,
    podNamespace: req.podNamespace,
    provider: req.netconf.provider,
    cniType: req.netconf.type,
  };
}
