// Minimal Prometheus text-format reader for tests: samples with their labels, and the # TYPE of each family.

export interface Sample { name: string; labels: Record<string, string>; value: number }
export interface Exposition { samples: Sample[]; types: Map<string, string> }

export function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) { types.set(t[1]!, t[2]!); continue; }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparseable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, '$1');
    samples.push({ name: m[1]!, labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) });
  }
  return { samples, types };
}

/** Samples of `name` whose labels include all of `want`. */
export function find(e: Exposition, name: string, want: Record<string, string> = {}): Sample[] {
  return e.samples.filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v));
}

/** The one sample value, or an error naming what was missing. */
export function value(e: Exposition, name: string, want: Record<string, string> = {}): number {
  const f = find(e, name, want);
  if (f.length !== 1) throw new Error(`expected one sample ${name}${JSON.stringify(want)}, found ${f.length}`);
  return f[0]!.value;
}

/** Finite `le` bounds of a histogram family (from the bucket samples of the first series). */
export function bucketBounds(e: Exposition, family: string, want: Record<string, string> = {}): number[] {
  return find(e, `${family}_bucket`, want).map((s) => s.labels.le!).filter((le) => le !== '+Inf').map(Number);
}
