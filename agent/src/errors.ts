// The one coded error table of the agent (in the style of fastify's createError): every failure the agent
// can report has a stable code, a CNI error code (CNI spec, "Error" section) and a message template.
// Add new entries here rather than throwing ad-hoc errors, so each failure maps to exactly one CNI code.

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

interface Entry { cni: CniCodeValue; msg: string }

/** code -> CNI code and message; `%s` placeholders are filled in order. */
export const ERRORS = {
  // request decoding / validation
  KOA_BAD_JSON: { cni: CniCode.DecodeFailure, msg: 'cannot decode %s: %s' },
  KOA_BAD_VERSION: { cni: CniCode.IncompatibleVersion, msg: 'CNI version %s is not supported (supported: %s)' },
  KOA_BAD_NETCONF: { cni: CniCode.InvalidNetconf, msg: 'invalid network configuration: %s' },
  KOA_UNSUPPORTED_FIELD: { cni: CniCode.UnsupportedField, msg: 'unsupported field in network configuration: %s' },
  KOA_BAD_ENV: { cni: CniCode.InvalidEnvironment, msg: 'invalid or missing environment variable %s: %s' },
  KOA_BAD_ARGS: { cni: CniCode.InvalidEnvironment, msg: 'invalid CNI_ARGS: %s' },
  KOA_TOO_LARGE: { cni: CniCode.IoFailure, msg: 'request of %s bytes exceeds the limit of %s bytes' },
  KOA_UNKNOWN_CONTAINER: { cni: CniCode.UnknownContainer, msg: 'container %s is unknown: %s' },
  KOA_IO: { cni: CniCode.IoFailure, msg: 'I/O failure: %s' },
  // waiting on others
  KOA_TRY_AGAIN: { cni: CniCode.TryAgainLater, msg: '%s' },
  KOA_NOT_READY: { cni: CniCode.PluginNotAvailable, msg: 'agent not ready: %s' },
  KOA_TIMEOUT: { cni: CniCode.Timeout, msg: 'timed out after %s ms waiting for %s' },
  // backends
  KOA_K8S: { cni: CniCode.Kubernetes, msg: 'kubernetes API: %s' },
  KOA_NETLINK: { cni: CniCode.Netlink, msg: 'netlink %s: %s' },
  KOA_OVSDB: { cni: CniCode.Ovsdb, msg: 'OVSDB %s: %s' },
  KOA_DATAPATH: { cni: CniCode.Datapath, msg: '%s' },
  KOA_ALREADY_WIRED: { cni: CniCode.Datapath, msg: 'the pod in %s is already wired (host veth %s has its peer there): a second ADD without DEL changes nothing; DEL first' },
  KOA_INTERNAL: { cni: CniCode.Internal, msg: 'internal error: %s' },
  // k8s/pod (configuration, annotations, plans)
  KOA_CONFIG: { cni: CniCode.Internal, msg: 'invalid configuration: %s' },
  KOA_BAD_ANNOTATION: { cni: CniCode.Kubernetes, msg: 'pod %s: invalid annotation %s: %s' },
  KOA_PROVIDER_UNBOUND: { cni: CniCode.InvalidNetconf, msg: 'provider %s is not bound to any subnet' },
  // CNI (appended by the cni area)
  KOA_POD_ARGS: { cni: CniCode.InvalidNetconf, msg: 'CNI_ARGS must contain %s (kubelet and Multus set them)' },
  KOA_VERSION_FORBIDS: { cni: CniCode.IncompatibleVersion, msg: 'config version %s does not allow %s (needs %s or later)' },
  KOA_UNREACHABLE: { cni: CniCode.TryAgainLater, msg: 'cannot reach the kube-ovn agent at %s: %s' },
} as const satisfies Record<string, Entry>;
export type ErrorCode = keyof typeof ERRORS;

export class AgentError extends Error {
  readonly code: ErrorCode;
  readonly cniCode: CniCodeValue;
  /** Extra detail for the CNI error's `details` field (never secrets). */
  readonly details: string | undefined;
  constructor(code: ErrorCode, message: string, details?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AgentError';
    this.code = code;
    this.cniCode = ERRORS[code].cni;
    this.details = details;
  }
}

function format(template: string, args: readonly unknown[]): string {
  let i = 0;
  return template.replace(/%s/g, () => (i < args.length ? String(args[i++]) : '%s'));
}

/** Creates the error for `code` with the table's message filled with `args`. */
export function agentError(code: ErrorCode, ...args: unknown[]): AgentError {
  return new AgentError(code, format(ERRORS[code].msg, args));
}

/** Same, with a cause kept for logs. */
export function agentErrorCause(code: ErrorCode, cause: unknown, ...args: unknown[]): AgentError {
  return new AgentError(code, format(ERRORS[code].msg, args), undefined, { cause });
}

/** Any thrown value -> AgentError (unknown errors become KOA_INTERNAL with their message). */
export function toAgentError(e: unknown): AgentError {
  if (e instanceof AgentError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return agentErrorCause('KOA_INTERNAL', e, msg);
}
