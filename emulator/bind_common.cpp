#include <pybind11/stl.h>

#include <vector>

#include "../kernels/common/epilogue.h"
#include "bindings.h"
#include "cpu_features.h"
#include "parallel.h"

namespace py = pybind11;

namespace xdna {

void bind_common(py::module_& m) {
  m.def("kernel_paths", [] {
    std::vector<std::string> out;
    for (Isa isa : supported_isas()) out.emplace_back(isa_name(isa));
    return out;
  }, "Instruction-set paths this CPU can run, portable first.");
  m.def("active_kernel_path", [] { return std::string(isa_name(active_isa())); },
        "The path kernels use now.");
  m.def("set_kernel_path", [](const std::string& name) {
    set_active_isa(name == "auto" ? supported_isas().back() : isa_from_name(name));
  }, py::arg("name"), "Force a path (portable|avx2|avx512_vnni|amx|auto).");
  m.def("num_threads", &num_threads);
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("num_threads must be >= 1");
    set_num_threads(n);
  }, py::arg("n"));
  m.def("make_requant", [](double scale) {
    if (!(scale > 0.0)) throw py::value_error("scale must be > 0 and finite");
    Requant r = make_requant(scale);
    return py::make_tuple(r.multiplier, r.shift);
  }, py::arg("scale"), "Real scale -> (multiplier, shift) of the shared epilogue.");
}

}  // namespace xdna
