#include "client/npy.h"

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sepconv::client {
namespace {

using ::testing::HasSubstr;

// A .npy file with the given version and header dict, padded like numpy pads.
std::string MakeNpy(int major, const std::string& dict, const std::string& payload) {
  const size_t prefix = major == 1 ? 10 : 12;
  std::string header = dict;
  const size_t unpadded = prefix + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::string out = "\x93NUMPY";
  out.push_back(static_cast<char>(major));
  out.push_back(0);
  for (size_t i = 0; i < (major == 1 ? 2u : 4u); ++i) {
    out.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xff));
  }
  return out + header + payload;
}

std::string Floats(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

TEST(NpyTest, RoundTripsShapesIncludingScalarAndEmpty) {
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{}, {5}, {2, 3}, {1, 32, 7, 9}, {0, 3}, {2, 1, 1, 1, 1}}) {
    Tensor t;
    t.shape = shape;
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    for (int64_t i = 0; i < n; ++i) t.data.push_back(0.25f * i - 3.0f);
    absl::StatusOr<std::string> bytes = SerializeNpy(t);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    // Data is 64-byte aligned, as numpy writes it.
    EXPECT_EQ((bytes->size() - n * sizeof(float)) % 64, 0u);
    absl::StatusOr<Tensor> back = ParseNpy(*bytes);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->shape, shape);
    EXPECT_EQ(back->data, t.data);
  }
}

TEST(NpyTest, ReadsVersion2AndDoubleQuotesAndNoTrailingComma) {
  const std::vector<float> values = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
  absl::StatusOr<Tensor> t = ParseNpy(MakeNpy(
      2, "{\"descr\": \"<f4\", \"shape\": (2, 3), \"fortran_order\": False}", Floats(values)));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t->data, values);
}

TEST(NpyTest, FileRoundTrip) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/npy_test_roundtrip.npy");
  Tensor t{{2, 2}, {1, 2, 3, 4}};
  ASSERT_TRUE(WriteNpy(path, t).ok());
  absl::StatusOr<Tensor> back = ReadNpy(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->data, t.data);
  std::remove(path.c_str());
}

struct Refusal {
  std::string name;
  std::string bytes;
  std::string message;
};

void PrintTo(const Refusal& r, std::ostream* os) { *os << r.name; }

class NpyRefusalTest : public ::testing::TestWithParam<Refusal> {};

TEST_P(NpyRefusalTest, RefusesWithAClearMessage) {
  absl::StatusOr<Tensor> t = ParseNpy(GetParam().bytes);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(t.status().message()), HasSubstr(GetParam().message));
}

const std::string kGood = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
const std::string kFour = Floats({1, 2, 3, 4});

INSTANTIATE_TEST_SUITE_P(
    Cases, NpyRefusalTest,
    ::testing::Values(
        Refusal{"BigEndian",
                MakeNpy(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }", kFour),
                "big-endian"},
        Refusal{"FortranOrder",
                MakeNpy(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", kFour),
                "Fortran"},
        Refusal{"Float64",
                MakeNpy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 1), }", kFour),
                "dtype '<f8'"},
        Refusal{"Int32",
                MakeNpy(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }", kFour),
                "dtype '<i4'"},
        Refusal{"Float16",
                MakeNpy(1, "{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }", kFour),
                "dtype '<f2'"},
        Refusal{
            "StructuredDtype",
            MakeNpy(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }", kFour),
            "structured"},
        Refusal{"TruncatedData", MakeNpy(1, kGood, kFour.substr(0, 10)), "truncated data"},
        Refusal{"TrailingData", MakeNpy(1, kGood, kFour + "xx"), "trailing data"},
        Refusal{"TruncatedHeader", MakeNpy(1, kGood, kFour).substr(0, 40), "truncated header"},
        Refusal{"TooShort", std::string("\x93NUM"), "magic"},
        Refusal{"BadMagic", "PK\x03\x04" + std::string(60, 'x'), "magic"},
        Refusal{"Version3", MakeNpy(2, kGood, kFour).replace(6, 1, "\x03"), "version 3.0"},
        Refusal{"Version1_1", MakeNpy(1, kGood, kFour).replace(7, 1, "\x01"), "version 1.1"},
        Refusal{"NoShape", MakeNpy(1, "{'descr': '<f4', 'fortran_order': False, }", kFour),
                "no 'shape'"},
        Refusal{"NoDescr", MakeNpy(1, "{'fortran_order': False, 'shape': (2, 2), }", kFour),
                "no 'descr'"},
        Refusal{
            "UnknownKey",
            MakeNpy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': 1}", kFour),
            "unexpected key 'x'"},
        Refusal{"BadShape",
                MakeNpy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -2), }", kFour),
                "bad dimension"},
        Refusal{"OverflowingShape",
                MakeNpy(1,
                        "{'descr': '<f4', 'fortran_order': False, 'shape': "
                        "(4294967296, 4294967296), }",
                        kFour),
                "more elements than int64"},
        Refusal{"NotADict", MakeNpy(1, "['descr', '<f4']", kFour), "does not start with '{'"}),
    [](const ::testing::TestParamInfo<Refusal>& info) { return info.param.name; });

TEST(NpyTest, SerializeRefusesMismatchedData) {
  Tensor t{{2, 3}, {1, 2, 3}};
  absl::StatusOr<std::string> bytes = SerializeNpy(t);
  ASSERT_FALSE(bytes.ok());
  EXPECT_THAT(std::string(bytes.status().message()), HasSubstr("has 3 values, expected 6"));
}

TEST(NpyTest, ReadNamesTheMissingFile) {
  absl::StatusOr<Tensor> t = ReadNpy("/nonexistent/dir/x.npy");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("/nonexistent/dir/x.npy"));
}

}  // namespace
}  // namespace sepconv::client
