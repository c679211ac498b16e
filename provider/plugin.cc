// libxdna_ep_provider.so: the XDNA execution provider as an ONNX Runtime plugin
// EP (onnxruntime_ep_c_api.h, requested at ORT_API_VERSION 29).
//
//   CreateEpFactories / ReleaseEpFactory   library entry points
//   XdnaFactory (OrtEpFactory)             devices: the NPU when usable (npu_probe.h),
//                                          the emulator on the host CPU
//   XdnaEp (OrtEp)                         GetCapability: claims com.microsoft
//                                          EPContext nodes whose source is
//                                          XDNAExecutionProvider; Compile: payload
//                                          -> Program (runner.h, the emulator) and,
//                                          on the NPU, NpuProgram (npu_runner.h)
//                                          -> compute info
//
// A model without our EPContext nodes runs wholly on the CPU with one log line
// that says how to compile it (`xdna-ep compile`).
#include <onnxruntime_c_api.h>  // also declares the plugin EP API (onnxruntime_ep_c_api.h)

#include <atomic>
#include <cctype>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "npu_backend.h"
#include "npu_probe.h"
#include "npu_runner.h"
#include "options.h"
#include "parallel.h"
#include "payload.h"
#include "runner.h"
#include "tap.h"

#define XDNA_EXPORT extern "C" __attribute__((visibility("default")))

