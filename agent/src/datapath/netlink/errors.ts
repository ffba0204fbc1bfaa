// Netlink failures as agent errors: KOA_NETLINK (CNI code 104) with the errno name kept for branching.
import { AgentError, errorMessage } from '../../errors.ts';
import { errnoName } from './errno.ts';

export class NetlinkError extends AgentError {
  /** errno name: "EEXIST", "ENOENT", "ENODEV", "EINVAL", "ETIMEDOUT", ... */
  readonly errno: string;
  /** What we were doing, e.g. "RTM_NEWLINK veth h1/eth0" or "open netns /var/run/netns/x". */
  readonly op: string;
  /** Kernel extended-ACK message, when it sent one. */
  readonly extack: string | undefined;
  constructor(errno: string, op: string, detail: string, extack?: string, options?: { cause?: unknown }) {
    const text = `${detail}${extack ? ` (${extack})` : ''} [${errno}]`;
    super('KOA_NETLINK', errorMessage('KOA_NETLINK', op, text), undefined, options);
    this.name = 'NetlinkError';
    this.errno = errno;
    this.op = op;
    this.extack = extack;
  }
}

/** A kernel NLMSG_ERROR (negative errno) as a NetlinkError. */
export function kernelError(negErrno: number, op: string, extack?: string): NetlinkError {
  const name = errnoName(-negErrno);
  return new NetlinkError(name, op, describe(name), extack);
}

/** Bad input detected before anything was sent: nothing changed. */
export function invalid(op: string, detail: string): NetlinkError {
  return new NetlinkError('EINVAL', op, detail);
}

export function isNetlinkError(e: unknown, ...errnos: string[]): e is NetlinkError {
  return e instanceof NetlinkError && (errnos.length === 0 || errnos.includes(e.errno));
}

const descriptions: Record<string, string> = {
  EEXIST: 'already exists',
  ENOENT: 'no such object',
  ENODEV: 'no such device',
  ESRCH: 'no such process or entry',
  EADDRNOTAVAIL: 'address not available',
  EINVAL: 'invalid argument',
  EPERM: 'operation not permitted',
  EBUSY: 'device or resource busy',
  ENETUNREACH: 'network unreachable',
  EOPNOTSUPP: 'operation not supported',
  ERANGE: 'value out of range',
  ENOBUFS: 'no buffer space',
  ETIMEDOUT: 'timed out',
};

export function describe(errno: string): string {
  return descriptions[errno] ?? errno;
}
