#ifndef SEPCONV_TESTS_ENGINE_LOADER_ONNX_TEST_GRAPH_H_
#define SEPCONV_TESTS_ENGINE_LOADER_ONNX_TEST_GRAPH_H_

// Builds small ONNX graphs in memory for importer tests, and evaluates them
// with a naive interpreter (plain loops, double accumulation) that is
// independent of the importer and the engine: grouped Conv,
// BatchNormalization, Relu, Clip, Identity. Test-only.

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "engine/model_spec.h"
#include "onnx/onnx_pb.h"

namespace sepconv {
namespace testing_onnx {

// Conv attributes, set fluently: ConvAttrs().Kernel(5).Group(8).Stride(2).
struct ConvAttrs {
  int64_t kernel = 3;
  int64_t group = 1;
  int64_t stride = 1;
  int64_t pad = -1;  // -1: kernel / 2 * dilation
  int64_t dilation = 1;
  bool bias = true;
  std::vector<int64_t> pads;  // overrides pad when set (4 values)

  ConvAttrs& Kernel(int64_t v) { return kernel = v, *this; }
  ConvAttrs& Group(int64_t v) { return group = v, *this; }
  ConvAttrs& Stride(int64_t v) { return stride = v, *this; }
  ConvAttrs& Dilation(int64_t v) { return dilation = v, *this; }
  ConvAttrs& Bias(bool v) { return bias = v, *this; }
  ConvAttrs& Pads(std::vector<int64_t> v) { return pads = std::move(v), *this; }
};

class TestGraph {
 public:
  // Graph input "input" of shape [n, channels, h, w] (-1 = symbolic).
  explicit TestGraph(int64_t channels, int64_t opset = 13, uint32_t seed = 1)
      : rng_(seed), channels_(channels) {
    model_.set_ir_version(7);
    model_.set_producer_name("test");
    auto* op = model_.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    auto* in = model_.mutable_graph()->add_input();
    in->set_name("input");
    SetNchw(in, channels);
    current_ = "input";
  }

  // A constant float initializer; random in [lo, hi) when `values` is empty.
  std::string Init(const std::string& name, std::vector<int64_t> dims, std::vector<float> values,
                   float lo = -1.0f, float hi = 1.0f) {
    int64_t count = 1;
    for (int64_t d : dims) count *= d;
    if (values.empty()) {
      std::uniform_real_distribution<float> dist(lo, hi);
      for (int64_t i = 0; i < count; ++i) values.push_back(dist(rng_));
    }
    onnx::TensorProto* t = model_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto_DataType_FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    // Alternate the two encodings importers must read.
    if (model_.graph().initializer_size() % 2 == 0) {
      t->set_raw_data(values.data(), values.size() * sizeof(float));
    } else {
      for (float v : values) t->add_float_data(v);
    }
    constants_[name] = values;
    return name;
  }

  onnx::NodeProto* Node(const std::string& op, std::vector<std::string> inputs) {
    onnx::NodeProto* node = model_.mutable_graph()->add_node();
    node->set_op_type(op);
    node->set_name(absl::StrCat(op, "_", ++counter_));
    for (const std::string& in : inputs) node->add_input(in);
    current_ = absl::StrCat(node->name(), "_out");
    node->add_output(current_);
    return node;
  }

  onnx::NodeProto* Conv(int64_t out_channels, ConvAttrs a) {
    const int64_t in_per_group = channels_ / a.group;
    const std::string w =
        Init(absl::StrCat("w", counter_ + 1), {out_channels, in_per_group, a.kernel, a.kernel}, {});
    std::vector<std::string> inputs = {current_, w};
    if (a.bias) inputs.push_back(Init(absl::StrCat("b", counter_ + 1), {out_channels}, {}));
    onnx::NodeProto* node = Node("Conv", inputs);
    const int64_t pad = a.pad >= 0 ? a.pad : a.kernel / 2 * a.dilation;
    Ints(node, "kernel_shape", {a.kernel, a.kernel});
    Ints(node, "strides", {a.stride, a.stride});
    Ints(node, "dilations", {a.dilation, a.dilation});
    Ints(node, "pads", a.pads.empty() ? std::vector<int64_t>{pad, pad, pad, pad} : a.pads);
    Int(node, "group", a.group);
    channels_ = out_channels;
    return node;
  }