namespace xdna::ep {
namespace {

constexpr const char* kEpName = "XDNAExecutionProvider";
constexpr const char* kVendor = "AMD";
constexpr uint32_t kAmdVendorId = 0x1022;
constexpr const char* kVersion = "0.1.0";

const OrtApi* g_api = nullptr;
const OrtEpApi* g_ep = nullptr;

// Regions of this process that fell back from the NPU to the emulator
// (fallback=allow), and the latest reason: XdnaEpNpuFallbacks lets xdna-ep's
// Python session put the fallback in its report (the log line goes to ORT's logger).
std::atomic<uint64_t> g_npu_fallbacks{0};
std::mutex g_fallback_mutex;
std::string g_fallback_reason;

void note_fallback(const std::string& why) {
  std::lock_guard<std::mutex> lock(g_fallback_mutex);
  g_fallback_reason = why;
  g_npu_fallbacks.fetch_add(1);
}

// An OrtStatus turned into an exception (and back at the API boundary).
struct OrtError : std::runtime_error {
  OrtErrorCode code;
  OrtError(OrtErrorCode c, const std::string& m) : std::runtime_error(m), code(c) {}
};

void check(OrtStatus* st) {
  if (st == nullptr) return;
  const std::string msg = g_api->GetErrorMessage(st);
  const OrtErrorCode code = g_api->GetErrorCode(st);
  g_api->ReleaseStatus(st);
  throw OrtError(code, msg);
}

OrtStatus* to_status(const std::exception& e, OrtErrorCode code = ORT_FAIL) {
  if (const auto* oe = dynamic_cast<const OrtError*>(&e)) code = oe->code;
  return g_api->CreateStatus(code, e.what());
}

#define XDNA_API_BEGIN try {
#define XDNA_API_END                                                      \
  }                                                                       \
  catch (const PayloadError& e) { return to_status(e, ORT_INVALID_GRAPH); } \
  catch (const UnsupportedStage& e) { return to_status(e, ORT_NOT_IMPLEMENTED); } \
  catch (const OptionError& e) { return to_status(e, ORT_INVALID_ARGUMENT); } \
  catch (const std::exception& e) { return to_status(e); }                \
  return nullptr;

void log(const OrtLogger* logger, OrtLoggingLevel level, const std::string& msg) {
  if (logger == nullptr) return;
  OrtStatus* st = g_api->Logger_LogMessage(logger, level, msg.c_str(), __FILE__, __LINE__, "xdna_ep");
  if (st != nullptr) g_api->ReleaseStatus(st);
}

// -- attribute helpers -----------------------------------------------------------------------
const OrtOpAttr* find_attr(const OrtNode* node, const char* name) {
  const OrtOpAttr* attr = nullptr;
  OrtStatus* st = g_api->Node_GetAttributeByName(node, name, &attr);
  if (st != nullptr) {  // ORT_NOT_FOUND: absent
    g_api->ReleaseStatus(st);
    return nullptr;
  }
  return attr;
}

bool string_attr(const OrtNode* node, const char* name, std::string& out) {
  const OrtOpAttr* attr = find_attr(node, name);
  if (attr == nullptr) return false;
  size_t size = 0;
  OrtStatus* st = g_api->ReadOpAttr(attr, ORT_OP_ATTR_STRING, nullptr, 0, &size);
  if (st != nullptr) g_api->ReleaseStatus(st);  // expected: reports the size needed
  out.assign(size, '\0');
  if (size > 0) check(g_api->ReadOpAttr(attr, ORT_OP_ATTR_STRING, out.data(), size, &size));
  out.resize(size);
  return true;
}

int64_t int_attr(const OrtNode* node, const char* name, int64_t dflt) {
  const OrtOpAttr* attr = find_attr(node, name);
  if (attr == nullptr) return dflt;
  int64_t v = 0;
  size_t size = 0;
  check(g_api->ReadOpAttr(attr, ORT_OP_ATTR_INT, &v, sizeof(v), &size));
  return v;
}

std::string node_name(const OrtNode* node) {
  const char* n = nullptr;
  check(g_api->Node_GetName(node, &n));
  return n ? n : "";
}

// Names of a node's inputs (outputs: want_outputs) in order ("" for a missing optional one).
std::vector<std::string> io_names(const OrtNode* node, bool want_outputs) {
  size_t n = 0;
  check(want_outputs ? g_api->Node_GetNumOutputs(node, &n) : g_api->Node_GetNumInputs(node, &n));
  std::vector<const OrtValueInfo*> infos(n);
  if (n > 0)
    check(want_outputs ? g_api->Node_GetOutputs(node, infos.data(), n)
                       : g_api->Node_GetInputs(node, infos.data(), n));
  std::vector<std::string> names;
  for (const OrtValueInfo* vi : infos) {
    const char* name = nullptr;
    if (vi != nullptr) check(g_api->GetValueInfoName(vi, &name));
    names.emplace_back(name ? name : "");
  }
  return names;
}

// For each fused-node slot, the EPContext node slot of the same name, which is
// the program slot (the EPContext node lists its inputs/outputs in program
// order; names may have been changed by ORT's optimizers, on both alike). ONNX
// Runtime orders a fused node's inputs/outputs its own way (graph outputs,
// consumers outside), not necessarily as the EPContext node lists them.
// fused-node slot -> program slot, by tensor name. ORT leaves out of the fused node
// the outputs nothing reads (`subset`: outputs); every input must be there.
std::vector<size_t> slot_map(const std::vector<std::string>& fused, const std::vector<std::string>& node,
                             size_t program_slots, const std::string& where, const char* what,
                             bool subset = false) {
  if (node.size() != program_slots)
    throw PayloadError(where + ": the node has " + std::to_string(node.size()) + " " + what +
                       ", its program " + std::to_string(program_slots));
  if (subset ? fused.size() > node.size() : fused.size() != node.size())
    throw PayloadError(where + ": the fused node has " + std::to_string(fused.size()) + " " + what +
                       ", the EPContext node " + std::to_string(node.size()));
  std::vector<size_t> map;
  for (const std::string& name : fused) {
    size_t k = 0;
    while (k < node.size() && node[k] != name) ++k;
    if (k == node.size())
      throw PayloadError(where + ": fused-node " + what + " '" + name + "' is not one of the node's");
    map.push_back(k);
  }
  return map;
}

bool is_our_epcontext(const OrtNode* node) {
  const char* op = nullptr;
  const char* domain = nullptr;
  check(g_api->Node_GetOperatorType(node, &op));
  check(g_api->Node_GetDomain(node, &domain));
  if (std::strcmp(op, "EPContext") != 0 || std::strcmp(domain, "com.microsoft") != 0) return false;
  std::string source;
  return string_attr(node, "source", source) && source == kEpName;
}

std::string directory_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

std::vector<uint8_t> read_side_file(const std::string& model_path, const std::string& rel,
                                    const std::string& where) {
  if (rel.empty() || rel[0] == '/' || rel.find("..") != std::string::npos)
    throw PayloadError(where + ": ep_cache_context '" + rel +
                       "' must be a plain file name relative to the model (no '/', no '..')");
  if (model_path.empty())
    throw PayloadError(where + ": embed_mode=0 needs the model's path to find '" + rel +
                       "', but the model was loaded from memory");
  const std::string full = directory_of(model_path) + "/" + rel;
  std::ifstream f(full, std::ios::binary);
  if (!f) throw PayloadError(where + ": EPContext side file '" + full + "' is missing or unreadable");
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// -- compute -----------------------------------------------------------------------------------
DType from_onnx(ONNXTensorElementDataType t) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return DType::kFloat32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: return DType::kInt8;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return DType::kInt32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return DType::kUInt8;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return DType::kInt64;
    default: throw OrtError(ORT_INVALID_ARGUMENT, "XDNA region: unsupported input element type");
  }
}

