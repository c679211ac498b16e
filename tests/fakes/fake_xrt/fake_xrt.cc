// FAKE XRT library for tests (libfake_xrt.so). This is NOT XRT and touches no
// hardware. It implements the subset of XRT's C++ API declared in include/xrt/
// (the calls provider/npu/xrt_backend.cc makes), so the plugin's NPU backend can
// be built and run on machines without an NPU.
//
// Every call is reported to the Python module fakes.fake_xrt_host (the host
// process is the pytest interpreter; PyGILState_Ensure), which records it, may
// inject a fault (the call then throws, as XRT throws), and plays the hardware:
// a started run is executed by tests/fakes/fake_hardware.py, the same code the
// FAKE pyxrt runs, from the device-visible bytes of the BOs modelled here (host
// bytes and device bytes apart; sync moves them).
#include <Python.h>

#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "xrt/experimental/xrt_xclbin.h"
#include "xrt/xrt_bo.h"
#include "xrt/xrt_device.h"
#include "xrt/xrt_hw_context.h"
#include "xrt/xrt_kernel.h"

namespace {

constexpr const char* kHostModule = "fakes.fake_xrt_host";

// The GIL for the current scope (the test's interpreter may or may not hold it).
struct Gil {
  PyGILState_STATE st;
  Gil() : st(PyGILState_Ensure()) {}
  ~Gil() { PyGILState_Release(st); }
};

std::string fetch_python_error() {
  PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
  PyErr_Fetch(&type, &value, &tb);
  std::string msg = "FAKE XRT: Python error";
  if (value != nullptr) {
    PyObject* s = PyObject_Str(value);
    if (s != nullptr) {
      const char* c = PyUnicode_AsUTF8(s);
      if (c != nullptr) msg = c;
      Py_DECREF(s);
    }
  }
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
  PyErr_Clear();
  return msg;
}

// Calls fakes.fake_xrt_host.<func>(*args) (args: a new reference, stolen); a Python
// exception becomes std::runtime_error with its message. Returns a new reference.
PyObject* host_call(const char* func, PyObject* args) {
  if (args == nullptr) throw std::runtime_error(fetch_python_error());
  PyObject* mod = PyImport_ImportModule(kHostModule);
  if (mod == nullptr) {
    Py_DECREF(args);
    throw std::runtime_error(fetch_python_error());
  }
  PyObject* fn = PyObject_GetAttrString(mod, func);
  Py_DECREF(mod);
  if (fn == nullptr) {
    Py_DECREF(args);
    throw std::runtime_error(fetch_python_error());
  }
  PyObject* out = PyObject_CallObject(fn, args);
  Py_DECREF(fn);
  Py_DECREF(args);
  if (out == nullptr) throw std::runtime_error(fetch_python_error());
  return out;
}

// Records call `name` with keyword details (a dict built by Py_BuildValue format
// `fmt`); the host may raise to inject a fault.
template <class... A>
void report(const char* name, const char* fmt, A... a) {
  Gil gil;
  PyObject* details = Py_BuildValue(fmt, a...);
  if (details == nullptr) throw std::runtime_error(fetch_python_error());
  Py_DECREF(host_call("call", Py_BuildValue("(sN)", name, details)));
}

std::mutex g_mu;
int g_next_bo = 0;

}  // namespace

