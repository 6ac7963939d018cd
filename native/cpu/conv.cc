// 2-D convolution (incl. 1x1 and depthwise) on oneDNN with plain NCHW / OIHW layouts; primitives
// are cached by shape because a decoder calls the same few convolutions at every image.
#include <dnnl.hpp>

#include <map>
#include <tuple>

#include "cpu/cpu_kernels.h"
#include "cpu/onednn.h"

namespace latte::cpu {
namespace {

using namespace onednn;

using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int, int, bool>;

memory::desc weight_desc(const Conv2dArgs& a) {
  const Shape& w = a.w->shape;
  if (a.groups == 1) return memory::desc({w[0], w[1], w[2], w[3]}, dt::f32, tag::oihw);
  return memory::desc({a.groups, w[0] / a.groups, w[1], w[2], w[3]}, dt::f32, tag::goihw);
}

}  // namespace

void conv2d(Context& ctx, const Conv2dArgs& a) {
  thread_local std::map<Key, dnnl::convolution_forward> cache;
  dnnl::stream& strm = onednn::strm();
  const Shape &x = a.x->shape, &w = a.w->shape, &y = a.out->shape;
  memory::desc src({x[0], x[1], x[2], x[3]}, dt::f32, tag::nchw);
  memory::desc dst({y[0], y[1], y[2], y[3]}, dt::f32, tag::nchw);
  memory::desc wd = weight_desc(a);
  memory::desc bd({w[0]}, dt::f32, tag::a);
  Key key{x[0], x[1], x[2], x[3], w[0], w[2], w[3], a.stride, a.padding, a.groups, a.b != nullptr};
  auto it = cache.find(key);
  if (it == cache.end()) {
    memory::dims strides{a.stride, a.stride}, pad{a.padding, a.padding};
    auto d = a.b ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src, wd, bd, dst, strides, pad, pad)
                 : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src, wd, dst, strides, pad, pad);
    it = cache.emplace(key, dnnl::convolution_forward(dnnl::convolution_forward::primitive_desc(d, eng()))).first;
  }
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(src, eng(), a.x->buf->data)},
                                       {DNNL_ARG_WEIGHTS, memory(wd, eng(), a.w->buf->data)},
                                       {DNNL_ARG_DST, memory(dst, eng(), a.out->buf->data)}};
  if (a.b) args.emplace(DNNL_ARG_BIAS, memory(bd, eng(), a.b->buf->data));
  it->second.execute(strm, args);
  strm.wait();
}

}  // namespace latte::cpu