  onnx::NodeProto* BatchNorm(float epsilon = 1e-5f) {
    const int64_t c = channels_;
    const int id = counter_ + 1;
    std::vector<std::string> inputs = {current_,
                                       Init(absl::StrCat("gamma", id), {c}, {}, 0.5f, 1.5f),
                                       Init(absl::StrCat("beta", id), {c}, {}, -0.3f, 0.3f),
                                       Init(absl::StrCat("mean", id), {c}, {}, -0.3f, 0.3f),
                                       Init(absl::StrCat("var", id), {c}, {}, 0.5f, 2.0f)};
    onnx::NodeProto* node = Node("BatchNormalization", inputs);
    auto* attr = node->add_attribute();
    attr->set_name("epsilon");
    attr->set_type(onnx::AttributeProto::FLOAT);
    attr->set_f(epsilon);
    return node;
  }

  onnx::NodeProto* ClipAttrs(float lo, float hi) {
    onnx::NodeProto* node = Node("Clip", {current_});
    for (auto [name, v] : {std::pair<const char*, float>{"min", lo}, {"max", hi}}) {
      auto* attr = node->add_attribute();
      attr->set_name(name);
      attr->set_type(onnx::AttributeProto::FLOAT);
      attr->set_f(v);
    }
    return node;
  }

  // Clip with min/max inputs: initializers, or Constant nodes.
  onnx::NodeProto* ClipInputs(float lo, float hi, bool constant_nodes) {
    const int id = counter_ + 1;
    std::string names[2] = {absl::StrCat("clip_min", id), absl::StrCat("clip_max", id)};
    float values[2] = {lo, hi};
    const std::string x = current_;
    for (int i = 0; i < 2; ++i) {
      if (!constant_nodes) {
        Init(names[i], {}, {values[i]});
        continue;
      }
      onnx::NodeProto* c = model_.mutable_graph()->add_node();
      c->set_op_type("Constant");
      c->set_name(absl::StrCat("Constant_", names[i]));
      c->add_output(names[i]);
      auto* attr = c->add_attribute();
      attr->set_name("value");
      attr->set_type(onnx::AttributeProto::TENSOR);
      attr->mutable_t()->set_data_type(onnx::TensorProto_DataType_FLOAT);
      attr->mutable_t()->set_raw_data(&values[i], sizeof(float));
      constants_[names[i]] = {values[i]};
    }
    return Node("Clip", {x, names[0], names[1]});
  }

  // Declares the current tensor as the graph output "output"-shaped NCHW.
  void Finish() {
    auto* out = model_.mutable_graph()->add_output();
    out->set_name(current_);
    SetNchw(out, channels_);
  }

  std::string Serialize() const { return model_.SerializeAsString(); }
  onnx::ModelProto& model() { return model_; }
  const std::string& current() const { return current_; }

  // Runs the graph naively on NCHW `x`; returns NCHW output and its dims.
  std::vector<float> Evaluate(const Dims4& dims, std::vector<float> x, Dims4* out_dims) const {
    absl::flat_hash_map<std::string, std::pair<Dims4, std::vector<double>>> values;
    values["input"] = {dims, std::vector<double>(x.begin(), x.end())};
    for (const onnx::NodeProto& node : model_.graph().node()) {
      if (node.op_type() == "Constant") continue;
      const auto& [d, v] = values.at(node.input(0));
      std::pair<Dims4, std::vector<double>> result;
      if (node.op_type() == "Conv") {
        result = EvalConv(node, d, v);
      } else if (node.op_type() == "BatchNormalization") {
        result = {d, v};
        const auto &g = constants_.at(node.input(1)), &b = constants_.at(node.input(2)),
                   &m = constants_.at(node.input(3)), &var = constants_.at(node.input(4));
        const double eps = node.attribute(0).f();
        const int64_t hw = d.h * d.w;
        for (size_t i = 0; i < v.size(); ++i) {
          const int64_t c = (i / hw) % d.c;
          result.second[i] = (v[i] - m[c]) / std::sqrt(var[c] + eps) * g[c] + b[c];
        }
      } else if (node.op_type() == "Relu" || node.op_type() == "Clip") {
        double lo = 0, hi = std::numeric_limits<double>::infinity();
        if (node.op_type() == "Clip") {
          if (node.input_size() >= 3) {
            lo = constants_.at(node.input(1))[0];
            hi = constants_.at(node.input(2))[0];
          } else {
            lo = node.attribute(0).f();
            hi = node.attribute(1).f();
          }
        }
        result = {d, v};
        for (double& e : result.second) e = std::min(std::max(e, lo), hi);
      } else {  // Identity
        result = {d, v};
      }
      values[node.output(0)] = std::move(result);
    }
    const auto& [d, v] = values.at(model_.graph().output(0).name());
    *out_dims = d;
    return std::vector<float>(v.begin(), v.end());
  }