namespace xrt {

class xclbin_impl;
namespace {
std::map<std::string, std::shared_ptr<xclbin_impl>> g_registered;  // uuid -> xclbin
}

class device_impl {
 public:
  unsigned int index = 0;
};

class xclbin_impl {
 public:
  std::string path, uuid, design;
  std::vector<std::string> kernels;
};

class hw_context_impl {
 public:
  std::shared_ptr<xclbin_impl> xclbin;
};

class kernel_impl {
 public:
  std::string name;
  std::shared_ptr<xclbin_impl> xclbin;
};

class bo_impl {
 public:
  int id = 0;
  uint32_t flags = 0;
  memory_group group = 0;
  std::vector<uint8_t> host, dev;
  int generation = 0;  // bumps when the device bytes change by a sync
};

class run_impl {
 public:
  std::shared_ptr<kernel_impl> kernel;
  std::map<int, std::vector<uint8_t>> scalars;
  std::map<int, std::shared_ptr<bo_impl>> bos;
  ert_cmd_state state = ERT_CMD_STATE_NEW;
};

device::device(unsigned int didx) {
  report("device", "{s:I}", "index", didx);
  handle = std::make_shared<device_impl>();
  handle->index = didx;
}

uuid device::register_xclbin(const xrt::xclbin& x) {
  report("register_xclbin", "{s:s}", "xclbin", x.get_handle()->path.c_str());
  std::lock_guard<std::mutex> lock(g_mu);
  g_registered[x.get_handle()->uuid] = x.get_handle();
  return x.get_uuid();
}

xclbin::xclbin(const std::string& filename) {
  auto impl = std::make_shared<xclbin_impl>();
  impl->path = filename;
  Gil gil;
  PyObject* r = host_call("load_xclbin", Py_BuildValue("(s)", filename.c_str()));
  // (uuid, design, [kernel names])
  PyObject* names = nullptr;
  const char *u = nullptr, *d = nullptr;
  if (!PyArg_ParseTuple(r, "ssO", &u, &d, &names)) {
    Py_DECREF(r);
    throw std::runtime_error(fetch_python_error());
  }
  impl->uuid = u;
  impl->design = d;
  for (Py_ssize_t i = 0, n = PySequence_Size(names); i < n; ++i) {
    PyObject* item = PySequence_GetItem(names, i);
    const char* c = item ? PyUnicode_AsUTF8(item) : nullptr;
    if (c != nullptr) impl->kernels.emplace_back(c);
    Py_XDECREF(item);
  }
  Py_DECREF(r);
  handle = impl;
}

std::vector<xclbin::kernel> xclbin::get_kernels() const {
  report("xclbin.get_kernels", "{s:s}", "xclbin", handle->path.c_str());
  std::vector<kernel> out;
  for (const auto& n : handle->kernels) out.emplace_back(n);
  return out;
}

uuid xclbin::get_uuid() const { return uuid(handle->uuid); }

hw_context::hw_context(const xrt::device&, const xrt::uuid& xclbin_id, const cfg_param_type&) {
  report("hw_context", "{s:s}", "uuid", xclbin_id.to_string().c_str());
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_registered.find(xclbin_id.to_string());
  if (it == g_registered.end())
    throw std::runtime_error("FAKE: xclbin " + xclbin_id.to_string() + " was not registered");
  handle = std::make_shared<hw_context_impl>();
  handle->xclbin = it->second;
}

kernel::kernel(const xrt::hw_context& ctx, const std::string& name) {
  const auto& x = ctx.get_handle()->xclbin;
  report("kernel", "{s:s,s:s}", "name", name.c_str(), "xclbin", x->path.c_str());
  bool found = false;
  for (const auto& k : x->kernels) found = found || k == name;
  if (!found) throw std::runtime_error("FAKE: no kernel '" + name + "' in " + x->path);
  handle = std::make_shared<kernel_impl>();
  handle->name = name;
  handle->xclbin = x;
}

int kernel::group_id(int argno) const {
  report("kernel.group_id", "{s:i}", "arg", argno);
  Gil gil;
  PyObject* r = host_call("group_id", Py_BuildValue("(i)", argno));
  const long g = PyLong_AsLong(r);
  Py_DECREF(r);
  return static_cast<int>(g);
}

bo::bo(const xrt::device&, size_t sz, bo::flags flags, memory_group grp) {
  int id = 0;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    id = ++g_next_bo;
  }
  report("bo", "{s:i,s:n,s:I,s:I}", "id", id, "size", static_cast<Py_ssize_t>(sz), "flags",
         static_cast<unsigned int>(flags), "group", static_cast<unsigned int>(grp));
  if (sz == 0) throw std::runtime_error("FAKE: BO size must be > 0");
  handle = std::make_shared<bo_impl>();
  handle->id = id;
  handle->flags = static_cast<uint32_t>(flags);
  handle->group = grp;
  handle->host.assign(sz, 0);
  handle->dev.assign(sz, 0);
}

size_t bo::size() const { return handle->host.size(); }

void bo::write(const void* src, size_t size, size_t seek) {
  report("bo.write", "{s:i,s:n,s:n}", "bo", handle->id, "nbytes", static_cast<Py_ssize_t>(size),
         "seek", static_cast<Py_ssize_t>(seek));
  if (seek + size > handle->host.size())
    throw std::runtime_error("FAKE: write of " + std::to_string(size) + " bytes at " +
                             std::to_string(seek) + " overflows BO " + std::to_string(handle->id));
  std::memcpy(handle->host.data() + seek, src, size);
}

