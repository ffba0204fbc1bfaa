// errno number <-> name, from Node's own table (os.constants.errno); pure, no syscalls.
import { constants } from 'node:os';

const byNumber = new Map<number, string>();
for (const [name, num] of Object.entries(constants.errno)) if (!byNumber.has(num)) byNumber.set(num, name);
// Aliases sharing a number on Linux: use the name the kernel's netlink code means.
for (const name of ['EAGAIN', 'EOPNOTSUPP', 'EDEADLK']) {
  const num = (constants.errno as Record<string, number>)[name];
  if (num !== undefined) byNumber.set(num, name);
}

/** 17 -> "EEXIST"; unknown numbers -> "E<n>". Sign is ignored (netlink sends negative errnos). */
export function errnoName(errno: number): string {
  return byNumber.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

export function errnoNumber(name: string): number | undefined {
  return (constants.errno as Record<string, number>)[name];
}
