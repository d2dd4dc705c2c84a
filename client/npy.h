#ifndef SEPCONV_CLIENT_NPY_H_
#define SEPCONV_CLIENT_NPY_H_

// NumPy .npy files (format versions 1.0 and 2.0) holding little-endian
// float32 ('<f4') arrays in C order, the only kind the service takes. Every
// other file (big-endian, Fortran order, another dtype, another version, a
// truncated or over-long payload, a malformed header) is refused with an
// INVALID_ARGUMENT status that says what was found and what to do.
// Stateless functions; thread-safe.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/tensor.h"

namespace sepconv::client {

// Parses the bytes of a .npy file.
absl::StatusOr<Tensor> ParseNpy(absl::string_view bytes);

// The bytes of a .npy file for `tensor`: version 1.0, or 2.0 when the header
// does not fit 1.0's 64 KiB. Fails when data.size() != product(shape).
absl::StatusOr<std::string> SerializeNpy(const Tensor& tensor);

// File wrappers; errors name the path.
absl::StatusOr<Tensor> ReadNpy(const std::string& path);
absl::Status WriteNpy(const std::string& path, const Tensor& tensor);

}  // namespace sepconv::client

#endif  // SEPCONV_CLIENT_NPY_H_
