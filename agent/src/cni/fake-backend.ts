// An in-memory CniBackend for unit tests and for the CNI integration test (`--backend=fake`): it "wires" an
// attachment by computing a deterministic address/MAC from the container ID and remembering it. It never touches
// the kernel. Hooks let tests inject delays and failures and observe ordering.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { agentError, type AgentError } from '../errors.ts';
import type { CniBackend } from './backend.ts';
import type { CniRequest, CniResult, CniRoute, GcRequest, NetConf } from './types.ts';

export interface FakeEvent { op: 'add' | 'del' | 'check' | 'status' | 'gc'; key: string; phase: 'start' | 'end' }

export interface FakeOptions {
  /** Milliseconds each operation waits before finishing (exercises the per-container lock). */
  delayMs?: number | ((op: FakeEvent['op'], req: CniRequest | undefined) => number);
  /** Returns an error to throw for this operation, or undefined. */
  fail?: (op: FakeEvent['op'], req: CniRequest | undefined) => AgentError | undefined;
  mtu?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class FakeBackend implements CniBackend {
  readonly attachments = new Map<string, { result: CniResult; network: string; containerId: string; ifName: string }>();
  readonly events: FakeEvent[] = [];
  private readonly opts: FakeOptions;
  constructor(opts: FakeOptions = {}) { this.opts = opts; }

  static key(containerId: string, ifName: string): string { return `${containerId}/${ifName}`; }

  private async step(op: FakeEvent['op'], key: string, req: CniRequest | undefined): Promise<void> {
    this.events.push({ op, key, phase: 'start' });
    const d = typeof this.opts.delayMs === 'function' ? this.opts.delayMs(op, req) : (this.opts.delayMs ?? 0);
    if (d > 0) await sleep(d);
    const err = this.opts.fail?.(op, req);
    if (err) { this.events.push({ op, key, phase: 'end' }); throw err; }
  }

  /** The deterministic result for a request (exported for tests to compare against). */
  static resultFor(req: CniRequest, mtu = 1400): CniResult {
    const h = createHash('sha256').update(req.containerId).digest();
    const v4 = `10.16.${h[0]! % 250 + 1}.${h[1]! % 250 + 2}`;
    const v6 = `fd00:10:16::${h.readUInt16BE(2).toString(16)}:${h.readUInt16BE(4).toString(16)}`;
    const mac = `00:00:00:${[h[6], h[7], h[8]].map((b) => b!.toString(16).padStart(2, '0')).join(':')}`;
    const ipam = req.netconf.ipamMode;
    const ipIndex = ipam ? {} : { interface: 0 };
    const r: CniResult = {
      ips: [
        { address: `${v4}/16`, gateway: '10.16.0.1', ...ipIndex },
        { address: `${v6}/64`, gateway: 'fd00:10:16::1', ...ipIndex },
      ],
    };
    if (!ipam) r.interfaces = [{ name: req.ifName, mac, mtu, sandbox: req.netns }];
    const routes: CniRoute[] = [];
    for (const rt of req.netconf.routes ?? []) {
      const fam = isIP(rt.gw ?? '') === 6 || (rt.dst ?? '').includes(':') ? 6 : 4;
      routes.push({ dst: rt.dst ?? (fam === 6 ? '::/0' : '0.0.0.0/0'), ...(rt.gw ? { gw: rt.gw } : {}) });
    }
    if (routes.length === 0) routes.push({ dst: '0.0.0.0/0', gw: '10.16.0.1' }, { dst: '::/0', gw: 'fd00:10:16::1' });
    r.routes = routes;
    if (req.netconf.dns) r.dns = req.netconf.dns;
    return r;
  }

  async add(req: CniRequest): Promise<CniResult> {
    const key = FakeBackend.key(req.containerId, req.ifName);
    await this.step('add', key, req);
    const result = FakeBackend.resultFor(req, this.opts.mtu);
    this.attachments.set(key, { result, network: req.netconf.name, containerId: req.containerId, ifName: req.ifName });
    this.events.push({ op: 'add', key, phase: 'end' });
    return result;
  }

  async del(req: CniRequest): Promise<void> {
    const key = FakeBackend.key(req.containerId, req.ifName);
    await this.step('del', key, req);
    this.attachments.delete(key);
    this.events.push({ op: 'del', key, phase: 'end' });
  }

  async check(req: CniRequest, prev: CniResult): Promise<void> {
    const key = FakeBackend.key(req.containerId, req.ifName);
    await this.step('check', key, req);
    this.events.push({ op: 'check', key, phase: 'end' });
    const have = this.attachments.get(key);
    if (!have) throw agentError('KOA_UNKNOWN_CONTAINER', req.containerId, `no attachment on ${req.ifName}`);
    const want = new Set((have.result.ips ?? []).map((i) => i.address));
    for (const ip of prev.ips ?? []) {
      if (!want.has(ip.address)) throw agentError('KOA_DATAPATH', `CHECK: address ${ip.address} from prevResult is not configured on ${req.ifName}`);
    }
  }

  async status(_netconf: NetConf): Promise<void> {
    await this.step('status', '', undefined);
    this.events.push({ op: 'status', key: '', phase: 'end' });
  }

  async gc(req: GcRequest): Promise<void> {
    await this.step('gc', '', undefined);
    const keep = new Set(req.validAttachments.map((a) => FakeBackend.key(a.containerID, a.ifname)));
    for (const [k, a] of this.attachments) if (a.network === req.netconf.name && !keep.has(k)) this.attachments.delete(k);
    this.events.push({ op: 'gc', key: '', phase: 'end' });
  }
}
