// Ctrl-C / SIGTERM for long commands: the work stops between iterations, writes its checkpoint and the command
// exits 130 (continue with --resume).
export const ABORTED = Symbol("aborted");

/** Runs `work` with a signal that SIGINT / SIGTERM abort; resolves to ABORTED when the work rejected with
 * ERR_ABORTED (other errors propagate). */
export async function abortable<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T | typeof ABORTED> {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    return await work(stop.signal);
  } catch (err) {
    if ((err as { code?: string }).code === "ERR_ABORTED") return ABORTED;
    throw err;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
