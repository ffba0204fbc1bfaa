// A small Go-flag-compatible command-line parser: `--name=value`, `--name value`, `-name` (Go's flag package accepts
// one dash too), bare `--bool` = true, `--bool=false`. It never throws: every problem is collected, so the caller
// can report all invalid flags in one message.

export type FlagKind = 'string' | 'bool' | 'int' | 'duration' | 'list';

export interface FlagSpec {
  readonly name: string;
  readonly kind: FlagKind;
}

export interface ParsedFlags {
  /** flag name -> raw text of its last occurrence (Go semantics: the last one wins); bool flags without value -> 'true' */
  readonly values: ReadonlyMap<string, string>;
  readonly positionals: readonly string[];
  readonly problems: readonly string[];
}

/** Parses argv (without node and script) against the known flags; unknown flags are problems. */
export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[]): ParsedFlags {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values = new Map<string, string>();
  const positionals: string[] = [];
  const problems: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') { positionals.push(...argv.slice(i + 1)); break; }
    if (!arg.startsWith('-') || arg === '-') { positionals.push(arg); continue; }
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const spec = byName.get(name);
    if (!spec) { problems.push(`unknown flag --${name}`); continue; }
    if (eq >= 0) { values.set(name, body.slice(eq + 1)); continue; }
    if (spec.kind === 'bool') { values.set(name, 'true'); continue; }
    const next = argv[i + 1];
    if (next === undefined) { problems.push(`flag --${name} needs a value`); continue; }
    values.set(name, next);
    i++;
  }
  return { values, positionals, problems };
}

/** Go's strconv.ParseBool. */
export function parseGoBool(text: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(text)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(text)) return false;
  return undefined;
}

/** A decimal integer (optional sign), nothing else. */
export function parseInteger(text: string): number | undefined {
  if (!/^[+-]?\d+$/.test(text.trim())) return undefined;
  const n = Number(text.trim());
  return Number.isSafeInteger(n) ? n : undefined;
}
