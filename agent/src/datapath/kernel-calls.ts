// Where a kernel call that may wait on the RTNL lock runs: inline on the event loop, or on the libuv pool.
//
// Why both: rtnetlink answers a request inside sendto() (the ACK is queued before sendto returns), and an ethtool
// ioctl or a sysctl write is one syscall, so uncontended such a call costs 5-50 µs inline. A pool job costs a
// thread hand-off each way, 0.1 ms at the median and milliseconds at the tail on a busy or idle 2-vCPU VM (a
// sleeping worker and a halted vCPU must both wake), and an ADD makes about twenty of them. But when another
// process holds RTNL (a namespace being torn down holds it for tens of milliseconds), an inline call stalls the
// event loop for as long. So: inline by default; an inline call slower than `slowMs` shows contention, and every
// call goes to the pool for the next `holdMs`. At most one inline call per hold window can be slow. The window is
// 200 ms: a namespace teardown holds RTNL for tens of ms, and `npm run bench -- add.agent` (a pod created and
// removed in a loop, so netns teardowns overlap the ADDs) gave p50 8.3/6.6 ms at 200 ms vs 9.2/7.2 ms at 1 s,
// paired runs, for 20/14 vs 6/4 slow inline calls of 2-7 ms each. Calls slow by
// nature (a link delete) always run on the pool, and while one runs every other call does too.

export interface KernelCallStats {
  inline: number;
  pooled: number;
  /** inline calls that took longer than slowMs (each opened a pool window) */
  slow: number;
}

export class KernelCallRouter {
  readonly stats: KernelCallStats = { inline: 0, pooled: 0, slow: 0 };
  private poolUntil = -Infinity;
  readonly slowMs: number;
  readonly holdMs: number;
  private readonly now: () => number;

  constructor(slowMs = 2, holdMs = 200, now: () => number = () => performance.now()) {
    this.slowMs = slowMs;
    this.holdMs = holdMs;
    this.now = now;
  }

  /** calls slow by nature running on the pool now: they hold RTNL, so an inline call would wait for them */
  private slowOnPool = 0;

  /** True while the last slow inline call is recent, or a call slow by nature runs: run on the pool. */
  get contended(): boolean {
    return this.slowOnPool > 0 || this.now() < this.poolUntil;
  }

  /** Runs `pool` on the pool whatever the contention: for calls slow by nature (a link delete waits for an RCU
   *  grace period inside sendto, 15-30 ms). */
  onPool<T>(pool: () => Promise<T>): Promise<T> {
    this.stats.pooled++;
    this.slowOnPool++;
    const done = () => { this.slowOnPool--; };
    let p: Promise<T>;
    try {
      p = pool();
    } catch (e) {
      done();
      return Promise.reject(e);
    }
    return p.finally(done);
  }

  /** Runs `inline` on the event loop unless contended, else `pool`. `inline` may hand the rest of its work to the
   *  pool by returning a promise; only its synchronous part is timed. */
  run<T>(inline: () => T | Promise<T>, pool: () => Promise<T>): Promise<T> {
    if (this.contended) {
      this.stats.pooled++;
      return pool();
    }
    this.stats.inline++;
    const t0 = this.now();
    try {
      return Promise.resolve(inline());
    } catch (e) {
      return Promise.reject(e);
    } finally {
      const spent = this.now() - t0;
      if (spent > this.slowMs) {
        this.stats.slow++;
        this.poolUntil = this.now() + this.holdMs;
      }
    }
  }
}

/** The process's router: every netlink socket and namespace call shares one view of RTNL contention. */
export const kernelCalls = new KernelCallRouter();