void bo::sync(xclBOSyncDirection dir, size_t sz, size_t offset) {
  const bool to_device = dir == XCL_BO_SYNC_BO_TO_DEVICE;
  report("bo.sync", "{s:i,s:s}", "bo", handle->id, "direction",
         to_device ? "XCL_BO_SYNC_BO_TO_DEVICE" : "XCL_BO_SYNC_BO_FROM_DEVICE");
  if (offset + sz > handle->host.size()) throw std::runtime_error("FAKE: sync past the BO's end");
  if (to_device) {
    std::memcpy(handle->dev.data() + offset, handle->host.data() + offset, sz);
    ++handle->generation;
  } else {
    std::memcpy(handle->host.data() + offset, handle->dev.data() + offset, sz);
  }
}

void bo::read(void* dst, size_t size, size_t skip) {
  report("bo.read", "{s:i,s:n,s:n}", "bo", handle->id, "size", static_cast<Py_ssize_t>(size),
         "skip", static_cast<Py_ssize_t>(skip));
  if (skip + size > handle->host.size()) throw std::runtime_error("FAKE: read past the BO's end");
  std::memcpy(dst, handle->host.data() + skip, size);
}

run::run(const kernel& krnl) {
  handle = std::make_shared<run_impl>();
  handle->kernel = krnl.get_handle();
}

void run::set_arg_at_index(int index, const void* value, size_t bytes) {
  const auto* p = static_cast<const uint8_t*>(value);
  handle->scalars[index].assign(p, p + bytes);
  handle->bos.erase(index);
}

void run::set_arg_at_index(int index, const xrt::bo& b) {
  handle->bos[index] = b.get_handle();
  handle->scalars.erase(index);
}

// Executes the command now (the FAKE is synchronous): the host plays the hardware
// on memoryviews of the BOs' device bytes and returns the final ERT state.
void run::start() {
  const auto& k = handle->kernel;
  Gil gil;
  PyObject* args = PyList_New(0);
  int last = -1;
  for (const auto& [i, _] : handle->scalars) last = std::max(last, i);
  for (const auto& [i, _] : handle->bos) last = std::max(last, i);
  for (int i = 0; i <= last; ++i) {
    PyObject* item = nullptr;
    auto s = handle->scalars.find(i);
    auto b = handle->bos.find(i);
    if (s != handle->scalars.end()) {
      uint64_t v = 0;
      std::memcpy(&v, s->second.data(), std::min<size_t>(s->second.size(), sizeof(v)));
      item = Py_BuildValue("{s:K,s:n}", "value", static_cast<unsigned long long>(v), "bytes",
                           static_cast<Py_ssize_t>(s->second.size()));
    } else if (b != handle->bos.end()) {
      bo_impl& bo = *b->second;
      PyObject* view = PyMemoryView_FromMemory(reinterpret_cast<char*>(bo.dev.data()),
                                               static_cast<Py_ssize_t>(bo.dev.size()), PyBUF_WRITE);
      item = Py_BuildValue("{s:i,s:I,s:I,s:n,s:i,s:N}", "id", bo.id, "flags", bo.flags, "group",
                           bo.group, "size", static_cast<Py_ssize_t>(bo.dev.size()), "generation",
                           bo.generation, "dev", view);
    } else {
      item = Py_None;
      Py_INCREF(item);
    }
    PyList_Append(args, item);
    Py_DECREF(item);
  }
  PyObject* r = host_call("launch", Py_BuildValue("(ssN)", k->xclbin->path.c_str(),
                                                  k->xclbin->design.c_str(), args));
  handle->state = static_cast<ert_cmd_state>(PyLong_AsLong(r));
  Py_DECREF(r);
}

ert_cmd_state run::wait(const std::chrono::milliseconds& timeout) const {
  report("run.wait", "{s:L,s:i}", "timeout_ms", static_cast<long long>(timeout.count()), "state",
         static_cast<int>(handle->state));
  return handle->state;
}

ert_cmd_state run::state() const { return handle->state; }

ert_cmd_state run::abort() {
  report("run.abort", "{}");
  handle->state = ERT_CMD_STATE_ABORT;
  return handle->state;
}

}  // namespace xrt
