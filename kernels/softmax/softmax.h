// Softmax arithmetic contract (host emulator AND aie/softmax_aie.cc include this).
//
// Why fixed point: the probabilities must be the same bytes on every host SIMD
// path, in the numpy reference and on the NPU. Floating-point exp/sum/divide
// would depend on vector width and summation order; integer arithmetic does
// not (integer sums are exact in any order). See README.md for the byte-level
// contract and measured error bounds.
//
// Pipeline of one row of n scores s_j (int8 for the softmax kernel, the exact
// int32 Q.K accumulators for attention):
//   1. logit   z_j = clamp((s_j * m + 2^(e-1)) >> e, +-kLogitLimit)
//                    + mask_logit(mask_j)             (units: 2^-8 of log2)
//      (m, e) = make_requant(real_scale * 256 * log2(e)) computed on the host;
//      excluded entries (causal, mask NaN / <= -1e4) get z_j = kExcludedLogit.
//   2. zmax = max_j z_j; a row whose zmax is kExcludedLogit is all zeros.
//   3. E_j  = kExpTable[d & 255] >> (d >> 8), d = zmax - z_j  (0 once d>>8 > 24)
//      i.e. E_j ~ 2^24 * 2^(-d/256) = 2^24 * exp(logit_j - logit_max).
//   4. S = sum_j E_j (uint64, exact); L = bit length of S; K = L + 7;
//      r = floor(127 * 2^K / S)  (in (127*2^7, 127*2^8], fits int16)
//   5. p_j = (E_j * r + 2^(K-1)) >> K        (int64 product; p_j in 0..127)
#pragma once
#include <cmath>
#include <cstdint>

#include "../common/epilogue.h"

