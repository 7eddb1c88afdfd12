#include "profile.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

namespace fd {
namespace {

std::atomic<bool> enabled{std::getenv("FASTDIFF_PROFILE") != nullptr && std::getenv("FASTDIFF_PROFILE")[0] == '1'};
std::mutex table_mutex;
std::unordered_map<std::string, OpTiming>& table() {
  static auto* t = new std::unordered_map<std::string, OpTiming>();  // never destroyed: streams may outlive statics
  return *t;
}

std::atomic<double> flop_counter{0.0};

}  // namespace

void count_flops(double flops) {
  double seen = flop_counter.load(std::memory_order_relaxed);
  while (!flop_counter.compare_exchange_weak(seen, seen + flops, std::memory_order_relaxed)) {
  }
}
double flops_issued() { return flop_counter.load(std::memory_order_relaxed); }

bool profiling_enabled() { return enabled.load(std::memory_order_relaxed); }
void set_profiling(bool on) { enabled.store(on); }

void profile_record(const char* op, double seconds) {
  std::lock_guard<std::mutex> lock(table_mutex);
  OpTiming& t = table()[op];
  t.op = op;
  t.calls += 1;
  t.seconds += seconds;
}

const char* profile_name(const char* op, const std::string& detail) {
  if (!profiling_enabled()) return op;
  static auto* names = new std::unordered_set<std::string>();  // never destroyed, like the table
  std::lock_guard<std::mutex> lock(table_mutex);
  return names->insert(std::string(op) + " " + detail).first->c_str();
}

std::vector<OpTiming> profile_snapshot(bool reset) {
  std::lock_guard<std::mutex> lock(table_mutex);
  std::vector<OpTiming> out;
  for (const auto& [name, t] : table()) out.push_back(t);
  if (reset) table().clear();
  std::sort(out.begin(), out.end(), [](const OpTiming& a, const OpTiming& b) { return a.seconds > b.seconds; });
  return out;
}

}  // namespace fd
