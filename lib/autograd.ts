import { native } from "./native";

/**
 * Runs `fn` with gradient recording off (ops record no graph). An async `fn`
 * keeps recording off until its promise settles, so do not interleave it with
 * code that needs gradients.
 */
export function noGrad<R>(fn: () => R): R {
  const previous = native.setGradEnabled(false);
  let result: R;
  try {
    result = fn();
  } catch (e) {
    native.setGradEnabled(previous);
    throw e;
  }
  if (result instanceof Promise) {
    return result.finally(() => native.setGradEnabled(previous)) as R;
  }
  native.setGradEnabled(previous);
  return result;
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}
