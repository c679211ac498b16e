// libxdna_ep_npu.so: the plugin's NPU backend, written against XRT's C++ API
// (xrt::device, xrt::xclbin, xrt::hw_context, xrt::kernel, xrt::bo, xrt::run).
//
// It mirrors python/xdna_ep/runtime/xrt.py, the pyxrt path, call for call:
//   per design (once per device): xclbin, its kernel list checked, register_xclbin,
//     hw_context, kernel, instruction BO (cacheable, group_id(1)) written + synced;
//   per launch (at load): WEIGHTS BO (host_only, group_id(5)) written + synced once;
//   per run: IN and PARAMS written + synced, run(3, instr, n, IN, OUT, WEIGHTS, PARAMS),
//     wait(timeout), ERT state checked, OUT synced back and read.
// A failed or timed-out command (aborted) marks the program broken: the device
// state is unknown, so nothing is submitted for that program again.
//
// The bytes come precomputed in the payload's NPU image (docs/EPCONTEXT.md v2).
// NOT YET VALIDATED ON HARDWARE: built and tested only against the FAKE XRT
// library in tests/fakes/fake_xrt (no NPU on the development machines).
#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "npu_abi.h"
#include "xrt/experimental/xrt_xclbin.h"
#include "xrt/xrt_bo.h"
#include "xrt/xrt_device.h"
#include "xrt/xrt_hw_context.h"
#include "xrt/xrt_kernel.h"

#define XDNA_NPU_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

constexpr unsigned int kOpcode = 3;  // run a transaction/instruction stream (runtime/layout.py)
constexpr int kArgInstr = 1, kArgIn = 3, kArgOut = 4, kArgWeights = 5, kArgParams = 6;
constexpr size_t kGranule = 4096;    // activation BOs grow in these steps (as runtime/xrt.py)

thread_local std::string g_last_error;

struct NpuError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A failed command: the device state is unknown, the program is unusable.
struct BrokenError : NpuError {
  using NpuError::NpuError;
};

const char* state_name(ert_cmd_state s) {
  switch (s) {
    case ERT_CMD_STATE_NEW: return "ERT_CMD_STATE_NEW";
    case ERT_CMD_STATE_QUEUED: return "ERT_CMD_STATE_QUEUED";
    case ERT_CMD_STATE_RUNNING: return "ERT_CMD_STATE_RUNNING";
    case ERT_CMD_STATE_COMPLETED: return "ERT_CMD_STATE_COMPLETED";
    case ERT_CMD_STATE_ERROR: return "ERT_CMD_STATE_ERROR";
    case ERT_CMD_STATE_ABORT: return "ERT_CMD_STATE_ABORT";
    case ERT_CMD_STATE_SUBMITTED: return "ERT_CMD_STATE_SUBMITTED";
    case ERT_CMD_STATE_TIMEOUT: return "ERT_CMD_STATE_TIMEOUT";
    case ERT_CMD_STATE_NORESPONSE: return "ERT_CMD_STATE_NORESPONSE";
    case ERT_CMD_STATE_SKERROR: return "ERT_CMD_STATE_SKERROR";
    case ERT_CMD_STATE_SKCRASHED: return "ERT_CMD_STATE_SKCRASHED";
    default: return "ERT_CMD_STATE_(unknown)";
  }
}

bool still_running(ert_cmd_state s) {
  return s == ERT_CMD_STATE_NEW || s == ERT_CMD_STATE_QUEUED || s == ERT_CMD_STATE_SUBMITTED ||
         s == ERT_CMD_STATE_RUNNING;
}

std::string str_or(const char* s) { return s ? s : ""; }

bool is_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return static_cast<bool>(f);
}