struct RegionCompute : OrtNodeComputeInfo {
  std::shared_ptr<const Program> program;     // the emulator form (always there)
  std::unique_ptr<const NpuProgram> npu;      // the NPU form, when the region runs there
  std::string node;
  std::vector<size_t> in_map, out_map;  // fused-node slot -> program slot
  bool fallback_error = false;          // a failed NPU run is an error (else: emulator)
  uint64_t tap = 0;                     // option tap: called after each compute (tap.h)
  const OrtLogger* logger = nullptr;
  std::atomic<bool> on_emulator{false};  // after a failed NPU run: never the NPU again
  std::once_flag announced;
  std::once_flag shape_announced;       // a run of another shape than the NPU image's

  RegionCompute(std::shared_ptr<const Program> p, std::string n, std::vector<size_t> in_m,
                std::vector<size_t> out_m)
      : OrtNodeComputeInfo{}, program(std::move(p)), node(std::move(n)), in_map(std::move(in_m)),
        out_map(std::move(out_m)) {
    ort_version_supported = ORT_API_VERSION;
    CreateState = create_state;
    Compute = compute;
    ReleaseState = release_state;
  }

  static OrtStatus* ORT_API_CALL create_state(OrtNodeComputeInfo* self, OrtNodeComputeContext*,
                                              void** state) noexcept {
    *state = self;  // the programs are thread-safe: no per-state data
    return nullptr;
  }
  static void ORT_API_CALL release_state(OrtNodeComputeInfo*, void*) noexcept {}

  // The NPU run, or the emulator: after a failed NPU run with fallback=allow the
  // region stays on the emulator (a broken program is never re-submitted), announced
  // once at warning level with the reason.
  std::vector<Buffer> run(const std::vector<Buffer>& inputs) {
    if (npu && !on_emulator.load() && !npu->fits(inputs)) {
      // the image holds the PARAMS and slots of one shape: this call runs on the
      // emulator; the region stays on the NPU for runs of the image's shape
      std::vector<std::vector<int64_t>> shapes;
      for (const Buffer& b : inputs) shapes.push_back(b.shape);
      const std::string got = shape_text(program->payload().inputs, shapes);
      if (fallback_error)
        throw std::runtime_error("region " + node + " was compiled for the NPU at shape " +
                                 npu->image_shape_text() + "; this run's shape " + got +
                                 " has no NPU image (provider option fallback=error)");
      std::call_once(shape_announced, [&] {
        note_fallback("region " + node + " was compiled for the NPU at shape " +
                      npu->image_shape_text() + "; a run of shape " + got);
        log(logger, ORT_LOGGING_LEVEL_WARNING,
            std::string(kEpName) + ": region " + node + " compiled for the NPU at shape " +
            npu->image_shape_text() + "; this run's shape " + got + " runs on the host emulator "
            "(fallback=allow; runs of the compiled shape stay on the NPU)");
      });
      return program->run(inputs);
    }
    if (npu && !on_emulator.load()) {
      try {
        return npu->run(inputs);
      } catch (const NpuRunError& e) {
        if (fallback_error)
          throw std::runtime_error(std::string("NPU run failed (provider option fallback=error): ") +
                                   e.what());
        on_emulator.store(true);
        std::call_once(announced, [&] {
          note_fallback("region " + node + " failed on the NPU: " + e.what());
          log(logger, ORT_LOGGING_LEVEL_WARNING,
              std::string(kEpName) + ": region " + node + " failed on the NPU and runs on the "
              "host emulator from now on (fallback=allow): " + e.what());
        });
      }
    }
    return program->run(inputs);
  }

  static OrtStatus* ORT_API_CALL compute(OrtNodeComputeInfo* self_base, void*,
                                         OrtKernelContext* ctx) noexcept {
    auto* self = static_cast<RegionCompute*>(self_base);
    XDNA_API_BEGIN
    size_t n_in = 0;
    check(g_api->KernelContext_GetInputCount(ctx, &n_in));
    if (n_in != self->in_map.size())
      throw OrtError(ORT_FAIL, "XDNA region " + self->node + ": got " + std::to_string(n_in) +
                                   " inputs, expects " + std::to_string(self->in_map.size()));
    std::vector<Buffer> inputs(n_in);
    for (size_t i = 0; i < n_in; ++i) {
      const OrtValue* v = nullptr;
      check(g_api->KernelContext_GetInput(ctx, i, &v));
      OrtTensorTypeAndShapeInfo* info = nullptr;
      check(g_api->GetTensorTypeAndShape(v, &info));
      ONNXTensorElementDataType et;
      size_t nd = 0;
      OrtStatus* st = g_api->GetTensorElementType(info, &et);
      if (st == nullptr) st = g_api->GetDimensionsCount(info, &nd);
      std::vector<int64_t> shape(nd);
      if (st == nullptr && nd > 0) st = g_api->GetDimensions(info, shape.data(), nd);
      g_api->ReleaseTensorTypeAndShapeInfo(info);
      check(st);
      const void* data = nullptr;
      check(g_api->GetTensorData(v, &data));
      inputs[self->in_map[i]] = Buffer::borrow(from_onnx(et), shape, data);
    }
    std::vector<Buffer> outs;
    try {
      outs = self->run(inputs);
    } catch (const std::exception& e) {
      // named so an application (and xdna_ep's Python session) can tell a region
      // failure from any other node's
      throw OrtError(ORT_FAIL, std::string(kEpName) + ": region " + self->node + " failed: " + e.what());
    }
    if (self->tap != 0) {
      const Payload& p = self->program->payload();
      try {
        call_tap(self->tap, self->node, p.inputs, inputs, p.outputs, outs);
      } catch (const std::exception& e) {
        throw OrtError(ORT_FAIL, std::string(kEpName) + ": region " + self->node + " failed: " + e.what());
      }
    }
    for (size_t i = 0; i < self->out_map.size(); ++i) {
      const Buffer& b = outs[self->out_map[i]];
      OrtValue* v = nullptr;
      check(g_api->KernelContext_GetOutput(ctx, i, b.shape.data(), b.shape.size(), &v));
      void* dst = nullptr;
      check(g_api->GetTensorMutableData(v, &dst));
      if (b.nbytes() > 0) std::memcpy(dst, b.ptr, b.nbytes());
    }
    XDNA_API_END
  }
};

