// The CNI environment: CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH. Pure parsing and
// validation with the same rules as the CNI reference library (container ID and interface name syntax, CNI_ARGS
// `K=V;K=V` pairs with `IgnoreUnknown`), failing with coded errors.
import { agentError } from '../errors.ts';
import { COMMANDS, type CniArgs, type CniCommand } from './types.ts';

/** Keys of CNI_ARGS we understand; anything else needs IgnoreUnknown (kubelet always sets it). */
const KNOWN_ARGS = new Set(['IgnoreUnknown', 'K8S_POD_NAME', 'K8S_POD_NAMESPACE', 'K8S_POD_UID', 'K8S_POD_INFRA_CONTAINER_ID']);

export function parseCommand(v: string | undefined): CniCommand {
  if (v === undefined || v === '') throw agentError('KOA_BAD_ENV', 'CNI_COMMAND', 'it is not set');
  if (!(COMMANDS as readonly string[]).includes(v)) {
    throw agentError('KOA_BAD_ENV', 'CNI_COMMAND', `unknown command "${v}" (expected one of ${COMMANDS.join(', ')})`);
  }
  return v as CniCommand;
}

function parseBool(key: string, v: string): boolean {
  if (v === '1' || v === 'true' || v === 'True' || v === 'TRUE') return true;
  if (v === '0' || v === 'false' || v === 'False' || v === 'FALSE') return false;
  throw agentError('KOA_BAD_ARGS', `${key}="${v}" is not a boolean`);
}

/** Parses CNI_ARGS ("K8S_POD_NAME=a;K8S_POD_NAMESPACE=b;IgnoreUnknown=1"). */
export function parseCniArgs(s: string | undefined): CniArgs {
  const all: Record<string, string> = {};
  if (s !== undefined && s !== '') {
    for (const pair of s.split(';')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      if (eq <= 0 || pair.indexOf('=', eq + 1) !== -1) throw agentError('KOA_BAD_ARGS', `"${pair}" is not a KEY=VALUE pair`);
      const k = pair.slice(0, eq);
      // a repeated key: the last one wins, as in upstream's libcni LoadArgs. Multus appends its own
      // IgnoreUnknown=true to containerd's IgnoreUnknown=1 on every delegate call (seen on the real node)
      all[k] = pair.slice(eq + 1);
    }
  }
  const ignoreUnknown = all.IgnoreUnknown !== undefined ? parseBool('IgnoreUnknown', all.IgnoreUnknown) : false;
  if (!ignoreUnknown) {
    const unknown = Object.keys(all).filter((k) => !KNOWN_ARGS.has(k));
    if (unknown.length) throw agentError('KOA_BAD_ARGS', `unknown key(s) ${unknown.join(', ')} (set IgnoreUnknown=1 to allow them)`);
  }
  const out: CniArgs = { ignoreUnknown, all };
  if (all.K8S_POD_NAME) out.podName = all.K8S_POD_NAME;
  if (all.K8S_POD_NAMESPACE) out.podNamespace = all.K8S_POD_NAMESPACE;
  if (all.K8S_POD_UID) out.podUid = all.K8S_POD_UID;
  if (all.K8S_POD_INFRA_CONTAINER_ID) out.infraContainerId = all.K8S_POD_INFRA_CONTAINER_ID;
  return out;
}

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Returns an error message, or null when the container ID is valid. */
export function containerIdProblem(id: string): string | null {
  if (id === '') return 'it is empty';
  if (!CONTAINER_ID.test(id)) return `"${id}" must start with a letter or digit and contain only letters, digits, '_', '.', '-'`;
  return null;
}

/** Returns an error message, or null when the interface name is valid (Linux IFNAMSIZ rules). */
export function ifNameProblem(name: string): string | null {
  if (name === '') return 'it is empty';
  if (Buffer.byteLength(name) > 15) return `"${name}" is longer than 15 bytes`;
  if (name === '.' || name === '..') return `"${name}" is not a valid interface name`;
  if (/[/:\s]/u.test(name)) return `"${name}" must not contain '/', ':' or whitespace`;
  return null;
}

export interface CniEnv {
  command: CniCommand;
  containerId: string;
  netns: string;
  ifName: string;
  args: CniArgs;
  cniPath: string[];
  /**
   * DEL only: why CNI_CONTAINERID or CNI_IFNAME is a value no ADD accepts. Nothing can have been created for it, so
   * the DEL succeeds without doing anything (kubelet retries a failing DEL forever and the pod never terminates).
   */
  delIgnoredBecause?: string;
}

function need(env: Record<string, string>, key: string): string {
  const v = env[key];
  if (v === undefined || v === '') throw agentError('KOA_BAD_ENV', key, 'it is required for this command');
  return v;
}

/** Parses and validates the environment for `command`. */
export function parseEnv(env: Record<string, string>): CniEnv {
  const command = parseCommand(env.CNI_COMMAND);
  const args = parseCniArgs(env.CNI_ARGS);
  const cniPath = (env.CNI_PATH ?? '').split(':').filter((p) => p !== '');
  const out: CniEnv = { command, containerId: env.CNI_CONTAINERID ?? '', netns: env.CNI_NETNS ?? '', ifName: env.CNI_IFNAME ?? '', args, cniPath };
  if (command !== 'ADD' && command !== 'DEL' && command !== 'CHECK') return out;

  out.containerId = need(env, 'CNI_CONTAINERID');
  out.ifName = need(env, 'CNI_IFNAME');
  const cidErr = containerIdProblem(out.containerId);
  const ifErr = ifNameProblem(out.ifName);
  if (command === 'DEL' && (cidErr || ifErr)) {
    out.delIgnoredBecause = cidErr ? `CNI_CONTAINERID: ${cidErr}` : `CNI_IFNAME: ${ifErr}`;
    return out;
  }
  if (cidErr) throw agentError('KOA_BAD_ENV', 'CNI_CONTAINERID', cidErr);
  if (ifErr) throw agentError('KOA_BAD_ENV', 'CNI_IFNAME', ifErr);
  if (command !== 'DEL') out.netns = need(env, 'CNI_NETNS');
  if (out.netns !== '' && !out.netns.startsWith('/')) {
    throw agentError('KOA_BAD_ENV', 'CNI_NETNS', `"${out.netns}" must be an absolute path`);
  }
  return out;
}

/** The Kubernetes pod identity kube-ovn requires in CNI_ARGS (upstream: code 7 when missing, for DEL too). */
export function requirePod(args: CniArgs): { podName: string; podNamespace: string } {
  const missing = [!args.podName && 'K8S_POD_NAME', !args.podNamespace && 'K8S_POD_NAMESPACE'].filter(Boolean);
  if (missing.length) throw agentError('KOA_POD_ARGS', missing.join(' and '));
  return { podName: args.podName!, podNamespace: args.podNamespace! };
}
