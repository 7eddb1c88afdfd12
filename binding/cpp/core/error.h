// fd::Error — the one exception type the engine throws. The N-API glue turns it
// into a JS FastdiffError carrying `code`; nothing else may cross into JS.
#pragma once
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fd {

enum class ErrorCode { Shape, Dtype, Device, Disposed, Argument, Format, Aborted, Cuda, Memory, OutOfMemory, Numeric, Internal, NoGraph };

const char* error_code_name(ErrorCode code);  // "ERR_SHAPE", ...

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

std::string shape_str(const std::vector<int64_t>& shape);  // "[2, 3, 4]"

// fd::fail(ErrorCode::Shape, "matmul: ", shape_str(a), " vs ", shape_str(b));
template <typename... Parts>
[[noreturn]] void fail(ErrorCode code, const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw Error(code, os.str());
}

#define FD_CHECK(cond, code, ...) \
  do {                            \
    if (!(cond)) ::fd::fail(code, __VA_ARGS__); \
  } while (0)

}  // namespace fd
