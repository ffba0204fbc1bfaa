// The interfaces the agent's logic sees for the datapath: one line per area (each area owns its port file). Their
// in-memory fakes (netlink/fake.ts, ovsdb/fake.ts) are imported by tests directly, never through here. Import from here in planners/executors; the real implementations are wired in main.ts.
export type * from './netlink/port.ts';
export type * from './ovsdb/port.ts';
export { VENDOR as OVS_VENDOR, podExternalIds, policingBurstKbit, htbQueueConfig, netemConfig } from './ovsdb/port.ts';