// -- the EP ------------------------------------------------------------------------------------
struct XdnaEp : OrtEp {
  Options options;
  Backend backend;
  std::string npu_path;  // the NPU's device node when its entry was selected
  std::string probe_why;  // why the device list has no NPU entry ("" when it has one)
  const OrtLogger* logger;
  bool told_raw_model = false;
  bool claimed_any = false;
  bool told_no_device = false;
  // The NPU (device=npu|auto): opened on the first Compile, shared by the regions.
  bool npu_tried = false;
  std::shared_ptr<NpuDevice> npu;
  std::string npu_why;  // why there is no NPU

  XdnaEp(Options opts, Backend be, std::string npu, std::string probe, const OrtLogger* lg)
      : OrtEp{}, options(std::move(opts)), backend(be), npu_path(std::move(npu)),
        probe_why(std::move(probe)), logger(lg) {
    ort_version_supported = ORT_API_VERSION;
    GetName = get_name;
    GetCapability = get_capability;
    Compile = compile;
    ReleaseNodeComputeInfos = release_infos;
    OnSessionInitializationEnd = on_session_initialized;
  }

  // fallback=error: a session in which XDNA claimed nothing is refused here (ORT
  // logs, but does not fail on, an error from GetCapability).
  static OrtStatus* ORT_API_CALL on_session_initialized(OrtEp* self_base) noexcept {
    auto* self = static_cast<XdnaEp*>(self_base);
    if (self->options.fallback_error && !self->claimed_any && self->backend == Backend::kNone)
      return g_api->CreateStatus(
          ORT_FAIL,
          "XDNAExecutionProvider: nothing runs on XDNA (provider option fallback=error): no "
          "device was named, and the host emulator runs only when asked for by device=emulator");
    if (self->options.fallback_error && !self->claimed_any)
      return g_api->CreateStatus(
          ORT_FAIL,
          "XDNAExecutionProvider: this model has no XDNA EPContext nodes, so nothing would run on "
          "XDNA (provider option fallback=error). Compile it first: `xdna-ep compile MODEL.onnx -o "
          "MODEL_ctx.onnx`, then load MODEL_ctx.onnx.");
    return nullptr;
  }

  static const char* ORT_API_CALL get_name(const OrtEp*) noexcept { return kEpName; }

  static OrtStatus* ORT_API_CALL get_capability(OrtEp* self_base, const OrtGraph* graph,
                                                OrtEpGraphSupportInfo* info) noexcept {
    auto* self = static_cast<XdnaEp*>(self_base);
    XDNA_API_BEGIN
    if (self->backend == Backend::kNone) {
      if (!self->told_no_device) {
        self->told_no_device = true;
        log(self->logger, ORT_LOGGING_LEVEL_WARNING,
            "XDNAExecutionProvider was selected without the provider option 'device' (e.g. by a "
            "device-selection policy such as PREFER_NPU) and without its NPU entry (there is "
            "none on this machine, or it was not selected). Its device here is the host "
            "emulator, which is not an NPU, so it claims no node; to run on the emulator, select "
            "it with add_provider_for_devices(devices, {\"device\": \"emulator\"}).");
      }
      return nullptr;
    }
    size_t n = 0;
    check(g_api->Graph_GetNumNodes(graph, &n));
    std::vector<const OrtNode*> nodes(n);
    if (n > 0) check(g_api->Graph_GetNodes(graph, nodes.data(), n));
    size_t claimed = 0;
    for (const OrtNode* node : nodes) {
      if (!is_our_epcontext(node)) continue;
      OrtNodeFusionOptions fusion{};
      fusion.ort_version_supported = ORT_API_VERSION;
      // an EPContext input may be a constant initializer (e.g. a mask constant the
      // region reads): kept as a fused-node input, ORT hands it to compute like any
      // other input, and the program's input slots match the node's
      fusion.drop_constant_initializers = false;
      check(g_ep->EpGraphSupportInfo_AddNodesToFuse(info, &node, 1, &fusion));
      ++claimed;
    }
    const OrtNode* parent = nullptr;
    check(g_api->Graph_GetParentNode(graph, &parent));
    self->claimed_any = self->claimed_any || claimed > 0;
    if (claimed == 0 && parent == nullptr && !self->told_raw_model && !self->options.fallback_error) {
      self->told_raw_model = true;
      log(self->logger, ORT_LOGGING_LEVEL_WARNING,
          "XDNAExecutionProvider: this model has no XDNA EPContext nodes; every node runs on "
          "CPUExecutionProvider. Compile it with `xdna-ep compile MODEL.onnx -o MODEL_ctx.onnx` "
          "and load MODEL_ctx.onnx to run its regions on XDNA.");
    }
    XDNA_API_END
  }

