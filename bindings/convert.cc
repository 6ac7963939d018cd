#include "convert.h"

#include <cmath>
#include <cstring>
#include <new>

namespace bindings {

using latte::code::kArg;
using latte::fail;

latte::Shape to_shape(const Napi::Value& v) {
  if (!v.IsArray()) fail(kArg, "shape must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > uint32_t(latte::kMaxDims)) fail(kArg, "at most " + std::to_string(latte::kMaxDims) + " dimensions");
  latte::Shape s;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value e = a.Get(i);
    if (!e.IsNumber()) fail(kArg, "shape must be an array of integers");
    double d = e.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d != double(int64_t(d)) || d > 9.0e15) fail(kArg, "shape entries must be non-negative integers");
    s.d[s.ndim++] = int64_t(d);
  }
  return s;
}

Napi::Array from_shape(Napi::Env env, const latte::Shape& s) {
  Napi::Array a = Napi::Array::New(env, size_t(s.ndim));
  for (int i = 0; i < s.ndim; i++) a.Set(uint32_t(i), Napi::Number::New(env, double(s.d[i])));
  return a;
}

latte::DType to_dtype(const Napi::Value& v) {
  latte::DType t;
  if (!v.IsString() || !latte::dtype_from_name(v.As<Napi::String>().Utf8Value(), &t))
    fail(latte::code::kDType, "dtype must be 'f32', 'bf16', 'f16', 'i32' or (a packed weight) 'q8'");
  return t;
}

namespace {

double num(const Napi::Object& o, const char* key, double dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return dflt;
  if (!v.IsNumber()) fail(kArg, std::string("attribute '") + key + "' must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (std::isnan(d)) fail(kArg, std::string("attribute '") + key + "' is NaN");
  return d;
}
int integer(const Napi::Object& o, const char* key, int dflt) {
  double d = num(o, key, dflt);
  if (d != double(int64_t(d)) || d < -2147483648.0 || d > 2147483647.0) fail(kArg, std::string("attribute '") + key + "' must be an integer");
  return int(d);
}
bool flag(const Napi::Object& o, const char* key, bool dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return dflt;
  if (!v.IsBoolean()) fail(kArg, std::string("attribute '") + key + "' must be a boolean");
  return v.As<Napi::Boolean>().Value();
}
int choice(const Napi::Object& o, const char* key, std::initializer_list<const char*> names, int dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return dflt;
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  int i = 0;
  for (const char* n : names) {
    if (s == n) return i;
    i++;
  }
  std::string all;
  for (const char* n : names) all += std::string(all.empty() ? "" : ", ") + n;
  fail(kArg, std::string("attribute '") + key + "' must be one of " + all);
}

// A 64-bit unsigned attribute from a non-negative safe integer or a BigInt.
uint64_t to_u64(const Napi::Value& v, const char* key) {
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t u = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) fail(kArg, std::string("attribute '") + key + "' must fit in 64 unsigned bits");
    return u;
  }
  if (!v.IsNumber()) fail(kArg, std::string("attribute '") + key + "' must be an integer or a bigint");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9007199254740991.0 || d != double(uint64_t(d)))
    fail(kArg, std::string("attribute '") + key + "' must be a non-negative safe integer (or a bigint)");
  return uint64_t(d);
}

}  // namespace

