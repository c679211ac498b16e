// FAKE XRT header for tests (tests/fakes/fake_xrt): NOT XRT. Declares the subset
// of XRT's C++ API that provider/npu/xrt_backend.cc uses, with XRT's signatures,
// so the backend compiles unchanged against the real headers.
#pragma once
#include <string>

namespace xrt {

class uuid {
 public:
  uuid() = default;
  explicit uuid(const std::string& s) : text_(s) {}  // FAKE: real XRT parses the string
  std::string to_string() const { return text_; }
  bool operator==(const uuid& o) const { return text_ == o.text_; }

 private:
  std::string text_;
};

}  // namespace xrt