  static OrtStatus* ORT_API_CALL compile(OrtEp* self_base, const OrtGraph** graphs,
                                         const OrtNode** fused_nodes, size_t count,
                                         OrtNodeComputeInfo** infos, OrtNode** ep_context_nodes) noexcept {
    auto* self = static_cast<XdnaEp*>(self_base);
    (void)ep_context_nodes;  // already an EPContext model: nothing to write back
    for (size_t i = 0; i < count; ++i) infos[i] = nullptr;
    XDNA_API_BEGIN
    size_t on_npu = 0;
    for (size_t i = 0; i < count; ++i) {
      size_t n = 0;
      check(g_api->Graph_GetNumNodes(graphs[i], &n));
      if (n != 1) throw OrtError(ORT_FAIL, "XDNAExecutionProvider: expected one EPContext node per fused graph");
      const OrtNode* node = nullptr;
      check(g_api->Graph_GetNodes(graphs[i], &node, 1));
      const std::string where = "EPContext node '" + node_name(node) + "'";
      const int64_t embed = int_attr(node, "embed_mode", 1);
      std::string ctx;
      if (!string_attr(node, "ep_cache_context", ctx))
        throw PayloadError(where + " has no ep_cache_context attribute");
      std::vector<uint8_t> bytes;
      if (embed == 1) {
        bytes.assign(ctx.begin(), ctx.end());
      } else if (embed == 0) {
        const ORTCHAR_T* model_path = nullptr;
        check(g_api->Graph_GetModelPath(graphs[i], &model_path));
        bytes = read_side_file(model_path ? model_path : "", ctx, where);
      } else {
        throw PayloadError(where + ": embed_mode must be 0 or 1, got " + std::to_string(embed));
      }
      Payload payload;
      try {
        payload = parse_payload(bytes.data(), bytes.size());
      } catch (const PayloadError& e) {
        throw PayloadError(where + ": " + e.what());
      }
      std::vector<size_t> in_map = slot_map(io_names(fused_nodes[i], false), io_names(node, false),
                                            payload.inputs.size(), where, "inputs");
      std::vector<size_t> out_map = slot_map(io_names(fused_nodes[i], true), io_names(node, true),
                                             payload.outputs.size(), where, "outputs", true);
      std::shared_ptr<const Program> program;
      try {
        program = std::make_shared<const Program>(std::move(payload));
      } catch (const UnsupportedStage& e) {
        throw UnsupportedStage(where + ": " + e.what());
      }
      auto rc = std::make_unique<RegionCompute>(std::move(program), node_name(node), std::move(in_map),
                                                std::move(out_map));
      rc->fallback_error = self->options.fallback_error;
      rc->tap = self->options.tap;
      rc->logger = self->logger;
      if (self->wants_npu()) {
        try {
          rc->npu = std::make_unique<const NpuProgram>(rc->program->payload(), self->npu);
          ++on_npu;
        } catch (const NpuUnavailable& e) {
          if (self->options.fallback_error)
            throw OrtError(ORT_FAIL, std::string(kEpName) + ": " + where + " cannot run on the NPU "
                           "(provider option fallback=error): " + e.what());
          note_fallback(where + " cannot run on the NPU: " + e.what());
          log(self->logger, ORT_LOGGING_LEVEL_WARNING,
              std::string(kEpName) + ": " + where + " runs on the host emulator, not the NPU "
              "(fallback=allow): " + e.what());
        }
      }
      infos[i] = rc.release();
    }
    log(self->logger, ORT_LOGGING_LEVEL_INFO,
        "XDNAExecutionProvider: " + std::to_string(count) + " EPContext region(s) compiled: " +
        std::to_string(on_npu) + " on the NPU, " + std::to_string(count - on_npu) +
        " on the host emulator (C++ kernels; speed is CPU speed)");
    XDNA_API_END
  }

