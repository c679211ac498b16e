#include "cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#define XDNA_X86 1
#endif

namespace xdna {
namespace {

#ifdef XDNA_X86
bool cpu_has_amx() {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool tile = d & (1u << 24), int8 = d & (1u << 25);
  if (!(tile && int8)) return false;
#if defined(__linux__)
  // Linux hands out AMX tile state only on request (ARCH_REQ_XCOMP_PERM).
  constexpr int kArchReqXcompPerm = 0x1023;
  constexpr int kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}
#endif

bool detect(Isa isa) {
  switch (isa) {
    case Isa::kPortable:
      return true;
#ifdef XDNA_X86
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::kAvx512Vnni:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    case Isa::kAmx: {
      static const bool amx = cpu_has_amx();
      return amx && detect(Isa::kAvx512Vnni);
    }
#endif
    default:
      return false;
  }
}

Isa best_supported() {
  Isa best = Isa::kPortable;
  for (Isa isa : supported_isas()) best = isa;
  return best;
}

Isa initial_isa() {
  const char* env = std::getenv("XDNA_EP_KERNEL_PATH");
  if (!env || std::string(env).empty() || std::string(env) == "auto") return best_supported();
  Isa isa = isa_from_name(env);
  if (!detect(isa))
    throw std::runtime_error(std::string("XDNA_EP_KERNEL_PATH=") + env +
                             " but this CPU cannot run that path");
  return isa;
}

std::atomic<int>& active() {
  static std::atomic<int> a(static_cast<int>(initial_isa()));
  return a;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kPortable: return "portable";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512Vnni: return "avx512_vnni";
    case Isa::kAmx: return "amx";
  }
  return "unknown";
}

Isa isa_from_name(const std::string& name) {
  for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512Vnni, Isa::kAmx})
    if (name == isa_name(isa)) return isa;
  throw std::invalid_argument("unknown kernel path '" + name +
                              "' (valid: portable, avx2, avx512_vnni, amx, auto)");
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512Vnni, Isa::kAmx})
    if (detect(isa)) out.push_back(isa);
  return out;
}

bool isa_supported(Isa isa) { return detect(isa); }

Isa active_isa() { return static_cast<Isa>(active().load()); }

void set_active_isa(Isa isa) {
  if (!detect(isa))
    throw std::runtime_error(std::string("kernel path '") + isa_name(isa) +
                             "' is not supported by this CPU");
  active().store(static_cast<int>(isa));
}

}  // namespace xdna