std::string find_file(const std::string& name, const std::vector<std::string>& dirs) {
  if (!name.empty() && name[0] == '/') return is_file(name) ? name : "";
  for (const std::string& d : dirs)
    if (is_file(d + "/" + name)) return d + "/" + name;
  return "";
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Instruction words: ".txt" holds one hex word per line, else raw little-endian uint32.
std::vector<uint32_t> read_instructions(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw NpuError("cannot open instruction file " + path);
  std::vector<uint32_t> words;
  if (path.size() >= 4 && path.compare(path.size() - 4, 4, ".txt") == 0) {
    std::string tok;
    while (f >> tok) {
      size_t used = 0;
      unsigned long w = 0;
      try {
        w = std::stoul(tok, &used, 16);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != tok.size() || w > 0xFFFFFFFFul)
        throw NpuError("instruction file " + path + ": '" + tok + "' is not a 32-bit hex word");
      words.push_back(static_cast<uint32_t>(w));
    }
  } else {
    std::vector<char> raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (raw.size() % 4)
      throw NpuError("instruction file " + path + " is " + std::to_string(raw.size()) +
                     " bytes, not a whole number of 32-bit words");
    words.resize(raw.size() / 4);
    if (!raw.empty()) std::memcpy(words.data(), raw.data(), raw.size());
  }
  if (words.empty()) throw NpuError("instruction file " + path + " is empty");
  return words;
}

// One registered xclbin: context, kernel and instruction BO, created once per device.
struct Design {
  std::string name, xclbin_path, kernel_name;
  xrt::xclbin xclbin;
  xrt::hw_context context;
  xrt::kernel kernel;
  xrt::bo instr;
  size_t n_words = 0;
};

struct Device {
  unsigned int index = 0;
  uint32_t timeout_ms = 0;
  xrt::device device;
  std::mutex mu;
  std::map<std::string, std::shared_ptr<Design>> designs;
};

xrt::bo alloc(Device& dev, const xrt::kernel& kernel, size_t nbytes, int arg, xrt::bo::flags flags,
              const std::string& where) {
  try {
    return xrt::bo(dev.device, nbytes, flags, kernel.group_id(arg));
  } catch (const std::exception& e) {
    throw NpuError(where + ": cannot allocate a " + std::to_string(nbytes) +
                   "-byte buffer for kernel argument " + std::to_string(arg) + ": " + e.what());
  }
}

void upload(xrt::bo& bo, const void* data, size_t n, const std::string& where) {
  try {
    if (n > 0) bo.write(data, n, 0);
    bo.sync(XCL_BO_SYNC_BO_TO_DEVICE);
  } catch (const std::exception& e) {
    throw NpuError(where + ": buffer upload failed: " + e.what());
  }
}

std::shared_ptr<Design> open_design(Device& dev, const XdnaNpuLaunch& l,
                                    const std::vector<std::string>& dirs) {
  const std::string name = str_or(l.design);
  auto found = dev.designs.find(name);
  if (found != dev.designs.end()) return found->second;
  const std::string xname = str_or(l.xclbin), iname = str_or(l.insts);
  const std::string xpath = find_file(xname, dirs), ipath = find_file(iname, dirs);
  if (xpath.empty() || ipath.empty()) {
    std::vector<std::string> absent;
    if (xpath.empty()) absent.push_back(xname);
    if (ipath.empty()) absent.push_back(iname);
    std::string where;
    for (const auto& d : dirs) where += (where.empty() ? "" : ", ") + d;
    throw NpuError("missing xclbin for design '" + name + "': no " + joined(absent) + " in [" +
                   where + "] (set $XDNA_EP_XCLBIN_DIR)");
  }
  auto d = std::make_shared<Design>();
  d->name = name;
  d->xclbin_path = xpath;
  d->kernel_name = str_or(l.xrt_kernel);
  const std::string where = "design '" + name + "' (" + xpath + ")";
  try {
    d->xclbin = xrt::xclbin(xpath);
  } catch (const std::exception& e) {
    throw NpuError(where + ": cannot read xclbin: " + e.what());
  }
  std::vector<std::string> names;
  try {
    for (const auto& k : d->xclbin.get_kernels()) names.push_back(k.get_name());
  } catch (const std::exception& e) {
    throw NpuError(where + ": cannot list the xclbin's kernels: " + e.what());
  }
  if (std::find(names.begin(), names.end(), d->kernel_name) == names.end())
    throw NpuError(where + ": kernel '" + d->kernel_name + "' not found in xclbin (it has [" +
                   joined(names) + "])");
  try {
    dev.device.register_xclbin(d->xclbin);
  } catch (const std::exception& e) {
    throw NpuError(where + ": register_xclbin failed: " + e.what());
  }
  try {
    d->context = xrt::hw_context(dev.device, d->xclbin.get_uuid());
  } catch (const std::exception& e) {
    throw NpuError(where + ": cannot create a hardware context: " + e.what());
  }
  try {
    d->kernel = xrt::kernel(d->context, d->kernel_name);
  } catch (const std::exception& e) {
    throw NpuError(where + ": cannot open kernel '" + d->kernel_name + "': " + e.what());
  }
  std::vector<uint32_t> words;
  try {
    words = read_instructions(ipath);
  } catch (const std::exception& e) {
    throw NpuError(where + ": cannot read instruction file: " + e.what());
  }
  d->n_words = words.size();
  d->instr = alloc(dev, d->kernel, words.size() * 4, kArgInstr, xrt::bo::flags::cacheable, where);
  upload(d->instr, words.data(), words.size() * 4, where);
  dev.designs[name] = d;
  return d;
}

struct ActivationBo {
  xrt::bo bo;
  size_t capacity = 0;
};

struct Launch {
  size_t index = 0;
  std::string design, kernels;
  std::vector<uint8_t> params;
  size_t in_size = 0, out_size = 0;
  bool zero_out = false;
  std::shared_ptr<Design> d;
  xrt::bo weights;
  ActivationBo in, out, par;
};

struct Program {
  std::shared_ptr<Device> dev;  // keeps the device (and its designs) open
  std::string name;
  std::vector<Launch> launches;
  std::string broken;  // set after a failed command
  std::mutex mu;

  std::string where(const Launch& l) const {
    return "launch " + std::to_string(l.index) + " of program '" + name + "' (design '" +
           l.design + "', kernels [" + l.kernels + "], xrt kernel '" + l.d->kernel_name + "')";
  }

  xrt::bo& grow(Launch& l, ActivationBo& a, int arg, size_t nbytes) {
    if (!a.bo || a.capacity < nbytes) {
      const size_t cap = std::max<size_t>((nbytes + kGranule - 1) / kGranule * kGranule, kGranule);
      a.bo = alloc(*dev, l.d->kernel, cap, arg, xrt::bo::flags::host_only, where(l));
      a.capacity = cap;
      if (arg == kArgOut && l.zero_out) {
        std::vector<uint8_t> zeros(cap, 0);
        upload(a.bo, zeros.data(), cap, where(l));
      }
    }
    return a.bo;
  }

  int run(size_t index, const uint8_t* in, size_t in_size, uint8_t* out, size_t out_size) {
    std::lock_guard<std::mutex> lock(mu);
    if (!broken.empty())
      throw BrokenError("program '" + name + "' is unusable after an earlier NPU failure: " + broken);
    if (index >= launches.size())
      throw NpuError("program '" + name + "' has no launch " + std::to_string(index));
    Launch& l = launches[index];
    if (in_size != l.in_size || out_size != l.out_size)
      throw NpuError(where(l) + ": IN/OUT of " + std::to_string(in_size) + "/" +
                     std::to_string(out_size) + " bytes, the image has " +
                     std::to_string(l.in_size) + "/" + std::to_string(l.out_size));
    xrt::bo& bo_in = grow(l, l.in, kArgIn, in_size);
    xrt::bo& bo_out = grow(l, l.out, kArgOut, out_size);
    xrt::bo& bo_par = grow(l, l.par, kArgParams, l.params.size());
    upload(bo_in, in, in_size, where(l));
    upload(bo_par, l.params.data(), l.params.size(), where(l));
    ert_cmd_state state = ERT_CMD_STATE_NEW;
    xrt::run r;
    try {
      r = xrt::run(l.d->kernel);
      r.set_arg(0, kOpcode);
      r.set_arg(1, l.d->instr);
      r.set_arg(2, l.d->n_words);
      r.set_arg(kArgIn, bo_in);
      r.set_arg(kArgOut, bo_out);
      r.set_arg(kArgWeights, l.weights);
      r.set_arg(kArgParams, bo_par);
      r.start();
      state = r.wait(std::chrono::milliseconds(dev->timeout_ms));
    } catch (const std::exception& e) {
      broken = where(l) + ": command failed: " + e.what();
      throw BrokenError(broken);
    }
    if (state != ERT_CMD_STATE_COMPLETED) {
      std::string sname = state_name(state);
      if (still_running(state)) sname = "ERT_CMD_STATE_TIMEOUT (still " + sname + ")";
      const bool timeout = sname.find("TIMEOUT") != std::string::npos;
      if (timeout) {
        try {
          r.abort();
        } catch (const std::exception&) {  // the timeout is what we report
        }
      }
      broken = where(l) + " ended in " + sname +
               (timeout ? " after " + std::to_string(dev->timeout_ms) + " ms" : "");
      throw BrokenError(broken);
    }
    try {
      bo_out.sync(XCL_BO_SYNC_BO_FROM_DEVICE);
      if (out_size > 0) bo_out.read(out, out_size, 0);
    } catch (const std::exception& e) {
      throw NpuError(where(l) + ": reading outputs failed: " + e.what());
    }
    return XDNA_NPU_OK;
  }
};

struct DeviceHandle {
  std::shared_ptr<Device> dev;
};

}  // namespace

