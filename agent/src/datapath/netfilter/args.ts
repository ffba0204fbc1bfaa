// Splitting and quoting of one iptables rule line, the way iptables-restore reads it and iptables-save prints it.
// Measured on iptables 1.8.9 (legacy and nft agree):
//  * restore splits on blanks; a double quote opens/closes a quoted run; inside it a backslash escapes the next
//    character. Single quotes are ordinary characters (`--comment ''` stores the two characters '').
//  * save prints an argument bare when it is non-empty and made only of [A-Za-z0-9_-]; otherwise in double quotes
//    with `"`, `'` and `\` escaped by a backslash ("a.b", "a,b", "", "x\'y").

const BARE = /^[A-Za-z0-9_-]+$/;

/** Quotes one argument exactly as iptables-save prints it. */
export function quoteArg(arg: string): string {
  if (BARE.test(arg)) return arg;
  return `"${arg.replace(/["'\\]/g, (c) => `\\${c}`)}"`;
}

/** One argument: its value and the text it was written as (quotes and escapes included). */
export interface Arg { value: string; raw: string }

/** Splits a rule line (restore input or save output) into arguments, keeping each one's source text. Throws on an
 * unterminated quote. */
export function splitArgsRaw(line: string): Arg[] {
  const out: Arg[] = [];
  let cur = '';
  let start = -1;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '\\' && i + 1 < line.length) { cur += line[++i]; continue; }
      if (c === '"') { quoted = false; continue; }
      cur += c;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      if (start >= 0) { out.push({ value: cur, raw: line.slice(start, i) }); cur = ''; start = -1; }
      continue;
    }
    if (start < 0) start = i;
    if (c === '"') { quoted = true; continue; }
    cur += c;
  }
  if (quoted) throw new Error(`unterminated quote in: ${line}`);
  if (start >= 0) out.push({ value: cur, raw: line.slice(start) });
  return out;
}

/** Splits a rule line into argument values (see splitArgsRaw). */
export function splitArgs(line: string): string[] {
  return splitArgsRaw(line).map((a) => a.value);
}

/** Quotes an argument only when restore would otherwise split or mangle it (save prints addresses, ports, marks and
 * names raw; only string options such as --comment go through quoteArg). */
export function rawArg(arg: string): string {
  return arg !== '' && !/[\s"\\]/.test(arg) ? arg : quoteArg(arg);
}
