// Per-op kernel timing on the stream (off by default: FASTDIFF_PROFILE=1 or
// fd.setProfiling(true)). Totals are keyed by op name; reading them does not sync.
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
// The totals so far, largest first; `reset` clears them.
std::vector<OpTiming> profile_snapshot(bool reset);

}  // namespace fd