XDNA_NPU_EXPORT uint32_t xdna_npu_abi_version(void) { return XDNA_NPU_ABI_VERSION; }

XDNA_NPU_EXPORT const char* xdna_npu_last_error(void) { return g_last_error.c_str(); }

XDNA_NPU_EXPORT void* xdna_npu_open(unsigned int device_index, uint32_t timeout_ms) {
  try {
    if (timeout_ms == 0) throw NpuError("the command timeout must be > 0 ms");
    auto dev = std::make_shared<Device>();
    dev->index = device_index;
    dev->timeout_ms = timeout_ms;
    try {
      dev->device = xrt::device(device_index);
    } catch (const std::exception& e) {
      throw NpuError("cannot open NPU device " + std::to_string(device_index) +
                     " through XRT: " + e.what());
    }
    return new DeviceHandle{std::move(dev)};
  } catch (const std::exception& e) {
    g_last_error = e.what();
    return nullptr;
  }
}

XDNA_NPU_EXPORT void* xdna_npu_load(void* device, const char* program, const XdnaNpuLaunch* launches,
                                    size_t n_launches, const char* const* search_dirs, size_t n_dirs) {
  try {
    if (device == nullptr) throw NpuError("xdna_npu_load: no device");
    auto p = std::make_unique<Program>();
    p->dev = static_cast<DeviceHandle*>(device)->dev;
    p->name = str_or(program);
    std::vector<std::string> dirs;
    for (size_t i = 0; i < n_dirs; ++i) dirs.push_back(str_or(search_dirs[i]));
    std::lock_guard<std::mutex> lock(p->dev->mu);
    for (size_t i = 0; i < n_launches; ++i) {
      const XdnaNpuLaunch& src = launches[i];
      Launch l;
      l.index = i;
      l.design = str_or(src.design);
      l.kernels = str_or(src.kernels);
      const std::string where = "program '" + p->name + "', launch " + std::to_string(i) +
                                " (design '" + l.design + "', kernels [" + l.kernels + "])";
      try {
        l.d = open_design(*p->dev, src, dirs);
      } catch (const std::exception& e) {
        throw NpuError(where + ": " + e.what());
      }
      l.params.assign(src.params, src.params + src.params_size);
      l.in_size = src.in_size;
      l.out_size = src.out_size;
      l.zero_out = src.zero_out != 0;
      l.weights = alloc(*p->dev, l.d->kernel, src.weights_size, kArgWeights,
                        xrt::bo::flags::host_only, where);
      upload(l.weights, src.weights, src.weights_size, where);
      p->launches.push_back(std::move(l));
    }
    return p.release();
  } catch (const std::exception& e) {
    g_last_error = e.what();
    return nullptr;
  }
}

XDNA_NPU_EXPORT int xdna_npu_run(void* program, size_t launch, const uint8_t* in, size_t in_size,
                                 uint8_t* out, size_t out_size) {
  auto* p = static_cast<Program*>(program);
  try {
    if (p == nullptr) throw NpuError("xdna_npu_run: no program");
    return p->run(launch, in, in_size, out, out_size);
  } catch (const BrokenError& e) {
    g_last_error = e.what();
    return XDNA_NPU_BROKEN;
  } catch (const std::exception& e) {
    g_last_error = e.what();
    return XDNA_NPU_REFUSED;
  }
}

XDNA_NPU_EXPORT void xdna_npu_unload(void* program) { delete static_cast<Program*>(program); }

XDNA_NPU_EXPORT void xdna_npu_close(void* device) { delete static_cast<DeviceHandle*>(device); }