  // Whether regions go to the NPU: device=npu|auto with the backend loaded and a
  // device open. Opened once per EP; device=npu without it is an error, auto falls
  // back to the emulator with one warning.
  bool wants_npu() {
    if (backend != Backend::kNpu) return false;
    if (!npu_tried) {
      npu_tried = true;
      npu = open_npu_device(&npu_why);
      if (npu == nullptr && !probe_why.empty()) npu_why += "; the device probe: " + probe_why;
      if (npu == nullptr && options.device == "auto")
        log(logger, ORT_LOGGING_LEVEL_WARNING,
            std::string(kEpName) + ": device=auto: no NPU (" + npu_why +
            "); regions run on the host emulator (C++ kernels; speed is CPU speed)");
    }
    if (npu == nullptr && options.device == "npu")
      throw OrtError(ORT_FAIL, std::string(kEpName) + ": device=npu, but the NPU is unavailable: " +
                     npu_why);
    return npu != nullptr;
  }

  static void ORT_API_CALL release_infos(OrtEp*, OrtNodeComputeInfo** infos, size_t n) noexcept {
    for (size_t i = 0; i < n; ++i) delete static_cast<RegionCompute*>(infos[i]);
  }
};

// -- the factory -------------------------------------------------------------------------------
constexpr const char* kBackendKey = "backend";

// A key's value in ORT key-value pairs ("" when absent).
std::string kv_get(const OrtKeyValuePairs* kv, const char* key) {
  if (kv == nullptr) return "";
  const char* v = g_api->GetKeyValue(kv, key);
  return v ? v : "";
}

// Owns the OrtKeyValuePairs it creates.
struct KeyValues {
  OrtKeyValuePairs* kv = nullptr;
  KeyValues() { g_api->CreateKeyValuePairs(&kv); }
  ~KeyValues() { g_api->ReleaseKeyValuePairs(kv); }
  KeyValues(const KeyValues&) = delete;
  KeyValues& operator=(const KeyValues&) = delete;
  void add(const char* k, const std::string& v) { g_api->AddKeyValuePair(kv, k, v.c_str()); }
};

struct XdnaFactory : OrtEpFactory {
  const OrtLogger* default_logger;
  // The NPU probe's answer, taken once when ORT first asks for devices: the device
  // list is fixed for the registration, so CreateEp must agree with it.
  bool probed = false;
  NpuProbeResult npu;
  // The NPU hardware device this factory created (ORT did not list one); its
  // OrtEpDevice points at it, so it lives as long as the factory.
  OrtHardwareDevice* own_npu_device = nullptr;

  explicit XdnaFactory(const OrtLogger* lg) : OrtEpFactory{}, default_logger(lg) {
    ort_version_supported = ORT_API_VERSION;
    GetName = get_name;
    GetVendor = get_vendor;
    GetVendorId = get_vendor_id;
    GetVersion = get_version;
    GetSupportedDevices = get_supported_devices;
    CreateEp = create_ep;
    ReleaseEp = release_ep;
    CreateAllocator = create_allocator;
    ReleaseAllocator = release_allocator;
    CreateDataTransfer = create_data_transfer;
    IsStreamAware = is_stream_aware;
    CreateSyncStreamForDevice = create_sync_stream;
  }
  ~XdnaFactory() {
    if (own_npu_device != nullptr) g_ep->ReleaseHardwareDevice(own_npu_device);
  }
  XdnaFactory(const XdnaFactory&) = delete;
  XdnaFactory& operator=(const XdnaFactory&) = delete;

  static const char* ORT_API_CALL get_name(const OrtEpFactory*) noexcept { return kEpName; }
  static const char* ORT_API_CALL get_vendor(const OrtEpFactory*) noexcept { return kVendor; }
  static uint32_t ORT_API_CALL get_vendor_id(const OrtEpFactory*) noexcept { return kAmdVendorId; }
  static const char* ORT_API_CALL get_version(const OrtEpFactory*) noexcept { return kVersion; }

  void probe_once() {
    if (probed) return;
    probed = true;
    npu = probe_npu(NpuProbeRoots::from_env());
    if (!npu.usable())  // a machine without an NPU is normal: info, not an error
      log(default_logger, ORT_LOGGING_LEVEL_INFO,
          "XDNAExecutionProvider: no NPU entry in the device list: " + npu.reason() +
              ". The host emulator entry (a CPU device) is listed.");
  }

  std::string driver_text() const {
    return npu.driver_version.empty() ? "amdxdna" : "amdxdna " + npu.driver_version;
  }

