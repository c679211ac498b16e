#include "bindings.h"

namespace xdna {
// Filled in by the attention kernel work.
void bind_attention(pybind11::module_&) {}
}  // namespace xdna
