// The oneDNN engine and the calling thread's oneDNN stream, shared by the kernels that use oneDNN.
// One stream per thread: oneDNN streams are not thread-safe, and each engine stream is one thread.
#pragma once
#include <dnnl.hpp>

namespace latte::cpu::onednn {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

inline dnnl::engine& eng() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
inline dnnl::stream& strm() {
  thread_local dnnl::stream s(eng());
  return s;
}

}  // namespace latte::cpu::onednn
