// `kube-ovn-daemon --install-cni-config`: the one-shot conflist installer that upstream's install-cni.sh runs in the
// init container (spec §1.3). Target = <--cni-conf-dir>/<--cni-conf-name>:
//  - target exists with mode 0600            -> nothing changes (the content is NOT refreshed, as upstream);
//  - target exists with another mode         -> chmod 0600, nothing else;
//  - otherwise read --cni-conf-file, check it is a JSON network configuration, remove leftovers <target>.tmp.*,
//    write <target>.tmp.<pid> (0600, fsync), rename it over the target, fsync the directory.
// A bad source (missing, not JSON, not a conf/conflist) is a clear error and nothing is written.
//
// main.ts hook (composition root, before anything else starts):
//   if (wantsInstallCniConfig(argv)) process.exit(await runInstallCniConfig(argv));
// Until then the image's /kube-ovn/kube-ovn-daemon wrapper runs a bundle of runInstallCniConfig directly.

import { constants as C } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { loadConfig } from './config/config.ts';
import { AgentError, agentError, agentErrorCause } from './errors.ts';
import { parseGoBool } from './config/flags.ts';

export interface InstallCniConfigOptions {
  /** --cni-conf-dir (absolute) */
  confDir: string;
  /** --cni-conf-file: the conflist shipped in the image */
  confFile: string;
  /** --cni-conf-name: a plain file name */
  confName: string;
  /** suffix of the temp file (default: the pid) */
  tmpSuffix?: string;
}

export type InstallAction = 'kept' | 'chmod' | 'written';
export interface InstallOutcome { action: InstallAction; target: string; removedTemps: number }

const MODE = 0o600;
const MAX_CONF_BYTES = 1 << 20;

/** True when argv turns `--install-cni-config` on (Go flag syntax: `--x`, `-x`, `--x=true|1|t|...`; last one wins). */
export function wantsInstallCniConfig(argv: readonly string[]): boolean {
  let on = false;
  for (const a of argv) {
    if (a === '--') break;
    const m = /^--?install-cni-config(?:=(.*))?$/s.exec(a);
    if (!m) continue;
    on = m[1] === undefined ? true : parseGoBool(m[1]) === true;
  }
  return on;
}

