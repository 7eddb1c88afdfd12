// Per-op kernel timing on the stream (off by default: FASTDIFF_PROFILE=1 or
// fd.setProfiling(true)). Totals are keyed by op name; reading them does not sync.
// Beside it, always on: a counter of the FLOPs of the GEMM-class ops issued (conv2d, linear,
// matmul, attention; 2 per multiply-add), which is >95% of a UNet's or DiT's work.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace fd {

struct OpTiming {
  std::string op;
  int64_t calls = 0;
  double seconds = 0;
};

bool profiling_enabled();
void set_profiling(bool on);
void profile_record(const char* op, double seconds);
// The name an op records under: `op`, or while profiling is on "op detail" (e.g. the GEMM's shape, so a
// network's linears show per layer), kept for the life of the process.
const char* profile_name(const char* op, const std::string& detail);
// The totals so far, largest first; `reset` clears them.
std::vector<OpTiming> profile_snapshot(bool reset);

void count_flops(double flops);
double flops_issued();  // since the process started

}  // namespace fd
