// Run-time choice of the emulator's instruction-set path. Nothing is compiled
// with -march=native: each ISA-specific translation unit (*_avx2.cpp,
// *_avx512.cpp, *_amx.cpp) gets its own target flags and is only entered when
// the running CPU (and OS, for AMX tiles) supports it.
#pragma once
#include <string>
#include <vector>

namespace xdna {

enum class Isa { kPortable = 0, kAvx2 = 1, kAvx512Vnni = 2, kAmx = 3 };

const char* isa_name(Isa isa);
Isa isa_from_name(const std::string& name);  // throws std::invalid_argument

// Paths the running CPU can execute, portable first.
std::vector<Isa> supported_isas();
bool isa_supported(Isa isa);

// The path kernels use now. Initialised from env XDNA_EP_KERNEL_PATH
// (portable|avx2|avx512_vnni|amx|auto, default auto = best supported).
Isa active_isa();
// Forces a path; throws std::runtime_error naming the missing CPU feature.
void set_active_isa(Isa isa);

}  // namespace xdna