/** Checks that `text` is a CNI network configuration (a .conf object with `type`, or a .conflist with `plugins`). */
export function validateNetworkConfig(text: string, source: string): void {
  let v: unknown;
  try { v = JSON.parse(text); } catch (e) {
    throw agentError('KOA_CONFIG', `--cni-conf-file ${source}: not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw agentError('KOA_CONFIG', `--cni-conf-file ${source}: not a JSON object`);
  const o = v as Record<string, unknown>;
  if (typeof o.cniVersion !== 'string' || o.cniVersion === '') throw agentError('KOA_CONFIG', `--cni-conf-file ${source}: missing "cniVersion"`);
  if (o.plugins !== undefined) {
    if (!Array.isArray(o.plugins) || o.plugins.length === 0) throw agentError('KOA_CONFIG', `--cni-conf-file ${source}: "plugins" must be a non-empty array`);
    o.plugins.forEach((p, i) => {
      if (typeof p !== 'object' || p === null || typeof (p as { type?: unknown }).type !== 'string') {
        throw agentError('KOA_CONFIG', `--cni-conf-file ${source}: plugins[${i}] has no "type"`);
      }
    });
    if (typeof o.name !== 'string' || o.name === '') throw agentError('KOA_CONFIG', `--cni-conf-file ${source}: missing "name"`);
  } else if (typeof o.type !== 'string' || o.type === '') {
    throw agentError('KOA_CONFIG', `--cni-conf-file ${source}: neither "plugins" (conflist) nor "type" (conf)`);
  }
}

function io(e: unknown, what: string): AgentError {
  return agentErrorCause('KOA_IO', e, `${what}: ${e instanceof Error ? e.message : String(e)}`);
}

/** Installs the conflist as described at the top of this file. */
export async function installCniConfig(opts: InstallCniConfigOptions): Promise<InstallOutcome> {
  const { confDir, confFile, confName } = opts;
  if (!confDir.startsWith('/')) throw agentError('KOA_CONFIG', `--cni-conf-dir=${JSON.stringify(confDir)}: expected an absolute path`);
  if (confName === '' || confName !== basename(confName) || confName === '.' || confName === '..') {
    throw agentError('KOA_CONFIG', `--cni-conf-name=${JSON.stringify(confName)}: expected a file name without "/"`);
  }
  const target = join(confDir, confName);

  let existing: import('node:fs').Stats | undefined;
  try { existing = await stat(target); } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw io(e, `stat ${target}`);
  }
  if (existing) {
    if (!existing.isFile()) throw agentError('KOA_CONFIG', `${target} exists and is not a regular file`);
    if ((existing.mode & 0o777) === MODE) return { action: 'kept', target, removedTemps: 0 };
    try { await chmod(target, MODE); } catch (e) { throw io(e, `chmod ${target}`); }
    return { action: 'chmod', target, removedTemps: 0 };
  }

  let text: string;
  try {
    const buf = await readFile(confFile);
    if (buf.length > MAX_CONF_BYTES) throw agentError('KOA_CONFIG', `--cni-conf-file ${confFile}: larger than ${MAX_CONF_BYTES} bytes`);
    text = buf.toString('utf8');
  } catch (e) {
    if (e instanceof AgentError) throw e;
    throw io(e, `read --cni-conf-file ${confFile}`);
  }
  validateNetworkConfig(text, confFile);

  try { await mkdir(confDir, { recursive: true, mode: 0o755 }); } catch (e) { throw io(e, `mkdir ${confDir}`); }
  let removedTemps = 0;
  const prefix = `${confName}.tmp.`;
  for (const name of await readdir(confDir).catch((e: unknown) => { throw io(e, `readdir ${confDir}`); })) {
    if (!name.startsWith(prefix)) continue;
    await unlink(join(confDir, name)).then(() => { removedTemps++; }, (e: unknown) => {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw io(e, `remove leftover ${name}`);
    });
  }

  const tmp = `${target}.tmp.${opts.tmpSuffix ?? String(process.pid)}`;
  try {
    const fh = await open(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, MODE);
    try {
      await fh.chmod(MODE); // the umask must not widen or narrow it
      await fh.writeFile(text);
      await fh.sync();
    } finally { await fh.close(); }
    await rename(tmp, target);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw io(e, `write ${target}`);
  }
  try {
    const dir = await open(confDir, C.O_RDONLY | C.O_DIRECTORY);
    try { await dir.sync(); } finally { await dir.close(); }
  } catch { /* the rename is done; a directory fsync failure only weakens crash safety */ }
  return { action: 'written', target, removedTemps };
}

/**
 * The CLI of install mode: reads --cni-conf-dir/--cni-conf-file/--cni-conf-name through the agent's one flag table
 * (config/config.ts, so every upstream flag is accepted), installs, prints one JSON log line, returns the exit status.
 */
export async function runInstallCniConfig(
  argv: readonly string[],
  out: (line: string) => void = (l) => { process.stdout.write(l); },
): Promise<number> {
  const log = (level: number, msg: string, extra: Record<string, unknown>) =>
    out(`${JSON.stringify({ level, time: Date.now(), component: 'kube-ovn-node-agent', mode: 'install-cni-config', ...extra, msg })}\n`);
  try {
    // Only the flags matter here: no environment (the init container sets POD_IPS, nothing else of ours) and a
    // placeholder node name, so an odd hostname or env can never fail the conflist install (upstream ignores them too).
    const cfg = loadConfig(argv, {}, 'install-cni-config');
    const r = await installCniConfig({ confDir: cfg.cniConfDir, confFile: cfg.cniConfFile, confName: cfg.cniConfName });
    const msg = r.action === 'kept' ? 'CNI config already installed with mode 0600: left as it is'
      : r.action === 'chmod' ? 'CNI config already installed: mode set to 0600' : 'CNI config installed';
    log(30, msg, { target: r.target, action: r.action, ...(r.removedTemps ? { removedTemps: r.removedTemps } : {}) });
    return 0;
  } catch (e) {
    const err = e instanceof AgentError ? e : io(e, 'install-cni-config');
    log(50, 'CNI config install failed', { err: { code: err.code, message: err.message } });
    return 1;
  }
}
