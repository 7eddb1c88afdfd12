// The onnxruntime-node session settings every bench compares against: the CPU provider, all graph optimizations,
// `threads` intra-op threads and sequential execution (as PyTorch and fastdiff run one op at a time).
export function ortSessionOptions(threads) {
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    executionProviders: ["cpu"],
  };
}
