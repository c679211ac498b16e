// The C ABI of libxdna_ep_npu.so, the plugin's native NPU backend (provider/npu/).
//
// Why a separate library behind a C ABI: the plugin (libxdna_ep_provider.so) never
// links XRT, so the package builds and runs unchanged on machines without it; the
// plugin dlopens this library on first use of the NPU (provider/npu_backend.cc).
// Plain C types only: the two libraries may be built by different compilers.
//
// Every call that can fail returns nullptr / a non-zero status and leaves the
// reason in xdna_npu_last_error() (thread-local, valid until the thread's next call).
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define XDNA_NPU_ABI_VERSION 1u

// Status of xdna_npu_run.
#define XDNA_NPU_OK 0
#define XDNA_NPU_REFUSED 1  // nothing was submitted (bad call, allocation/upload failure)
#define XDNA_NPU_BROKEN 2   // a command failed: the device state is unknown, the program
                            // refuses every later run

// One launch of a program: the design's files and the bytes of its NPU image
// (docs/EPCONTEXT.md, version 2). The backend copies everything it keeps.
typedef struct XdnaNpuLaunch {
  const char* design;      // manifest design name
  const char* kernels;     // its stages' kernels, ", " separated (for messages)
  const char* xclbin;      // file name from the manifest (absolute, or found in the dirs)
  const char* insts;       // instruction file name (".txt": hex words, else raw LE uint32)
  const char* xrt_kernel;  // kernel name inside the xclbin ("MLIR_AIE")
  const uint8_t* weights;
  size_t weights_size;
  const uint8_t* params;
  size_t params_size;
  size_t in_size;
  size_t out_size;
  int zero_out;            // OUT starts zeroed (a fused design's private scratch)
} XdnaNpuLaunch;

typedef uint32_t (*XdnaNpuAbiVersionFn)(void);
typedef void* (*XdnaNpuOpenFn)(unsigned int device_index, uint32_t timeout_ms);
typedef void* (*XdnaNpuLoadFn)(void* device, const char* program, const XdnaNpuLaunch* launches,
                               size_t n_launches, const char* const* search_dirs, size_t n_dirs);
typedef int (*XdnaNpuRunFn)(void* program, size_t launch, const uint8_t* in, size_t in_size,
                            uint8_t* out, size_t out_size);
typedef void (*XdnaNpuReleaseFn)(void* handle);
typedef const char* (*XdnaNpuLastErrorFn)(void);

uint32_t xdna_npu_abi_version(void);
// Opens NPU `device_index`; commands time out after `timeout_ms`.
void* xdna_npu_open(unsigned int device_index, uint32_t timeout_ms);
// Registers the designs (once per device), uploads every launch's WEIGHTS.
void* xdna_npu_load(void* device, const char* program, const XdnaNpuLaunch* launches,
                    size_t n_launches, const char* const* search_dirs, size_t n_dirs);
// One launch: IN (in_size bytes) up, PARAMS up, run, OUT (out_size bytes) back.
int xdna_npu_run(void* program, size_t launch, const uint8_t* in, size_t in_size, uint8_t* out,
                 size_t out_size);
void xdna_npu_unload(void* program);
void xdna_npu_close(void* device);  // after every program of it is unloaded
const char* xdna_npu_last_error(void);

#ifdef __cplusplus
}
#endif
