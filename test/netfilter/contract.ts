// The NetfilterRunner contract, run against the in-memory fake (test/netfilter/fake.test.ts) and against the
// real tools in a namespace of our own, legacy and nft, IPv4 and IPv6 (integration/netfilter/contract.test.ts).
// Each case gets a fresh, empty runner. Both must behave the same, so the fake cannot drift from the tools.
import assert from 'node:assert/strict';
import type { NetfilterRunner } from '../../agent/src/datapath/netfilter/port.ts';
import { NetfilterError } from '../../agent/src/datapath/netfilter/port.ts';
import { parseIptablesSave } from '../../agent/src/datapath/netfilter/iptables-codec.ts';
import { parseIpsetSave } from '../../agent/src/datapath/netfilter/ipset-codec.ts';
import type { Family } from '../../agent/src/datapath/netfilter/types.ts';

export interface ContractEnv { runner: NetfilterRunner; family: Family }
export type ContractCase = [name: string, run: (env: ContractEnv) => Promise<void>];

const net = (f: Family) => (f === 4 ? { cidr: '10.16.0.0/16', host: '10.16.0.5', hostCidr: '10.16.0.5/32', sloppy: '10.16.0.77/16', inet: 'inet', other: 'inet6', otherCidr: 'fd00::/64' }
  : { cidr: 'fd00:10:16::/64', host: 'fd00:10:16::5', hostCidr: 'fd00:10:16::5/128', sloppy: 'FD00:10:16:0::77/64', inet: 'inet6', other: 'inet', otherCidr: '10.0.0.0/8' });

async function rules(r: NetfilterRunner, f: Family, table: string, chain: string): Promise<string[] | undefined> {
  return parseIptablesSave(await r.save(f)).get(table)?.chains.get(chain)?.rules.map((x) => x.spec);
}

async function sets(r: NetfilterRunner) {
  return parseIpsetSave(await r.ipsetSave());
}

/** Rejects with a NetfilterError that names the culprit: the failing input line or, where the tool only finds
 * out at COMMIT, its message. (iptables-nft checks chain references at commit and blames the COMMIT line;
 * iptables-legacy reports a failed -D/-X as "line <COMMIT> failed" with no detail: `atCommit` accepts that.) */
async function rejectsAt(p: Promise<unknown>, culprit: RegExp, atCommit = false): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof NetfilterError, `expected NetfilterError, got ${String(e)}`);
    const line = e.failedLine?.text ?? '';
    const text = line === 'COMMIT' || line === '' ? e.stderr : line;
    if (atCommit && /line \d+ failed/.test(e.stderr) && line === 'COMMIT') return true;
    assert.match(text, culprit);
    return true;
  });
}

