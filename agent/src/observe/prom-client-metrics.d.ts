// prom-client ships no types for its per-collector modules (observe/default-metrics.ts imports them by path).
declare module 'prom-client/lib/metrics/*' {
  import type { Registry } from 'prom-client';
  const collect: (registry: Registry, config: Record<string, unknown>) => void;
  export default collect;
}
