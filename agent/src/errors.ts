// The one coded error table of the agent: every failure the agent can report has a stable code, a CNI error code
// (CNI spec, "Error" section), the HTTP status of the upstream /api/v1 protocol and of a bad forwarded call, whether
// retrying can help, and a typed message function. Add new entries here rather than throwing ad-hoc errors, so each
// failure maps to exactly one CNI code and one status; nothing else derives them from lists of codes.

/** CNI spec well-known error codes; 100+ are ours. */
export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidNetconf: 7,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  LimitedConnectivity: 51,
  // ours (100+)
  Internal: 100,
  Kubernetes: 101,
  Datapath: 102,
  Ovsdb: 103,
  Netlink: 104,
  Timeout: 105,
} as const;
export type CniCodeValue = (typeof CniCode)[keyof typeof CniCode];

/** 400: the request is wrong (fix it, do not retry); 413: too large; 500: the agent failed; 503: not now, retry. */
export type HttpStatus = 400 | 413 | 500 | 503;

interface Entry {
  readonly cni: CniCodeValue;
  readonly http: HttpStatus;
  /** can the same request succeed later without being changed? */
  readonly retryable: boolean;
  readonly msg: (...args: never[]) => string;
}

const s = (x: unknown): string => String(x);

export const ERRORS = {
  // request decoding / validation: the caller's mistake
  KOA_BAD_JSON: { cni: CniCode.DecodeFailure, http: 400, retryable: false, msg: (what: string, why: string) => `cannot decode ${what}: ${why}` },
  KOA_BAD_VERSION: { cni: CniCode.IncompatibleVersion, http: 400, retryable: false, msg: (v: string, supported: string) => `CNI version ${v} is not supported (supported: ${supported})` },
  KOA_BAD_NETCONF: { cni: CniCode.InvalidNetconf, http: 400, retryable: false, msg: (why: string) => `invalid network configuration: ${why}` },
  KOA_UNSUPPORTED_FIELD: { cni: CniCode.UnsupportedField, http: 400, retryable: false, msg: (what: string) => `unsupported field in network configuration: ${what}` },
  KOA_BAD_ENV: { cni: CniCode.InvalidEnvironment, http: 400, retryable: false, msg: (name: string, why: string) => `invalid or missing environment variable ${name}: ${why}` },
  KOA_BAD_ARGS: { cni: CniCode.InvalidEnvironment, http: 400, retryable: false, msg: (why: string) => `invalid CNI_ARGS: ${why}` },
  KOA_TOO_LARGE: { cni: CniCode.IoFailure, http: 413, retryable: false, msg: (size: number, limit: number) => `request of ${size} bytes exceeds the limit of ${limit} bytes` },
  KOA_UNKNOWN_CONTAINER: { cni: CniCode.UnknownContainer, http: 400, retryable: false, msg: (id: string, why: string) => `container ${id} is unknown: ${why}` },
  KOA_INVALID_VALUE: { cni: CniCode.InvalidNetconf, http: 400, retryable: false, msg: (why: string) => `invalid value: ${why}` },
  KOA_POD_ARGS: { cni: CniCode.InvalidNetconf, http: 400, retryable: false, msg: (missing: string) => `CNI_ARGS must contain ${missing} (kubelet and Multus set them)` },
  KOA_VERSION_FORBIDS: { cni: CniCode.IncompatibleVersion, http: 400, retryable: false, msg: (v: string, command: string, min: string) => `config version ${v} does not allow ${command} (needs ${min} or later)` },
  KOA_PROVIDER_UNBOUND: { cni: CniCode.InvalidNetconf, http: 400, retryable: false, msg: (provider: string) => `provider ${provider} is not bound to any subnet` },
  KOA_IO: { cni: CniCode.IoFailure, http: 500, retryable: false, msg: (why: string) => `I/O failure: ${why}` },
  // waiting on others: try again later
  KOA_TRY_AGAIN: { cni: CniCode.TryAgainLater, http: 503, retryable: true, msg: (why: string) => why },
  KOA_NOT_READY: { cni: CniCode.PluginNotAvailable, http: 503, retryable: true, msg: (why: string) => `agent not ready: ${why}` },
  KOA_TIMEOUT: { cni: CniCode.Timeout, http: 500, retryable: true, msg: (ms: number, what: string) => `timed out after ${ms} ms waiting for ${what}` },
  KOA_UNREACHABLE: { cni: CniCode.TryAgainLater, http: 503, retryable: true, msg: (socket: string, why: string) => `cannot reach the kube-ovn agent at ${socket}: ${why}` },
  // backends
  KOA_K8S: { cni: CniCode.Kubernetes, http: 500, retryable: true, msg: (why: string) => `kubernetes API: ${why}` },
  KOA_BAD_ANNOTATION: { cni: CniCode.Kubernetes, http: 500, retryable: true, msg: (pod: string, key: string, why: string) => `pod ${pod}: invalid annotation ${key}: ${why}` },
  KOA_NETLINK: { cni: CniCode.Netlink, http: 500, retryable: true, msg: (op: string, why: string) => `netlink ${op}: ${why}` },
  KOA_OVSDB: { cni: CniCode.Ovsdb, http: 500, retryable: true, msg: (op: string, why: string) => `OVSDB ${op}: ${why}` },
  KOA_DATAPATH: { cni: CniCode.Datapath, http: 500, retryable: true, msg: (why: string) => why },
  KOA_ALREADY_WIRED: { cni: CniCode.Datapath, http: 500, retryable: false,
    msg: (netns: string, veth: string) => `the pod in ${netns} is already wired (host veth ${veth} has its peer there): a second ADD without DEL changes nothing; DEL first` },
  KOA_HOST_NIC_TAKEN: { cni: CniCode.Datapath, http: 500, retryable: false,
    msg: (veth: string, why: string) => `host veth ${veth} is another pod's NIC and was not touched: ${why} (host names are the first 12 characters of the container ID, as upstream's; a new sandbox gets a new ID)` },
  KOA_INTERNAL: { cni: CniCode.Internal, http: 500, retryable: false, msg: (why: string) => `internal error: ${why}` },
  KOA_CONFIG: { cni: CniCode.Internal, http: 500, retryable: false, msg: (why: string) => `invalid configuration: ${why}` },
} as const satisfies Record<string, Entry>;
export type ErrorCode = keyof typeof ERRORS;
type MsgArgs<C extends ErrorCode> = Parameters<(typeof ERRORS)[C]['msg']>;

