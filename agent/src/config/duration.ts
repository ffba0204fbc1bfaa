// Go-style durations ("90s", "1m30s", "500ms", "0"), the format upstream's flags use, parsed to milliseconds.

const UNIT_MS: Record<string, number> = {
  ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000,
};
// The micro sign (U+00B5) and Greek mu (U+03BC) escaped: a non-ASCII character in the bundle makes V8 hold all of its source as
// two-byte (UTF-16) text, twice the memory (esbuild escapes strings but not regular expression literals)
const PART = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/;

/** Milliseconds for a Go duration string, or undefined when it is not one. Negative durations are rejected. */
export function parseDuration(text: string): number | undefined {
  const s = text.trim();
  if (s === '0') return 0;
  if (s === '') return undefined;
  let rest = s;
  let total = 0;
  while (rest.length > 0) {
    const m = PART.exec(rest);
    if (!m) return undefined;
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return Number.isFinite(total) ? total : undefined;
}

/** The shortest Go-style spelling of a whole number of milliseconds (for help text and tables). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