export const contract: ContractCase[] = [
  ['restore creates chains and rules; save prints them in canonical form with counters', async ({ runner, family }) => {
    const n = net(family);
    await runner.restore(family, `*filter\n:KOANF-A - [0:0]\n-A KOANF-A -m comment --comment ovn-subnet-gateway,net1 -s ${n.sloppy}\n` +
      `-A KOANF-A -p udp --dport 6081 -j MARK --set-xmark 0x0\n-A KOANF-A -d ${n.host} -j REJECT\n-A FORWARD -j KOANF-A\nCOMMIT\n`);
    const saved = parseIptablesSave(await runner.save(family));
    const chain = saved.get('filter')!.chains.get('KOANF-A')!;
    assert.equal(chain.policy, '-');
    assert.deepEqual(chain.rules.map((r) => r.spec), [
      `-s ${n.cidr} -m comment --comment "ovn-subnet-gateway,net1"`,
      '-p udp -m udp --dport 6081 -j MARK --set-xmark 0x0/0xffffffff',
      `-d ${n.hostCidr} -j REJECT --reject-with ${family === 4 ? 'icmp-port-unreachable' : 'icmp6-port-unreachable'}`,
    ]);
    assert.deepEqual(chain.rules.map((r) => r.counters), [0, 1, 2].map(() => ({ packets: 0, bytes: 0 })));
    assert.deepEqual(saved.get('filter')!.chains.get('FORWARD')!.rules.map((r) => r.spec), ['-j KOANF-A']);
    assert.equal(saved.get('filter')!.chains.get('FORWARD')!.policy, 'ACCEPT');
  }],

  ['--noflush keeps other rules; declaring an existing user chain flushes only that chain', async ({ runner, family }) => {
    await runner.restore(family, '*filter\n:KOANF-A - [0:0]\n:KOANF-B - [0:0]\n-A KOANF-A -j ACCEPT\n-A KOANF-B -j DROP\n-A INPUT -j KOANF-B\nCOMMIT\n');
    await runner.restore(family, '*filter\n:KOANF-A - [0:0]\n-A KOANF-A -j RETURN\nCOMMIT\n');
    assert.deepEqual(await rules(runner, family, 'filter', 'KOANF-A'), ['-j RETURN']);
    assert.deepEqual(await rules(runner, family, 'filter', 'KOANF-B'), ['-j DROP']);
    assert.deepEqual(await rules(runner, family, 'filter', 'INPUT'), ['-j KOANF-B']);
  }],

  ['-I at an index, -R, -D by index and -D by spec (spelled differently) act on the right rules', async ({ runner, family }) => {
    const n = net(family);
    await runner.restore(family, `*nat\n:KOANF-N - [0:0]\n-A KOANF-N -j RETURN\n-A KOANF-N -s ${n.cidr} -j MASQUERADE\nCOMMIT\n`);
    await runner.restore(family, '*nat\n-I KOANF-N 2 -m mark --mark 0x4000/0x4000 -j RETURN\n-I KOANF-N 1 -j ACCEPT\nCOMMIT\n');
    assert.deepEqual(await rules(runner, family, 'nat', 'KOANF-N'), ['-j ACCEPT', '-j RETURN', '-m mark --mark 0x4000/0x4000 -j RETURN', `-s ${n.cidr} -j MASQUERADE`]);
    await rejectsAt(runner.restore(family, '*nat\n-R KOANF-N 2 -j DROP\nCOMMIT\n'), /DROP/); // not a filtering table
    await runner.restore(family, `*nat\n-R KOANF-N 2 -j ACCEPT\n-D KOANF-N 1\n-D KOANF-N -j MASQUERADE -s ${n.sloppy}\nCOMMIT\n`);
    assert.deepEqual(await rules(runner, family, 'nat', 'KOANF-N'), ['-j ACCEPT', '-m mark --mark 0x4000/0x4000 -j RETURN']);
  }],

  ['a failing line rejects with that line; its table block is not applied, an earlier block stays', async ({ runner, family }) => {
    await runner.restore(family, '*filter\n:KOANF-A - [0:0]\nCOMMIT\n');
    await rejectsAt(runner.restore(family, '*nat\n:KOANF-N - [0:0]\n-A KOANF-N -j RETURN\nCOMMIT\n*filter\n-A KOANF-A -j ACCEPT\n-D KOANF-A -j DROP\nCOMMIT\n'), /^-D KOANF-A -j DROP$/, true);
    assert.deepEqual(await rules(runner, family, 'nat', 'KOANF-N'), ['-j RETURN']);
    assert.deepEqual(await rules(runner, family, 'filter', 'KOANF-A'), []);
  }],

  ['jumps to a missing chain and matches on a missing set are refused', async ({ runner, family }) => {
    await rejectsAt(runner.restore(family, '*filter\n-A INPUT -j KOANF-NOPE\nCOMMIT\n'), /KOANF-NOPE/);
    await rejectsAt(runner.restore(family, '*filter\n-A INPUT -m set --match-set koanf-nope src -j ACCEPT\nCOMMIT\n'), /koanf-nope/);
    const saved = parseIptablesSave(await runner.save(family));
    assert.deepEqual(saved.get('filter')?.chains.get('INPUT')?.rules ?? [], []);
  }],

  ['-X refuses a chain that is referenced or not empty; -D the jump, -F, -X in one block works', async ({ runner, family }) => {
    await runner.restore(family, '*mangle\n:KOANF-M - [0:0]\n-A KOANF-M -j RETURN\n-I POSTROUTING 1 -m comment --comment "kube-ovn postrouting rules" -j KOANF-M\nCOMMIT\n');
    await rejectsAt(runner.restore(family, '*mangle\n-F KOANF-M\n-X KOANF-M\nCOMMIT\n'), /KOANF-M/, true);
    await rejectsAt(runner.restore(family, '*mangle\n-D POSTROUTING -m comment --comment "kube-ovn postrouting rules" -j KOANF-M\n-X KOANF-M\nCOMMIT\n'), /KOANF-M/, true);
    assert.deepEqual(await rules(runner, family, 'mangle', 'KOANF-M'), ['-j RETURN']);
    await runner.restore(family, '*mangle\n-D POSTROUTING -m comment --comment "kube-ovn postrouting rules" -j KOANF-M\n-F KOANF-M\n-X KOANF-M\nCOMMIT\n');
    const saved = parseIptablesSave(await runner.save(family));
    assert.equal(saved.get('mangle')!.chains.has('KOANF-M'), false);
    assert.deepEqual(saved.get('mangle')!.chains.get('POSTROUTING')!.rules, []);
  }],

  ['comments with blanks, quotes and backslashes round-trip and delete by their save text', async ({ runner, family }) => {
    const weird = ['kube-ovn prerouting rules', 'a "quoted" word', "it's", 'back\\slash', 'plain-word_1', 'a,b', ''];
    const quote = (s: string) => `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`;
    await runner.restore(family, `*filter\n:KOANF-C - [0:0]\n${weird.map((c) => `-A KOANF-C -m comment --comment ${quote(c)} -j RETURN`).join('\n')}\nCOMMIT\n`);
    const got = await rules(runner, family, 'filter', 'KOANF-C');
    assert.deepEqual(got, [
      '-m comment --comment "kube-ovn prerouting rules" -j RETURN', '-m comment --comment "a \\"quoted\\" word" -j RETURN',
      '-m comment --comment "it\\\'s" -j RETURN', '-m comment --comment "back\\\\slash" -j RETURN',
      '-m comment --comment plain-word_1 -j RETURN', '-m comment --comment "a,b" -j RETURN', '-m comment --comment "" -j RETURN',
    ]);
    await runner.restore(family, `*filter\n${got!.map((s) => `-D KOANF-C ${s}`).join('\n')}\nCOMMIT\n`);
    assert.deepEqual(await rules(runner, family, 'filter', 'KOANF-C'), []);
  }],

  ['ipset restore: create, members written back canonically, del, flush; -exist semantics', async ({ runner, family }) => {
    const n = net(family);
    const name = `koanf${family}-a`;
    await runner.ipsetRestore(`create ${name} hash:net family ${n.inet} maxelem 1048576\nadd ${name} ${n.sloppy}\nadd ${name} ${n.hostCidr}\nadd ${name} ${n.sloppy}\n`);
    let s = (await sets(runner)).get(name)!;
    assert.equal(s.type, 'hash:net');
    assert.equal(s.family, n.inet);
    assert.equal(s.maxelem, 1048576);
    assert.deepEqual([...s.members].sort(), [n.cidr, n.host].sort());
    await runner.ipsetRestore(`create ${name} hash:net family ${n.inet} maxelem 1048576\ndel ${name} ${n.host}\ndel ${name} ${n.host}\n`);
    assert.deepEqual([...(await sets(runner)).get(name)!.members], [n.cidr]);
    await rejectsAt(runner.ipsetRestore(`create ${name} hash:net family ${n.inet} maxelem 100\n`), /maxelem 100/);
    await rejectsAt(runner.ipsetRestore(`add ${name} ${n.otherCidr}\n`), new RegExp(n.otherCidr.replace(/[.]/g, '\\.')));
    await runner.ipsetRestore(`flush ${name}\n`);
    s = (await sets(runner)).get(name)!;
    assert.equal(s.members.size, 0);
  }],

  ['ipset swap exchanges contents of same-type sets, refuses different types; destroy refuses a set in use', async ({ runner, family }) => {
    const n = net(family);
    const [a, b, c] = [`koanf${family}-a`, `koanf${family}-b`, `koanf${family}-c`];
    await runner.ipsetRestore(`create ${a} hash:net family ${n.inet}\nadd ${a} ${n.cidr}\ncreate ${b} hash:net family ${n.inet} maxelem 1048576\ncreate ${c} hash:ip family ${n.inet}\n`);
    await runner.ipsetRestore(`swap ${a} ${b}\n`);
    let st = await sets(runner);
    assert.deepEqual([...st.get(b)!.members], [n.cidr]);
    assert.equal(st.get(b)!.maxelem, 65536);
    assert.equal(st.get(a)!.maxelem, 1048576);
    assert.equal(st.get(a)!.members.size, 0);
    await rejectsAt(runner.ipsetRestore(`swap ${a} ${c}\n`), new RegExp(`swap ${a} ${c}`));
    await runner.restore(family, `*filter\n-A INPUT -m set --match-set ${b} src -j ACCEPT\nCOMMIT\n`);
    await rejectsAt(runner.ipsetRestore(`destroy ${b}\n`), new RegExp(`destroy ${b}`));
    await runner.restore(family, `*filter\n-D INPUT -m set --match-set ${b} src -j ACCEPT\nCOMMIT\n`);
    await runner.ipsetRestore(`destroy ${b}\ndestroy ${c}\n`);
    st = await sets(runner);
    assert.equal(st.has(b), false);
    assert.equal(st.has(c), false);
    assert.equal(st.has(a), true);
  }],

  ['an ipset of the other family cannot be matched', async ({ runner, family }) => {
    const n = net(family);
    const name = `koanf${family}-o`;
    await runner.ipsetRestore(`create ${name} hash:net family ${n.other}\n`);
    await rejectsAt(runner.restore(family, `*filter\n-A INPUT -m set --match-set ${name} src -j ACCEPT\nCOMMIT\n`), new RegExp(name));
  }],
];