export class AgentError extends Error {
  readonly code: ErrorCode;
  readonly cniCode: CniCodeValue;
  readonly httpStatus: HttpStatus;
  readonly retryable: boolean;
  /** Extra detail for the CNI error's `details` field (never secrets). */
  readonly details: string | undefined;
  constructor(code: ErrorCode, message: string, details?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AgentError';
    this.code = code;
    this.cniCode = ERRORS[code].cni;
    this.httpStatus = ERRORS[code].http;
    this.retryable = ERRORS[code].retryable;
    this.details = details;
  }
}

/** The table's message for `code` with its typed arguments. */
export function errorMessage<C extends ErrorCode>(code: C, ...args: MsgArgs<C>): string {
  return (ERRORS[code].msg as (...a: MsgArgs<C>) => string)(...args);
}

/** Creates the error for `code` with the table's message. */
export function agentError<C extends ErrorCode>(code: C, ...args: MsgArgs<C>): AgentError {
  return new AgentError(code, errorMessage(code, ...args));
}

/** Same, with a cause kept for logs. */
export function agentErrorCause<C extends ErrorCode>(code: C, cause: unknown, ...args: MsgArgs<C>): AgentError {
  return new AgentError(code, errorMessage(code, ...args), undefined, { cause });
}

/**
 * Any thrown value -> AgentError. A RangeError is what our validators throw for a value out of range (a QoS rate, a
 * name too long): the request's fault, KOA_INVALID_VALUE (code 7, HTTP 400), not an internal error. Anything else
 * unknown (a TypeError is a bug of ours) becomes KOA_INTERNAL with its message.
 */
export function toAgentError(e: unknown): AgentError {
  if (e instanceof AgentError) return e;
  if (e instanceof RangeError) return agentErrorCause('KOA_INVALID_VALUE', e, e.message);
  const msg = e instanceof Error ? e.message : s(e);
  return agentErrorCause('KOA_INTERNAL', e, msg);
}