 private:
  static void SetNchw(onnx::ValueInfoProto* value, int64_t channels) {
    auto* tensor = value->mutable_type()->mutable_tensor_type();
    tensor->set_elem_type(onnx::TensorProto_DataType_FLOAT);
    auto* shape = tensor->mutable_shape();
    shape->add_dim()->set_dim_param("n");
    shape->add_dim()->set_dim_value(channels);
    shape->add_dim()->set_dim_param("h");
    shape->add_dim()->set_dim_param("w");
  }
  static void Ints(onnx::NodeProto* node, const std::string& name, std::vector<int64_t> v) {
    auto* attr = node->add_attribute();
    attr->set_name(name);
    attr->set_type(onnx::AttributeProto::INTS);
    for (int64_t i : v) attr->add_ints(i);
  }
  static void Int(onnx::NodeProto* node, const std::string& name, int64_t v) {
    auto* attr = node->add_attribute();
    attr->set_name(name);
    attr->set_type(onnx::AttributeProto::INT);
    attr->set_i(v);
  }
  static std::vector<int64_t> IntsOf(const onnx::NodeProto& node, const std::string& name) {
    for (const auto& a : node.attribute()) {
      if (a.name() == name) return {a.ints().begin(), a.ints().end()};
    }
    return {};
  }
  static int64_t IntOf(const onnx::NodeProto& node, const std::string& name, int64_t fallback) {
    for (const auto& a : node.attribute()) {
      if (a.name() == name) return a.i();
    }
    return fallback;
  }

  std::pair<Dims4, std::vector<double>> EvalConv(const onnx::NodeProto& node, const Dims4& d,
                                                 const std::vector<double>& x) const {
    const std::vector<float>& w = constants_.at(node.input(1));
    const std::vector<float>* b = node.input_size() > 2 ? &constants_.at(node.input(2)) : nullptr;
    const int64_t k = IntsOf(node, "kernel_shape")[0], s = IntsOf(node, "strides")[0],
                  dil = IntsOf(node, "dilations")[0], group = IntOf(node, "group", 1);
    const std::vector<int64_t> pads = IntsOf(node, "pads");
    const int64_t cin_g = d.c / group;
    const int64_t cout = static_cast<int64_t>(w.size()) / (cin_g * k * k);
    const int64_t cout_g = cout / group;
    Dims4 o{d.n, cout, (d.h + pads[0] + pads[2] - dil * (k - 1) - 1) / s + 1,
            (d.w + pads[1] + pads[3] - dil * (k - 1) - 1) / s + 1};
    std::vector<double> y(o.n * o.c * o.h * o.w);
    for (int64_t n = 0; n < o.n; ++n)
      for (int64_t oc = 0; oc < o.c; ++oc)
        for (int64_t oh = 0; oh < o.h; ++oh)
          for (int64_t ow = 0; ow < o.w; ++ow) {
            double acc = b ? (*b)[oc] : 0.0;
            const int64_t g = oc / cout_g;
            for (int64_t ic = 0; ic < cin_g; ++ic)
              for (int64_t kh = 0; kh < k; ++kh)
                for (int64_t kw = 0; kw < k; ++kw) {
                  const int64_t ih = oh * s - pads[0] + kh * dil, iw = ow * s - pads[1] + kw * dil;
                  if (ih < 0 || ih >= d.h || iw < 0 || iw >= d.w) continue;
                  acc += x[((n * d.c + g * cin_g + ic) * d.h + ih) * d.w + iw] *
                         w[((oc * cin_g + ic) * k + kh) * k + kw];
                }
            y[((n * o.c + oc) * o.h + oh) * o.w + ow] = acc;
          }
    return {o, y};
  }

  onnx::ModelProto model_;
  std::mt19937 rng_;
  int64_t channels_;
  std::string current_;
  int counter_ = 0;
  absl::flat_hash_map<std::string, std::vector<float>> constants_;
};

}  // namespace testing_onnx
}  // namespace sepconv

#endif  // SEPCONV_TESTS_ENGINE_LOADER_ONNX_TEST_GRAPH_H_
