// The seam between the CNI protocol (this directory) and the pod wiring (a later issue: agent/src/pod/). The
// dispatcher validates, serializes per container and converts versions; a backend only does the work.
import { agentError } from '../errors.ts';
import type { CniRequest, CniResult, GcRequest, NetConf } from './types.ts';

export interface CniBackend {
  /** Wires the attachment and returns what was created, in the internal (1.1.0) result form. */
  add(req: CniRequest): Promise<CniResult>;
  /** Tears the attachment down. Must be idempotent: unknown container, missing netns or pod are success. */
  del(req: CniRequest): Promise<void>;
  /** Verifies the attachment still matches `prevResult`; throws a coded error when it does not. */
  check(req: CniRequest, prevResult: CniResult): Promise<void>;
  /** CNI 1.1 STATUS: resolves when ADD can succeed, throws (code 50/51) when it cannot. */
  status(netconf: NetConf): Promise<void>;
  /** CNI 1.1 GC: releases every attachment of this network not listed in `validAttachments`. */
  gc(req: GcRequest): Promise<void>;
}

/** Named constructors; main.ts picks one by `--backend`. Later issues add the real pod-wiring backend here. */
export type BackendFactory = () => CniBackend;

const NOT_IMPLEMENTED = 'pod wiring not implemented yet';

/**
 * The default until pod wiring exists: it refuses ADD/CHECK/STATUS honestly (code 50, plugin not available)
 * instead of pretending. DEL and GC succeed because nothing was ever created that could leak.
 */
export class NotReadyBackend implements CniBackend {
  async add(): Promise<CniResult> { throw agentError('KOA_NOT_READY', NOT_IMPLEMENTED); }
  async del(): Promise<void> { /* nothing was created by this backend */ }
  async check(): Promise<void> { throw agentError('KOA_NOT_READY', NOT_IMPLEMENTED); }
  async status(): Promise<void> { throw agentError('KOA_NOT_READY', NOT_IMPLEMENTED); }
  async gc(): Promise<void> { /* nothing to collect */ }
}
