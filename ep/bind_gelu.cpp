#include "bindings.h"

namespace xdna {
// Filled in by the gelu kernel work.
void bind_gelu(pybind11::module_&) {}
}  // namespace xdna
