// The flag table of the README, generated from FLAGS (a unit test keeps the README's copy equal to this), so the
// documentation of every flag, its default and whether the agent acts on it cannot drift from the code.
import { FLAGS, type FlagDef } from './config.ts';

const cell = (s: string): string => s.replaceAll('|', '\\|');

export function flagsMarkdown(): string {
  const rows = FLAGS.filter((f) => f.origin !== 'klog').map((f) => {
    const def = f.def === '' ? '""' : `\`${f.def}\``;
    return `| \`--${f.name}\` | ${(f.env ?? []).map((e) => `\`${e}\``).join(', ')} | ${def} | ${f.origin} | ${f.acted ? 'yes' : 'no (accepted, logged)'} | ${cell(f.help)} |`;
  });
  return ['| flag | env | default | origin | acted on | what |', '|---|---|---|---|---|---|', ...rows].join('\n');
}

/** `-h`, `-help`, `--help` (Go's flag package accepts one or two dashes) before any `--`. */
export function wantsHelp(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (/^--?(h|help)$/.test(a)) return true;
  }
  return false;
}

const KIND_WORD: Readonly<Record<FlagDef['kind'], string>> = { string: 'string', bool: '', int: 'int', duration: 'duration', list: 'strings' };

/** What `kube-ovn-daemon --help` prints: every flag of FLAGS with its value kind, help, default and env variables. */
export function flagsUsage(prog = 'kube-ovn-daemon'): string {
  const line = (f: FlagDef): string => {
    const head = `  --${f.name}${KIND_WORD[f.kind] ? ` ${KIND_WORD[f.kind]}` : ''}`;
    const def = f.def === '' || (f.kind === 'bool' && f.def === 'false') ? '' : ` (default ${f.kind === 'string' ? JSON.stringify(f.def) : f.def})`;
    const env = f.env?.length ? ` [env ${f.env.join(', ')}]` : '';
    const unused = f.acted || f.origin === 'klog' ? '' : ' [accepted, not acted on]';
    return `${head.padEnd(38)} ${f.help}${def}${env}${unused}`;
  };
  const group = (title: string, origin: FlagDef['origin']): string[] =>
    [title, ...FLAGS.filter((f) => f.origin === origin).map(line)];
  return [
    `Usage of ${prog}: ${prog} [flags]   (--install-cni-config: install the CNI conflist and exit)`,
    ...group('Flags of upstream kube-ovn-daemon:', 'upstream'),
    ...group('Flags of this agent:', 'ours'),
    ...group('klog flags (accepted; -v sets the log verbosity, the others are ignored):', 'klog'),
    '',
  ].join('\n');
}
