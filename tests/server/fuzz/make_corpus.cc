// Writes the fuzzer's seed corpus: serialized ModelInferRequests for the
// default model (32 input channels), valid ones in raw and typed form and
// malformed ones, one per validation rule. Usage: make_fuzz_corpus DIR

#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "grpc_service.pb.h"

namespace {

using Request = inference::ModelInferRequest;

Request Valid(std::vector<int64_t> shape, bool raw) {
  Request request;
  request.set_model_name("sepconv");
  request.set_id("seed");
  auto* input = request.add_inputs();
  input->set_name("input");
  input->set_datatype("FP32");
  int64_t elements = 1;
  for (int64_t d : shape) {
    input->add_shape(d);
    elements *= d;
  }
  std::vector<float> values(elements);
  for (int64_t i = 0; i < elements; ++i) values[i] = static_cast<float>(i % 17) * 0.25f - 2.0f;
  if (raw) {
    request.add_raw_input_contents(
        std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
  } else {
    for (float v : values) input->mutable_contents()->add_fp32_contents(v);
  }
  return request;
}

// Triton's shared-memory parameters on `parameters` (the fuzzer registers
// regions "in", "out" and "odd").
void Shm(google::protobuf::Map<std::string, inference::InferParameter>* parameters,
         const std::string& region, int64_t offset, int64_t byte_size) {
  (*parameters)["shared_memory_region"].set_string_param(region);
  (*parameters)["shared_memory_offset"].set_int64_param(offset);
  (*parameters)["shared_memory_byte_size"].set_int64_param(byte_size);
}

// A 1x32x2x2 request whose input is in `region` and whose output goes to
// `out` (if not empty).
Request InShm(const std::string& region, int64_t offset, const std::string& out,
              int64_t out_offset) {
  Request r = Valid({1, 32, 2, 2}, true);
  r.clear_raw_input_contents();
  Shm(r.mutable_inputs(0)->mutable_parameters(), region, offset, 32 * 2 * 2 * 4);
  if (!out.empty()) {
    auto* output = r.add_outputs();
    output->set_name("output");
    Shm(output->mutable_parameters(), out, out_offset, 64 * 2 * 2 * 4);
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  std::vector<std::pair<std::string, std::function<Request()>>> seeds = {
      {"valid_raw_1x32x4x4",
       [] {
         return Valid({1, 32, 4, 4}, true);
       }},
      {"valid_raw_2x32x3x5",
       [] {
         return Valid({2, 32, 3, 5}, true);
       }},
      {"valid_typed_1x32x2x3",
       [] {
         return Valid({1, 32, 2, 3}, false);
       }},
      {"valid_raw_1x32x1x1",
       [] {
         return Valid({1, 32, 1, 1}, true);
       }},
      {"valid_timeout",
       [] {
         Request r = Valid({1, 32, 2, 2}, true);
         (*r.mutable_parameters())["timeout"].set_int64_param(5000);
         r.add_outputs()->set_name("output");
         return r;
       }},
      {"shm_input_and_output", [] { return InShm("in", 0, "out", 0); }},
      {"shm_input_only", [] { return InShm("odd", 12, "", 0); }},
      {"shm_past_region", [] { return InShm("out", 32768 - 16, "in", 0); }},
      {"shm_overflowing_offset",
       [] { return InShm("in", int64_t{0x7fffffffffffffff} - 100, "out", 0); }},
      {"shm_unknown_region", [] { return InShm("nope", 0, "", 0); }},
      {"bad_dtype",
       [] {
         Request r = Valid({1, 32, 2, 2}, true);
         r.mutable_inputs(0)->set_datatype("INT8");
         return r;
       }},
      {"bad_name",
       [] {
         Request r = Valid({1, 32, 2, 2}, true);
         r.mutable_inputs(0)->set_name("x");
         return r;
       }},
      {"bad_rank",
       [] {
         Request r = Valid({1, 32, 2, 2}, true);
         r.mutable_inputs(0)->mutable_shape()->RemoveLast();
         return r;
       }},
      {"bad_negative_dim",
       [] {
         Request r = Valid({1, 32, 2, 2}, true);
         r.mutable_inputs(0)->set_shape(2, -2);
         return r;
       }},
      {"bad_overflow",
       [] {
         Request r = Valid({1, 32, 2, 2}, true);
         r.mutable_inputs(0)->set_shape(0, int64_t{1} << 40);
         r.mutable_inputs(0)->set_shape(2, int64_t{1} << 40);
         return r;
       }},
      {"bad_channels",
       [] {
         Request r = Valid({1, 32, 2, 2}, true);
         r.mutable_inputs(0)->set_shape(1, 16);
         return r;
       }},
      {"bad_raw_size",
       [] {
         Request r = Valid({1, 32, 2, 2}, true);
         r.mutable_raw_input_contents(0)->pop_back();
         return r;
       }},
      {"bad_raw_and_typed",
       [] {
         Request r = Valid({1, 32, 2, 2}, true);
         r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1.0f);
         return r;
       }},
      {"bad_typed_count",
       [] {
         Request r = Valid({1, 32, 2, 2}, false);
         r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1.0f);
         return r;
       }},
      {"bad_no_input", [] { return Request(); }},
      {"bad_two_inputs",
       [] {
         Request r = Valid({1, 32, 2, 2}, true);
         *r.add_inputs() = r.inputs(0);
         return r;
       }},
      {"bad_timeout",
       [] {
         Request r = Valid({1, 32, 2, 2}, true);
         (*r.mutable_parameters())["timeout"].set_string_param("soon");
         return r;
       }},
      {"bad_output_name",
       [] {
         Request r = Valid({1, 32, 2, 2}, true);
         r.add_outputs()->set_name("logits");
         return r;
       }},
  };
  for (const auto& [name, make] : seeds) {
    const std::string path = std::string(argv[1]) + "/" + name + ".pb";
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!make().SerializeToOstream(&out)) {
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      return 1;
    }
  }
  std::printf("wrote %zu seeds to %s\n", seeds.size(), argv[1]);
  return 0;
}
