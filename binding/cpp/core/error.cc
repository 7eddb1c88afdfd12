#include "error.h"

namespace fd {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::Shape: return "ERR_SHAPE";
    case ErrorCode::Dtype: return "ERR_DTYPE";
    case ErrorCode::Device: return "ERR_DEVICE";
    case ErrorCode::Disposed: return "ERR_DISPOSED";
    case ErrorCode::Argument: return "ERR_ARGUMENT";
    case ErrorCode::Format: return "ERR_FORMAT";
    case ErrorCode::Aborted: return "ERR_ABORTED";
    case ErrorCode::Cuda: return "ERR_CUDA";
    case ErrorCode::Memory: return "ERR_MEMORY";
    case ErrorCode::OutOfMemory: return "ERR_OOM";
    case ErrorCode::Numeric: return "ERR_NUMERIC";
    case ErrorCode::NoGraph: return "ERR_NO_GRAPH";
    case ErrorCode::Internal: return "ERR_INTERNAL";
  }
  return "ERR_INTERNAL";
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace fd
