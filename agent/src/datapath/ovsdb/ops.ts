// Transaction operations (RFC 7047 §5.2) as typed builders, and decoding of a `transact` result: per-operation
// results, and the error (with the failing operation's index) when the transaction was aborted.
import { AgentError } from '../../errors.ts';
import type { Atom, Row, Value } from './values.ts';

export type ConditionFn = '==' | '!=' | '<' | '<=' | '>' | '>=' | 'includes' | 'excludes';
export type Condition = [column: string, fn: ConditionFn, value: Value];
export type Mutator = '+=' | '-=' | '*=' | '/=' | '%=' | 'insert' | 'delete';
export type Mutation = [column: string, mutator: Mutator, value: Value];

export interface InsertOp { op: 'insert'; table: string; row: Row; 'uuid-name'?: string; uuid?: string }
export interface SelectOp { op: 'select'; table: string; where: Condition[]; columns?: string[] }
export interface UpdateOp { op: 'update'; table: string; where: Condition[]; row: Row }
export interface MutateOp { op: 'mutate'; table: string; where: Condition[]; mutations: Mutation[] }
export interface DeleteOp { op: 'delete'; table: string; where: Condition[] }
export interface WaitOp {
  op: 'wait'; table: string; where: Condition[]; columns: string[]; until: '==' | '!='; rows: Row[]; timeout?: number;
}
export interface CommitOp { op: 'commit'; durable: boolean }
export interface AbortOp { op: 'abort' }
export interface CommentOp { op: 'comment'; comment: string }
export interface AssertOp { op: 'assert'; lock: string }
export type Operation = InsertOp | SelectOp | UpdateOp | MutateOp | DeleteOp | WaitOp | CommitOp | AbortOp | CommentOp | AssertOp;

export const cond = (column: string, fn: ConditionFn, value: Value): Condition => [column, fn, value];
export const eq = (column: string, value: Value): Condition => [column, '==', value];
export const byUuid = (u: string): Condition[] => [['_uuid', '==', ['uuid', u]]];

export function insert(table: string, row: Row, uuidName?: string): InsertOp {
  return uuidName === undefined ? { op: 'insert', table, row } : { op: 'insert', table, row, 'uuid-name': uuidName };
}
export function select(table: string, where: Condition[], columns?: string[]): SelectOp {
  return columns === undefined ? { op: 'select', table, where } : { op: 'select', table, where, columns };
}
export const update = (table: string, where: Condition[], row: Row): UpdateOp => ({ op: 'update', table, where, row });
export const mutate = (table: string, where: Condition[], mutations: Mutation[]): MutateOp =>
  ({ op: 'mutate', table, where, mutations });
export const del = (table: string, where: Condition[]): DeleteOp => ({ op: 'delete', table, where });
export function wait(table: string, where: Condition[], columns: string[], until: '==' | '!=', rows: Row[], timeout?: number): WaitOp {
  const op: WaitOp = { op: 'wait', table, where, columns, until, rows };
  if (timeout !== undefined) op.timeout = timeout;
  return op;
}
export const commit = (durable: boolean): CommitOp => ({ op: 'commit', durable });
export const abort = (): AbortOp => ({ op: 'abort' });
export const comment = (text: string): CommentOp => ({ op: 'comment', comment: text });
export const assertLock = (lock: string): AssertOp => ({ op: 'assert', lock });

/** One operation's result. */
export interface OpResult { uuid?: Atom; rows?: Row[]; count?: number; error?: string; details?: string }

/** A transaction the server answered with an error: `index` is the failing operation (or -1 for a commit-time error). */
export class TransactError extends AgentError {
  readonly error: string;
  readonly index: number;
  readonly op: string | undefined;
  constructor(error: string, details: string | undefined, index: number, op: string | undefined) {
    super('KOA_OVSDB', `OVSDB transaction failed${op ? ` at operation ${index} (${op})` : ''}: ${error}${details ? `: ${details}` : ''}`, details);
    this.name = 'TransactError';
    this.error = error;
    this.index = index;
    this.op = op;
  }
}

/**
 * Checks a `transact` result against its operations. RFC 7047 §4.1.3: the result array has one element per
 * operation; an error in operation i makes element i an error object and later elements null; a commit-time
 * error (e.g. a constraint violation) appears as an extra element after the last operation.
 */
export function decodeTransactResult(ops: readonly Operation[], result: unknown): OpResult[] {
  if (!Array.isArray(result)) throw new TransactError('malformed reply', 'transact result is not an array', -1, undefined);
  for (let i = 0; i < result.length; i++) {
    const r = result[i] as OpResult | null;
    if (r && typeof r === 'object' && typeof r.error === 'string') {
      const op = i < ops.length ? ops[i]!.op : undefined;
      throw new TransactError(r.error, typeof r.details === 'string' ? r.details : undefined, i < ops.length ? i : -1, op);
    }
  }
  if (result.length < ops.length) {
    throw new TransactError('malformed reply', `expected ${ops.length} results, got ${result.length}`, -1, undefined);
  }
  return result.slice(0, ops.length).map((r) => (r ?? {}) as OpResult);
}
