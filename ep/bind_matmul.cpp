#include "bindings.h"

namespace xdna {
// Filled in by the matmul kernel work.
void bind_matmul(pybind11::module_&) {}
}  // namespace xdna