// Reads only the keys present (most ops pass none or one): each N-API property read costs.
latte::OpAttrs to_attrs(const Napi::Value& v) {
  latte::OpAttrs a;
  if (v.IsUndefined() || v.IsNull()) return a;
  if (!v.IsObject()) fail(kArg, "op attributes must be an object");
  Napi::Object o = v.As<Napi::Object>();
  Napi::Array keys = o.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); i++) {
    std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
    if (o.Get(k).IsUndefined()) continue;  // an option left unset keeps the op's default
    if (k == "eps") a.eps = float(num(o, "eps", a.eps));
    else if (k == "scale") a.scale = float(num(o, "scale", a.scale));
    else if (k == "theta") a.theta = float(num(o, "theta", a.theta));
    else if (k == "mask") a.mask = choice(o, "mask", {"none", "causal", "prefix_causal"}, 0);
    else if (k == "prefixLen") a.prefix_len = integer(o, "prefixLen", 0);
    else if (k == "imageCol0") a.image_col0 = integer(o, "imageCol0", -1);
    else if (k == "returnLogits") a.return_logits = flag(o, "returnLogits", false);
    else if (k == "precision") a.bf16 = choice(o, "precision", {"f32", "bf16"}, 0) == 1;
    else if (k == "restart") a.restart = flag(o, "restart", false);
    else if (k == "stride") a.stride = integer(o, "stride", 1);
    else if (k == "padding") a.padding = integer(o, "padding", 0);
    else if (k == "groups") a.groups = integer(o, "groups", 1);
    else if (k == "factor") a.factor = integer(o, "factor", 2);
    else if (k == "gelu") a.gelu = choice(o, "gelu", {"quick", "tanh", "erf"}, 0);
    else if (k == "channels") a.channels = flag(o, "channels", false);
    else if (k == "axis") a.axis = integer(o, "axis", 0);
    else if (k == "alpha") a.alpha = float(num(o, "alpha", 1));
    else if (k == "beta") a.beta = float(num(o, "beta", 1));
    else if (k == "headDim") a.head_dim = integer(o, "headDim", 0);
    else if (k == "start") a.start = integer(o, "start", 0);
    else if (k == "length") a.length = integer(o, "length", 0);
    else if (k == "dtype") a.dtype = to_dtype(o.Get("dtype"));
    else if (k == "shape") a.shape = to_shape(o.Get("shape"));
    else if (k == "perm") {
      Napi::Value pv = o.Get("perm");
      if (!pv.IsArray() || pv.As<Napi::Array>().Length() > uint32_t(latte::kMaxDims)) fail(kArg, "attribute 'perm' must be an array of dimension indices");
      Napi::Array arr = pv.As<Napi::Array>();
      a.n_perm = int(arr.Length());
      for (uint32_t j = 0; j < arr.Length(); j++) {
        if (!arr.Get(j).IsNumber()) fail(kArg, "attribute 'perm' must hold integers");
        a.perm[j] = arr.Get(j).As<Napi::Number>().Int32Value();
      }
    }
    else if (k == "seed") a.seed = to_u64(o.Get("seed"), "seed");
    else if (k == "offset") a.offset = to_u64(o.Get("offset"), "offset");
    else if (k == "step") a.offset = to_u64(o.Get("step"), "step");
    else if (k == "temperature") a.temperature = float(num(o, "temperature", 0));
    else if (k == "topK") a.top_k = integer(o, "topK", 0);
    else if (k == "topP") a.top_p = float(num(o, "topP", 1));
    else if (k == "sections") {
      Napi::Value sec = o.Get("sections");
      if (!sec.IsArray() || sec.As<Napi::Array>().Length() > 4) fail(kArg, "attribute 'sections' must be an array of at most 4 integers");
      Napi::Array arr = sec.As<Napi::Array>();
      a.n_sections = int(arr.Length());
      for (uint32_t j = 0; j < arr.Length(); j++) {
        Napi::Value e = arr.Get(j);
        if (!e.IsNumber()) fail(kArg, "attribute 'sections' must hold integers");
        a.sections[j] = e.As<Napi::Number>().Int32Value();
      }
    } else {
      fail(kArg, "unknown op attribute '" + k + "'");
    }
  }
  return a;
}

Napi::Error to_js_error(Napi::Env env, std::exception_ptr e) {
  std::string code = latte::code::kInternal, msg = "unknown error";
  try {
    std::rethrow_exception(e);
  } catch (const latte::EngineError& err) {
    code = err.code;
    msg = err.what();
  } catch (const std::bad_alloc&) {
    code = latte::code::kOom;
    msg = "out of memory";
  } catch (const std::exception& err) {
    msg = err.what();
  } catch (...) {
  }
  Napi::Error js = Napi::Error::New(env, msg);
  js.Set("code", Napi::String::New(env, code));
  return js;
}

void throw_js(Napi::Env env, std::exception_ptr e) { throw to_js_error(env, e); }

double number_arg(const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) fail(kArg, std::string(what) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) fail(kArg, std::string(what) + " must be finite");
  return d;
}

int64_t int_arg(const Napi::Value& v, const char* what, int64_t lo, int64_t hi) {
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  // the range is checked on the double first, so the cast below is defined
  if (!(d >= double(lo) && d <= double(hi)) || d != std::floor(d))
    fail(kArg, std::string(what) + " must be an integer " + (hi == kMaxIntArg ? ">= " + std::to_string(lo) : "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]"));
  return int64_t(d);
}

std::vector<int32_t> i32_arg(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) fail(kArg, std::string(what) + " must be an Int32Array");
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

}  // namespace bindings
