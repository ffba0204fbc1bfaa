// Times every async method of a datapath port into a metrics callback, without the port knowing about metrics.

/** Wraps every async method of `target` so each call is timed into `observe(op, seconds, ok)`. */
export function instrument<T extends object>(target: T, observe: (op: string, seconds: number, ok: boolean) => void): T {
  const cache = new Map<PropertyKey, unknown>();
  return new Proxy(target, {
    get(t, prop) {
      const v = Reflect.get(t, prop, t) as unknown;
      if (typeof v !== 'function' || prop === 'close' || prop === 'constructor') return v;
      let w = cache.get(prop);
      if (!w) {
        const op = String(prop);
        const fn = v as (...a: unknown[]) => unknown;
        w = (...args: unknown[]) => {
          const t0 = performance.now();
          const r = fn.apply(t, args);
          if (!(r instanceof Promise)) return r;
          return r.then((x) => { observe(op, (performance.now() - t0) / 1000, true); return x; },
            (e: unknown) => { observe(op, (performance.now() - t0) / 1000, false); throw e; });
        };
        cache.set(prop, w);
      }
      return w;
    },
  });
}
