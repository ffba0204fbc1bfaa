// Namespaces for the netfilter integration tests: `koanf` + random, made with the bed's createNetns (registered
// for cleanup the moment they exist). Runners reach into them with `nsenter --net=<path>` as argv prefix (half
// the cost of `ip netns exec`, which also sets up a mount namespace), so nothing touches the host's iptables or
// ipsets.
import { createNetns, newPrefix, type Netns } from '../bed/netns.ts';
import { ExecNetfilterRunner } from '../../agent/src/datapath/netfilter/runner.ts';
import type { Backend } from '../../agent/src/datapath/netfilter/types.ts';

export const BACKENDS: readonly Backend[] = ['legacy', 'nft'];

const prefix = newPrefix('koanf');
let n = 0;

export async function freshNetns(): Promise<Netns> {
  return createNetns(`${prefix}${n++}`);
}

export function runnerIn(ns: Pick<Netns, 'path'>, backend: Backend): ExecNetfilterRunner {
  return new ExecNetfilterRunner({ backend, argvPrefix: inNetns(ns) });
}

export function inNetns(ns: Pick<Netns, 'path'>): string[] {
  return ['nsenter', `--net=${ns.path}`];
}

/** Runs one iptables-family command in the namespace (a foreign writer, as kube-proxy or an admin would). */
export async function iptables(ns: Netns, backend: Backend, family: 4 | 6, args: readonly string[]): Promise<void> {
  await ns.exec([`${family === 4 ? 'iptables' : 'ip6tables'}-${backend}`, '-w', '5', ...args]);
}
