// Back-end detection: the pure decision (table) and the probe that feeds it (with stand-in deps).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideBackend, probeBackend, type BackendProbe, type ProbeDeps } from '../../agent/src/datapath/netfilter/backend.ts';

const none: BackendProbe['legacyTables'] = { 4: null, 6: null };

test('decideBackend: iptables -V wins; realpath comparison is the fallback; nft is the default', () => {
  const table: [string, BackendProbe, 'legacy' | 'nft'][] = [
    ['-V legacy', { version: 'iptables v1.8.9 (legacy)', legacyTables: none }, 'legacy'],
    ['-V nf_tables', { version: 'iptables v1.8.9 (nf_tables)', legacyTables: none }, 'nft'],
    ['-V nf_tables beats a realpath that says legacy', { version: 'iptables v1.8.9 (nf_tables)', iptablesPath: '/usr/sbin/xtables-legacy-multi', legacyPath: '/usr/sbin/xtables-legacy-multi', legacyTables: none }, 'nft'],
    ['no -V, same binary as iptables-legacy', { iptablesPath: '/usr/sbin/xtables-legacy-multi', legacyPath: '/usr/sbin/xtables-legacy-multi', legacyTables: none }, 'legacy'],
    ['no -V, another binary (wrapper not run yet, or nft)', { iptablesPath: '/usr/sbin/iptables-wrapper', legacyPath: '/usr/sbin/xtables-legacy-multi', legacyTables: none }, 'nft'],
    ['nothing known', { legacyTables: none }, 'nft'],
    ['old iptables without a back-end tag in -V', { version: 'iptables v1.6.1', iptablesPath: '/sbin/xtables-multi', legacyPath: '/sbin/xtables-multi', legacyTables: none }, 'legacy'],
  ];
  for (const [what, probe, want] of table) assert.equal(decideBackend(probe).backend, want, what);
});

test('decideBackend: legacy tables are cleaned once per family in nft mode only, when this netns has any', () => {
  const nft = 'iptables v1.8.9 (nf_tables)';
  assert.deepEqual(decideBackend({ version: nft, legacyTables: { 4: ['filter', 'nat'], 6: [] } }).cleanupLegacy, [4]);
  assert.deepEqual(decideBackend({ version: nft, legacyTables: { 4: ['nat'], 6: ['mangle'] } }).cleanupLegacy, [4, 6]);
  assert.deepEqual(decideBackend({ version: nft, legacyTables: { 4: [], 6: null } }).cleanupLegacy, []);
  assert.deepEqual(decideBackend({ version: nft, legacyTables: none, procModules: 'ip_tables 32768 0 - Live 0x0\n' }).cleanupLegacy, []);
  assert.deepEqual(decideBackend({ version: 'iptables v1.8.9 (legacy)', legacyTables: { 4: ['nat'], 6: ['nat'] } }).cleanupLegacy, []);
  assert.match(decideBackend({ version: nft, legacyTables: none }).reason, /nf_tables/);
});

test('probeBackend reads -V, the two realpaths and the legacy table lists', async () => {
  const asked: string[] = [];
  const deps: ProbeDeps = {
    run: async (argv) => { asked.push(argv.join(' ')); return 'iptables v1.8.9 (nf_tables)\n'; },
    read: async (p) => ({ '/proc/net/ip_tables_names': 'nat\nfilter\n', '/proc/net/ip6_tables_names': '' } as Record<string, string>)[p] ?? null,
    which: async (c) => (c === 'iptables' ? '/usr/sbin/xtables-nft-multi' : '/usr/sbin/xtables-legacy-multi'),
  };
  const p = await probeBackend(deps);
  assert.deepEqual(asked, ['iptables -V']);
  assert.deepEqual(p, { version: 'iptables v1.8.9 (nf_tables)', iptablesPath: '/usr/sbin/xtables-nft-multi', legacyPath: '/usr/sbin/xtables-legacy-multi',
    legacyTables: { 4: ['nat', 'filter'], 6: [] }, procModules: null });
  assert.deepEqual(decideBackend(p), { backend: 'nft', reason: 'iptables -V: iptables v1.8.9 (nf_tables)', cleanupLegacy: [4] });
});