namespace xdna {
namespace softmax {

constexpr int kFracBits = 8;         // logit fixed point: 2^-8 of a log2 unit
constexpr int kExpOne = 24;          // kExpTable[0] = 2^24
constexpr int kMaxShift = 24;        // d >> 8 above this -> E = 0
constexpr int kRecipExtraBits = 7;   // K = bitlen(S) + 7 -> r fits in int16
constexpr int32_t kLogitLimit = int32_t{1} << 27;
constexpr int32_t kExcludedLogit = -(int32_t{1} << 30);  // far below any real logit
constexpr float kMaskExclude = -1.0e4f;     // mask <= this (or NaN) excludes the entry
constexpr float kMaskLimit = 1.0e4f;        // positive mask values are clamped here
constexpr float kMaskToFixed = 369.329925537109375f;  // fp32(256 * log2(e))
constexpr int kProbMax = 127;               // probabilities in 0..127, scale 1/127

// kExpTable[f] = round_half_even(2^(24 - f/256)), f = 0..255 (no entry is
// within 1e-4 of a tie, so any correctly rounded generator gives these).
alignas(64) inline constexpr uint32_t kExpTable[256] = {
    16777216u, 16731851u, 16686609u, 16641490u, 16596492u, 16551616u, 16506861u, 16462228u,
    16417715u, 16373322u, 16329050u, 16284897u, 16240863u, 16196949u, 16153153u, 16109476u,
    16065917u, 16022476u, 15979152u, 15935945u, 15892855u, 15849882u, 15807025u, 15764283u,
    15721658u, 15679147u, 15636752u, 15594471u, 15552304u, 15510252u, 15468313u, 15426487u,
    15384775u, 15343175u, 15301688u, 15260313u, 15219050u, 15177899u, 15136859u, 15095929u,
    15055111u, 15014403u, 14973805u, 14933316u, 14892937u, 14852668u, 14812507u, 14772455u,
    14732511u, 14692675u, 14652947u, 14613326u, 14573813u, 14534406u, 14495106u, 14455912u,
    14416824u, 14377841u, 14338964u, 14300193u, 14261526u, 14222963u, 14184505u, 14146151u,
    14107901u, 14069754u, 14031710u, 13993769u, 13955931u, 13918195u, 13880561u, 13843028u,
    13805598u, 13768268u, 13731039u, 13693911u, 13656884u, 13619956u, 13583129u, 13546401u,
    13509772u, 13473242u, 13436812u, 13400479u, 13364245u, 13328109u, 13292070u, 13256129u,
    13220286u, 13184539u, 13148888u, 13113335u, 13077877u, 13042515u, 13007249u, 12972078u,
    12937002u, 12902021u, 12867135u, 12832343u, 12797645u, 12763041u, 12728530u, 12694113u,
    12659789u, 12625557u, 12591419u, 12557372u, 12523418u, 12489555u, 12455784u, 12422104u,
    12388516u, 12355018u, 12321610u, 12288294u, 12255067u, 12221930u, 12188882u, 12155924u,
    12123055u, 12090275u, 12057584u, 12024981u, 11992466u, 11960039u, 11927700u, 11895448u,
    11863283u, 11831206u, 11799215u, 11767310u, 11735492u, 11703760u, 11672114u, 11640553u,
    11609078u, 11577687u, 11546382u, 11515161u, 11484025u, 11452973u, 11422004u, 11391120u,
    11360319u, 11329601u, 11298967u, 11268415u, 11237946u, 11207559u, 11177254u, 11147032u,
    11116891u, 11086831u, 11056853u, 11026956u, 10997140u, 10967404u, 10937749u, 10908174u,
    10878679u, 10849263u, 10819928u, 10790671u, 10761494u, 10732395u, 10703375u, 10674434u,
    10645571u, 10616786u, 10588079u, 10559449u, 10530897u, 10502422u, 10474024u, 10445703u,
    10417458u, 10389290u, 10361198u, 10333182u, 10305242u, 10277377u, 10249587u, 10221873u,
    10194234u, 10166669u, 10139179u, 10111763u, 10084422u, 10057154u, 10029960u, 10002839u,
    9975792u, 9948818u, 9921917u, 9895089u, 9868333u, 9841650u, 9815039u, 9788499u,
    9762032u, 9735636u, 9709311u, 9683058u, 9656875u, 9630764u, 9604722u, 9578752u,
    9552851u, 9527021u, 9501261u, 9475570u, 9449948u, 9424396u, 9398913u, 9373499u,
    9348154u, 9322877u, 9297668u, 9272528u, 9247455u, 9222451u, 9197514u, 9172644u,
    9147842u, 9123107u, 9098438u, 9073837u, 9049301u, 9024833u, 9000430u, 8976093u,
    8951823u, 8927617u, 8903477u, 8879403u, 8855394u, 8831449u, 8807569u, 8783754u,
    8760003u, 8736317u, 8712694u, 8689136u, 8665641u, 8642209u, 8618841u, 8595536u,
    8572295u, 8549116u, 8525999u, 8502945u, 8479954u, 8457025u, 8434157u, 8411352u,
};

// Step 1a: score -> fixed-point logit (int64 product, round half up, clamp).
inline int32_t score_logit(int32_t s, Requant rq) {
  const int64_t p = static_cast<int64_t>(s) * rq.multiplier;
  int64_t v = (p + (int64_t{1} << (rq.shift - 1))) >> rq.shift;
  if (v > kLogitLimit) v = kLogitLimit;
  if (v < -kLogitLimit) v = -kLogitLimit;
  return static_cast<int32_t>(v);
}

// Step 1b: additive float mask -> fixed-point logit offset, or kExcludedLogit.
// fp32 multiply then round half to even (-ffp-contract=off keeps it exact).
inline int32_t mask_logit(float m) {
  if (!(m > kMaskExclude)) return kExcludedLogit;  // NaN, -inf, <= -1e4
  const float c = m < kMaskLimit ? m : kMaskLimit;
  return static_cast<int32_t>(std::nearbyint(c * kMaskToFixed));
}

// Combines a score logit with a mask offset (either may exclude the entry).
inline int32_t add_mask(int32_t z, int32_t mz) {
  return mz == kExcludedLogit ? kExcludedLogit : z + mz;
}

// Step 3: the exp term of a non-negative difference d = zmax - z.
inline uint32_t exp_term(int32_t d) {
  const int32_t k = d >> kFracBits;
  return k > kMaxShift ? 0u : (kExpTable[d & 255] >> k);
}

// Step 4: reciprocal of the row sum. S >= 2^24 whenever the row has an entry.
struct Recip {
  int64_t r;  // floor(127 * 2^K / S)
  int shift;  // K
};
inline int bit_length(uint64_t v) {
  int n = 0;
  while (v) {
    ++n;
    v >>= 1;
  }
  return n;
}
inline Recip row_recip(uint64_t sum) {
  const int k = bit_length(sum) + kRecipExtraBits;
  return Recip{static_cast<int64_t>((static_cast<uint64_t>(kProbMax) << k) / sum), k};
}

// Step 5: one probability.
inline int8_t normalize(uint32_t e, Recip rc) {
  const int64_t v = (static_cast<int64_t>(e) * rc.r + (int64_t{1} << (rc.shift - 1))) >> rc.shift;
  return static_cast<int8_t>(v > kProbMax ? kProbMax : v);
}

// Steps 2-5 over a row of logits z[0..n) (already masked). `work` (n entries)
// receives the exp terms. Writes p[0..n).
inline void normalize_row(const int32_t* z, int n, uint32_t* work, int8_t* p) {
  int32_t zmax = kExcludedLogit;
  for (int j = 0; j < n; ++j) zmax = z[j] > zmax ? z[j] : zmax;
  if (zmax == kExcludedLogit) {  // every entry excluded: defined as all zeros
    for (int j = 0; j < n; ++j) p[j] = 0;
    return;
  }
  uint64_t sum = 0;
  for (int j = 0; j < n; ++j) {
    const uint32_t e = exp_term(zmax - z[j]);
    work[j] = e;
    sum += e;
  }
  const Recip rc = row_recip(sum);
  for (int j = 0; j < n; ++j) p[j] = normalize(work[j], rc);
}

}  // namespace softmax
}  // namespace xdna
