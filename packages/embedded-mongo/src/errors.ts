/**
 * Server errors with MongoDB's numeric codes and code names, so the driver raises exactly the
 * `MongoServerError` a real server would cause (same `code`, `codeName`, extra fields).
 */

export const ERROR_CODES = {
  InternalError: 1,
  BadValue: 2,
  FailedToParse: 9,
  TypeMismatch: 14,
  IllegalOperation: 20,
  NamespaceNotFound: 26,
  IndexNotFound: 27,
  PathNotViable: 28,
  ConflictingUpdateOperators: 40,
  CursorNotFound: 43,
  NamespaceExists: 48,
  DollarPrefixedFieldName: 52,
  InvalidIdField: 53,
  NotSingleValueField: 54,
  CommandNotFound: 59,
  ImmutableField: 66,
  CannotCreateIndex: 67,
  InvalidOptions: 72,
  InvalidNamespace: 73,
  IndexOptionsConflict: 85,
  IndexKeySpecsConflict: 86,
  CannotIndexParallelArrays: 171,
  InvalidPipelineOperator: 168,
  Location16410: 16410,
  DuplicateKey: 11000,
  Location40324: 40324,
  Location31253: 31253,
  Location31254: 31254,
  NoQueryExecutionPlans: 291,
  OperationNotSupportedInTransaction: 263,
  NotImplemented: 238,
  Location40415: 40415,
} as const;

export type ErrorName = keyof typeof ERROR_CODES;

export class CommandError extends Error {
  readonly code: number;
  readonly codeName: string;
  readonly extra: Record<string, unknown>;

  constructor(name: ErrorName, message: string, extra: Record<string, unknown> = {}) {
    super(message);
    this.code = ERROR_CODES[name];
    this.codeName = name.startsWith("Location") ? name : name;
    this.extra = extra;
  }

  /** The body a real server replies with (`ok: 0`). */
  toReply(): Record<string, unknown> {
    return { ok: 0, errmsg: this.message, code: this.code, codeName: this.codeName, ...this.extra };
  }

  /** The entry of a `writeErrors` array. */
  toWriteError(index: number): Record<string, unknown> {
    return { index, code: this.code, errmsg: this.message, ...this.extra };
  }
}

export const fail = (name: ErrorName, message: string, extra?: Record<string, unknown>): never => {
  throw new CommandError(name, message, extra);
};

/** Wraps anything a library threw (mingo's errors) as a server error with a code. */
export function toCommandError(err: unknown): CommandError {
  if (err instanceof CommandError) return err;
  const message = err instanceof Error ? err.message : String(err);
  // mingo reports bad queries and expressions as MingoError; anything else is our own fault.
  const name = err instanceof Error && err.constructor.name === "MingoError" ? "BadValue" : "InternalError";
  return new CommandError(name, message);
}
