// The real implementations for the composition root (main.ts): call `await warmUp()` first (native.ts), then wire
// these behind the `Netlink` / `PodNet` ports.
import { RtNetlink } from './rtnl.ts';
import { PodSide } from '../podnet/podside.ts';
import type { Netlink, PodNet } from './port.ts';

export function createNetlink(): { netlink: Netlink; podNet: PodNet } {
  const netlink = new RtNetlink();
  return { netlink, podNet: new PodSide(netlink) };
}

export { RtNetlink, PodSide };
export { NetlinkError, isNetlinkError } from './errors.ts';
