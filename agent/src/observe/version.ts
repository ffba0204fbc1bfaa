// The agent's version for kube_ovn_agent_build_info and the start-up log line: the `version` of the nearest
// package.json named kube-ovn-node-agent above this file (source tree or dist/), else KOA_VERSION, else "unknown".
// The revision comes from KOA_REVISION (set by the image build), else "unknown".

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const PACKAGE_NAME = 'kube-ovn-node-agent';

export function agentVersion(env: NodeJS.ProcessEnv = process.env, from: string = import.meta.dirname): string {
  let dir = from;
  for (let i = 0; i < 6; i++) {
    try {
      const p = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (p.name === PACKAGE_NAME && typeof p.version === 'string') return p.version;
    } catch { /* not here */ }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return env.KOA_VERSION || 'unknown';
}

export function agentRevision(env: NodeJS.ProcessEnv = process.env): string {
  return env.KOA_REVISION || 'unknown';
}
