/** Error codes thrown by fastdiff (the native engine and the TypeScript layer alike). */
export type ErrorCode =
  | "ERR_SHAPE"
  | "ERR_DTYPE"
  | "ERR_DEVICE"
  | "ERR_DISPOSED"
  | "ERR_ARGUMENT"
  | "ERR_FORMAT"
  | "ERR_ABORTED"
  | "ERR_CUDA"
  | "ERR_MEMORY"
  | "ERR_OOM"
  | "ERR_NUMERIC"
  | "ERR_NO_GRAPH"
  | "ERR_NO_BINARY"
  | "ERR_INTERNAL";

/** Every misuse or failure surfaces as a FastdiffError whose message names the op and the shapes. */
export class FastdiffError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode | string, message: string) {
    super(message);
    this.name = "FastdiffError";
    this.code = code as ErrorCode;
  }
}

export function argumentError(op: string, message: string): FastdiffError {
  return new FastdiffError("ERR_ARGUMENT", `${op}: ${message}`);
}
