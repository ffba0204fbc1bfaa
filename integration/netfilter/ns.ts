// Namespaces for the netfilter integration tests: `koanf` + random, made with the bed's createNetns (registered
// for cleanup the moment they exist). Runners reach into them with `ip netns exec <ns>` as argv prefix, so
// nothing ever touches the host's iptables or ipsets.
import { createNetns, newPrefix, type Netns } from '../bed/netns.ts';
import { ExecNetfilterRunner } from '../../agent/src/datapath/netfilter/runner.ts';
import type { Backend } from '../../agent/src/datapath/netfilter/types.ts';

export const BACKENDS: readonly Backend[] = ['legacy', 'nft'];

const prefix = newPrefix('koanf');
let n = 0;

export async function freshNetns(): Promise<Netns> {
  return createNetns(`${prefix}${n++}`);
}

export function runnerIn(ns: Netns, backend: Backend): ExecNetfilterRunner {
  return new ExecNetfilterRunner({ backend, argvPrefix: ['ip', 'netns', 'exec', ns.name] });
}

/** Runs one iptables-family command in the namespace (a foreign writer, as kube-proxy or an admin would). */
export async function iptables(ns: Netns, backend: Backend, family: 4 | 6, args: readonly string[]): Promise<void> {
  await ns.exec([`${family === 4 ? 'iptables' : 'ip6tables'}-${backend}`, '-w', '5', ...args]);
}
