// The interfaces the agent's logic sees for the datapath, and their in-memory fakes: one line per area (each area
// owns its port file). Import from here in planners/executors; the real implementations are wired in main.ts.
export type * from './netlink/port.ts';
export { FakeNetlink } from './netlink/fake.ts';
export type * from './ovsdb/port.ts';
export { VENDOR as OVS_VENDOR, podExternalIds, policingBurstKbit, htbQueueConfig, netemConfig } from './ovsdb/port.ts';
export { FakeVswitch } from './ovsdb/fake.ts';
