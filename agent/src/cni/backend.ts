// The seam between the CNI protocol (this directory) and the pod wiring (a later issue: agent/src/pod/). The
// dispatcher validates, serializes per container and converts versions; a backend only does the work.
import type { CniRequest, CniResult, GcRequest, NetConf } from './types.ts';

export interface CniBackend {
  /**
   * Wires the attachment and returns what was created, in the internal (1.1.0) result form. `signal` aborts it
   * (agent shutdown after the drain period): the backend rolls back and rejects with a "try again" (code 11) error.
   */
  add(req: CniRequest, signal?: AbortSignal): Promise<CniResult>;
  /** Tears the attachment down. Must be idempotent: unknown container, missing netns or pod are success. */
  del(req: CniRequest): Promise<void>;
  /** Verifies the attachment still matches `prevResult`; throws a coded error when it does not. */
  check(req: CniRequest, prevResult: CniResult): Promise<void>;
  /** CNI 1.1 STATUS: resolves when ADD can succeed, throws (code 50/51) when it cannot. */
  status(netconf: NetConf): Promise<void>;
  /** CNI 1.1 GC: releases every attachment of this network not listed in `validAttachments`. */
  gc(req: GcRequest): Promise<void>;
}

/** Named constructors; main.ts picks one by `--backend` (the OVN backend in agent/src/pod/backend.ts, or the fake). */
export type BackendFactory = () => CniBackend;