  // ORT's own NPU hardware device for the probed NPU (AMD, same PCI device id), or
  // one this factory creates (Linux ONNX Runtime does not discover NPUs).
  const OrtHardwareDevice* npu_hardware_device(const OrtHardwareDevice* const* devices, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      if (g_api->HardwareDevice_Type(devices[i]) == OrtHardwareDeviceType_NPU &&
          g_api->HardwareDevice_VendorId(devices[i]) == kAmdPciVendorId &&
          g_api->HardwareDevice_DeviceId(devices[i]) == npu.device.device_id)
        return devices[i];
    }
    if (own_npu_device == nullptr) {
      KeyValues meta;
      meta.add("device_node", npu.device.path);
      meta.add("driver", driver_text());
      meta.add("firmware", npu.device.firmware.empty() ? "unknown" : npu.device.firmware);
      meta.add("board", npu.device.vbnv.empty() ? "unknown" : npu.device.vbnv);
      meta.add("discovered_by", kEpName);
      check(g_ep->CreateHardwareDevice(OrtHardwareDeviceType_NPU, kAmdPciVendorId, npu.device.device_id,
                                       kVendor, meta.kv, &own_npu_device));
    }
    return own_npu_device;
  }

  static OrtEpDevice* make_ep_device(OrtEpFactory* self, const OrtHardwareDevice* hw, const KeyValues& meta) {
    // No default ep_options on either entry: CreateEp tells the NPU entry by its
    // metadata, and a policy must not turn the emulator on (options.h, device_given).
    OrtEpDevice* dev = nullptr;
    check(g_ep->CreateEpDevice(self, hw, meta.kv, nullptr, &dev));
    return dev;
  }

  static OrtStatus* ORT_API_CALL get_supported_devices(OrtEpFactory* self_base, const OrtHardwareDevice* const* devices,
                                                       size_t num_devices, OrtEpDevice** ep_devices,
                                                       size_t max_ep_devices, size_t* num_ep_devices) noexcept {
    auto* self = static_cast<XdnaFactory*>(self_base);
    *num_ep_devices = 0;
    XDNA_API_BEGIN
    self->probe_once();
    if (self->npu.usable() && *num_ep_devices < max_ep_devices) {
      const OrtHardwareDevice* hw = self->npu_hardware_device(devices, num_devices);
      KeyValues meta;
      meta.add(kBackendKey, "npu");
      meta.add("device_node", self->npu.device.path);
      meta.add("driver", self->driver_text());
      meta.add("firmware", self->npu.device.firmware.empty() ? "unknown" : self->npu.device.firmware);
      meta.add("board", self->npu.device.vbnv.empty() ? "unknown" : self->npu.device.vbnv);
      ep_devices[(*num_ep_devices)++] = make_ep_device(self, hw, meta);
    }
    for (size_t i = 0; i < num_devices && *num_ep_devices < max_ep_devices; ++i) {
      if (g_api->HardwareDevice_Type(devices[i]) != OrtHardwareDeviceType_CPU) continue;
      // The host emulator: the NPU kernels' arithmetic on this CPU. Never an NPU device.
      KeyValues meta;
      meta.add(kBackendKey, "emulator");
      meta.add("driver", "none (host CPU)");
      meta.add("threads", std::to_string(xdna::num_threads()));
      ep_devices[(*num_ep_devices)++] = make_ep_device(self, devices[i], meta);
      break;  // one emulator entry, on the first CPU device
    }
    XDNA_API_END
  }

  // ORT passes the hardware devices and ep_metadata of the OrtEpDevices selected for
  // the session (PREFER_NPU: our NPU entry and our emulator entry together).
  static OrtStatus* ORT_API_CALL create_ep(OrtEpFactory* self_base, const OrtHardwareDevice* const*,
                                           const OrtKeyValuePairs* const* ep_metadata, size_t num_devices,
                                           const OrtSessionOptions* session_options,
                                           const OrtLogger* logger, OrtEp** ep) noexcept {
    auto* self = static_cast<XdnaFactory*>(self_base);
    *ep = nullptr;
    XDNA_API_BEGIN
    if (num_devices == 0)
      throw OrtError(ORT_INVALID_ARGUMENT, "XDNAExecutionProvider: created for no device");
    DeviceSelection sel;
    sel.npu_listed = self->probed && self->npu.usable();
    sel.no_npu_reason = self->npu.reason();
    std::string selected;  // e.g. "npu, emulator" (PREFER_NPU)
    for (size_t i = 0; i < num_devices; ++i) {
      const std::string backend = kv_get(ep_metadata[i], kBackendKey);
      selected += (selected.empty() ? "" : ", ") + (backend.empty() ? std::string("?") : backend);
      if (backend != "npu") continue;
      sel.npu_selected = true;
      sel.npu_path = kv_get(ep_metadata[i], "device_node");
    }
    OrtKeyValuePairs* entries = nullptr;
    check(g_api->GetSessionOptionsConfigEntries(session_options, &entries));
    const char* const* keys = nullptr;
    const char* const* values = nullptr;
    size_t n = 0;
    g_api->GetKeyValuePairs(entries, &keys, &values, &n);
    std::vector<std::pair<std::string, std::string>> kv;
    for (size_t i = 0; i < n; ++i) kv.emplace_back(keys[i], values[i]);
    g_api->ReleaseKeyValuePairs(entries);
    Options options = parse_options(kv);
    if (options.tap != 0 && !tap_registered(options.tap))
      throw OrtError(ORT_INVALID_ARGUMENT, "XDNAExecutionProvider: option tap=" +
                                               std::to_string(options.tap) + " is not a registered tap");
    BackendChoice choice = resolve_backend(options, sel);
    if (options.num_threads > 0) xdna::set_num_threads(options.num_threads);
    for (const std::string& note : options.notes) log(logger, ORT_LOGGING_LEVEL_INFO, note);
    log(logger, ORT_LOGGING_LEVEL_INFO, "XDNAExecutionProvider: created for " + std::to_string(num_devices) +
                                            " device(s) [" + selected + "]");
    if (!choice.note.empty()) log(logger, ORT_LOGGING_LEVEL_INFO, choice.note);
    // the NPU entry picked by a policy (no device option) runs as device=npu
    if (choice.backend == Backend::kNpu && !options.device_given) options.device = "npu";
    auto made = std::make_unique<XdnaEp>(std::move(options), choice.backend, sel.npu_path,
                                         sel.npu_listed ? std::string() : sel.no_npu_reason, logger);
    // device=npu names a device that must be there: refused now, not at the first region
    if (made->options.device == "npu") made->wants_npu();
    *ep = made.release();
    XDNA_API_END
  }

  static void ORT_API_CALL release_ep(OrtEpFactory*, OrtEp* ep) noexcept { delete static_cast<XdnaEp*>(ep); }

  // Host memory only: ORT's CPU allocator and no data transfer or streams.
  static OrtStatus* ORT_API_CALL create_allocator(OrtEpFactory*, const OrtMemoryInfo*,
                                                  const OrtKeyValuePairs*, OrtAllocator** out) noexcept {
    *out = nullptr;
    return nullptr;
  }
  static void ORT_API_CALL release_allocator(OrtEpFactory*, OrtAllocator*) noexcept {}
  static OrtStatus* ORT_API_CALL create_data_transfer(OrtEpFactory*, OrtDataTransferImpl** out) noexcept {
    *out = nullptr;
    return nullptr;
  }
  static bool ORT_API_CALL is_stream_aware(const OrtEpFactory*) noexcept { return false; }
  static OrtStatus* ORT_API_CALL create_sync_stream(OrtEpFactory*, const OrtMemoryDevice*,
                                                    const OrtKeyValuePairs*, OrtSyncStreamImpl** out) noexcept {
    *out = nullptr;
    return nullptr;
  }
};

}  // namespace
}  // namespace xdna::ep

