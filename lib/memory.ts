// Tensor lifetime: explicit dispose(), scope() for everything created in a block,
// and a FinalizationRegistry as the backstop for handles nobody disposed.
import { FastdiffError } from "./errors";
import { native, type MemoryInfo, type NativeTensor } from "./native";

interface Disposable {
  dispose(): void;
  readonly handle: NativeTensor;
}

const scopes: Set<Disposable>[] = [];

const registry = new FinalizationRegistry<NativeTensor>((handle) => handle.dispose());

/** Called by every new Tensor: joins the innermost scope and the GC backstop. */
export function track(t: Disposable): void {
  registry.register(t, t.handle, t);
  scopes[scopes.length - 1]?.add(t);
}

/** Removes a tensor from every scope (its owner disposes it); the GC backstop stays. */
export function leaveScopes(t: Disposable): void {
  for (const s of scopes) s.delete(t);
}

/** Called by Tensor.dispose(). */
export function untrack(t: Disposable): void {
  registry.unregister(t);
  for (const s of scopes) s.delete(t);
}

function collect(value: unknown, out: Set<unknown>, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== "object" || seen.has(value)) return;
  seen.add(value);
  if ("handle" in value && "dispose" in value) {
    out.add(value);
    return;
  }
  const items = Array.isArray(value) ? value : value instanceof Map ? [...value.values()] : Object.values(value);
  for (const v of items) collect(v, out, seen);
}

/**
 * Runs `fn` and disposes every tensor created inside it, except those reachable
 * from its return value (tensors, arrays, maps and plain objects are searched),
 * which move to the enclosing scope. `fn` must be synchronous.
 */
export function scope<R>(fn: () => R): R {
  const mine = new Set<Disposable>();
  scopes.push(mine);
  let result: R;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of mine) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) {
    for (const t of mine) t.dispose();
    throw new FastdiffError("ERR_ARGUMENT", "scope: the function returned a Promise; scope() needs a synchronous function");
  }
  const keep = new Set<unknown>();
  collect(result, keep);
  const parent = scopes[scopes.length - 1];
  for (const t of mine) {
    if (keep.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/** Marks tensors to survive the enclosing scope (they move to the scope around it). */
export function keep<T extends Disposable | Disposable[]>(value: T): T {
  const list = Array.isArray(value) ? value : [value];
  for (const t of list) {
    const inner = scopes[scopes.length - 1];
    if (inner?.has(t)) {
      inner.delete(t);
      scopes[scopes.length - 2]?.add(t);
    }
  }
  return value;
}

/** Live tensor handles in this thread and bytes held by tensor storage (see MemoryInfo). */
export function memory(): MemoryInfo {
  return native.memory();
}

/** Returns cached (freed) blocks to the operating system. */
export function emptyCache(): void {
  native.emptyCache();
}

/** Waits until every queued kernel has run; rethrows a deferred kernel error. */
export function synchronize(): void {
  native.synchronize();
}
