// The flag table of the README, generated from FLAGS (a unit test keeps the README's copy equal to this), so the
// documentation of every flag, its default and whether the agent acts on it cannot drift from the code.
import { FLAGS } from './config.ts';

const cell = (s: string): string => s.replaceAll('|', '\\|');

export function flagsMarkdown(): string {
  const rows = FLAGS.filter((f) => f.origin !== 'klog').map((f) => {
    const def = f.def === '' ? '""' : `\`${f.def}\``;
    return `| \`--${f.name}\` | ${(f.env ?? []).map((e) => `\`${e}\``).join(', ')} | ${def} | ${f.origin} | ${f.acted ? 'yes' : 'no (accepted, logged)'} | ${cell(f.help)} |`;
  });
  return ['| flag | env | default | origin | acted on | what |', '|---|---|---|---|---|---|', ...rows].join('\n');
}