XDNA_EXPORT OrtStatus* CreateEpFactories(const char* /*registered_name*/, const OrtApiBase* api_base,
                                         const OrtLogger* default_logger, OrtEpFactory** factories,
                                         size_t max_factories, size_t* num_factories) {
  using namespace xdna::ep;
  *num_factories = 0;
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (api == nullptr) return nullptr;  // runtime older than API 29: no factory (ORT reports none)
  g_api = api;
  g_ep = api->GetEpApi();
  if (max_factories < 1)
    return api->CreateStatus(ORT_INVALID_ARGUMENT, "XDNAExecutionProvider: no room for its factory");
  factories[0] = new XdnaFactory(default_logger);
  *num_factories = 1;
  return nullptr;
}

// How many regions of this process fell back from the NPU to the emulator so far;
// the latest reason goes to `reason` (may be null), cut to `len` - 1 bytes.
XDNA_EXPORT uint64_t XdnaEpNpuFallbacks(char* reason, size_t len) {
  using namespace xdna::ep;
  std::lock_guard<std::mutex> lock(g_fallback_mutex);
  if (reason != nullptr && len > 0) {
    const size_t n = g_fallback_reason.size() < len - 1 ? g_fallback_reason.size() : len - 1;
    std::memcpy(reason, g_fallback_reason.data(), n);
    reason[n] = '\0';
  }
  return g_npu_fallbacks.load();
}

XDNA_EXPORT OrtStatus* ReleaseEpFactory(OrtEpFactory* factory) {
  delete static_cast<xdna::ep::XdnaFactory*>(factory);
  return nullptr;
}
