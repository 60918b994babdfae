#include "sim/length_sampler.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace spillway::sim {
namespace {

// Quantiles 0/400, 1/400, ..., 400/400 of ContextTokens and GeneratedTokens in
// AzureLLMInferenceTrace_conv.csv (19,366 rows; order statistics linearly interpolated,
// rounded). Regenerate with the script in docs/sim/workload.md.
constexpr std::array<std::int32_t, 401> kConvPromptQuantiles = {
    2,    10,   17,   23,   29,   42,   58,   91,   91,   120,  120,  128,  161,  167,  174,  181,
    181,  181,  181,  181,  181,  181,  181,  182,  191,  194,  194,  197,  197,  200,  200,  200,
    201,  203,  203,  203,  203,  206,  206,  206,  207,  209,  209,  210,  212,  213,  215,  218,
    222,  228,  235,  237,  242,  247,  298,  309,  317,  328,  369,  371,  372,  373,  373,  374,
    375,  375,  376,  377,  378,  379,  379,  380,  381,  382,  382,  383,  384,  385,  385,  386,
    387,  388,  388,  389,  390,  390,  391,  391,  392,  392,  393,  393,  394,  394,  394,  395,
    395,  395,  396,  396,  396,  397,  397,  397,  398,  398,  398,  399,  399,  399,  400,  400,
    400,  401,  401,  401,  402,  402,  402,  403,  403,  404,  404,  404,  405,  405,  406,  406,
    406,  407,  407,  408,  408,  409,  409,  410,  411,  411,  412,  413,  414,  415,  417,  418,
    419,  420,  421,  422,  424,  426,  428,  431,  433,  436,  440,  448,  456,  466,  530,  645,
    703,  746,  791,  835,  863,  877,  884,  895,  903,  912,  922,  935,  946,  955,  960,  966,
    972,  976,  979,  982,  984,  986,  989,  992,  994,  996,  998,  1000, 1002, 1004, 1005, 1007,
    1009, 1010, 1012, 1013, 1014, 1016, 1018, 1019, 1020, 1021, 1023, 1024, 1025, 1027, 1028, 1029,
    1031, 1032, 1034, 1035, 1036, 1037, 1039, 1040, 1041, 1042, 1043, 1044, 1045, 1047, 1048, 1049,
    1050, 1052, 1053, 1054, 1055, 1056, 1058, 1059, 1060, 1062, 1063, 1064, 1065, 1066, 1068, 1069,
    1071, 1072, 1073, 1074, 1076, 1077, 1078, 1080, 1081, 1082, 1083, 1085, 1086, 1087, 1089, 1090,
    1092, 1093, 1094, 1095, 1097, 1099, 1100, 1101, 1102, 1104, 1106, 1108, 1109, 1111, 1112, 1114,
    1116, 1117, 1118, 1120, 1122, 1124, 1126, 1128, 1130, 1132, 1135, 1136, 1139, 1140, 1143, 1146,
    1147, 1150, 1153, 1156, 1159, 1162, 1165, 1168, 1171, 1176, 1181, 1184, 1189, 1194, 1201, 1207,
    1214, 1223, 1231, 1239, 1249, 1263, 1277, 1296, 1311, 1312, 1313, 1313, 1314, 1314, 1314, 1315,
    1315, 1316, 1317, 1318, 1321, 1335, 1350, 1353, 1368, 1405, 1434, 1474, 1508, 1549, 1604, 1644,
    1689, 1734, 1785, 1835, 1876, 1925, 1970, 1999, 2032, 2085, 2135, 2177, 2221, 2265, 2309, 2349,
    2401, 2441, 2480, 2529, 2584, 2584, 2613, 2671, 2734, 2812, 2920, 3088, 3291, 3536, 3789, 4071,
    4073, 4074, 4075, 4076, 4076, 4077, 4078, 4079, 4079, 4080, 4081, 4082, 4083, 4083, 4084, 4085,
    4086, 4087, 4088, 4089, 4090, 4091, 4092, 4094, 4098, 4101, 4110, 4123, 4142, 4179, 4831, 5404,
    14050};
constexpr std::array<std::int32_t, 401> kConvOutputQuantiles = {
    7,   12,  14,  14,  16,  18,  18,  18,  24,  27,  28,  30,  32,  34,  36,  37,  38,  39,  40,
    41,  41,  42,  43,  44,  44,  45,  46,  46,  47,  48,  48,  49,  49,  50,  50,  51,  52,  52,
    53,  53,  54,  55,  56,  56,  57,  57,  58,  59,  59,  60,  60,  61,  62,  63,  63,  64,  64,
    65,  66,  66,  67,  67,  68,  68,  69,  69,  70,  71,  71,  72,  72,  73,  73,  74,  74,  75,
    75,  76,  76,  77,  77,  78,  78,  79,  79,  80,  80,  80,  81,  81,  82,  82,  82,  83,  83,
    83,  84,  84,  84,  85,  85,  85,  86,  86,  86,  86,  87,  87,  87,  88,  88,  88,  89,  89,
    89,  89,  90,  90,  90,  90,  91,  91,  91,  91,  92,  92,  92,  92,  93,  93,  93,  94,  94,
    94,  94,  95,  95,  95,  95,  96,  96,  96,  97,  97,  97,  98,  98,  98,  99,  99,  99,  100,
    100, 100, 101, 101, 101, 102, 102, 102, 103, 103, 104, 104, 105, 105, 106, 106, 107, 107, 108,
    108, 108, 109, 110, 110, 110, 111, 112, 112, 113, 113, 114, 115, 116, 116, 117, 118, 118, 119,
    120, 121, 122, 123, 124, 124, 125, 126, 127, 128, 129, 130, 131, 132, 133, 134, 135, 136, 137,
    138, 139, 140, 141, 142, 143, 144, 145, 147, 148, 149, 151, 152, 153, 154, 156, 157, 159, 160,
    161, 162, 162, 162, 163, 165, 167, 167, 169, 170, 172, 174, 177, 179, 179, 181, 182, 183, 184,
    187, 190, 193, 195, 199, 202, 205, 207, 211, 216, 217, 217, 217, 217, 217, 219, 228, 237, 254,
    295, 363, 371, 373, 373, 375, 375, 375, 376, 377, 378, 379, 382, 383, 384, 385, 385, 386, 387,
    388, 388, 388, 390, 390, 391, 392, 393, 393, 393, 394, 394, 394, 394, 395, 395, 395, 396, 396,
    396, 396, 396, 396, 396, 396, 396, 397, 397, 397, 397, 398, 398, 398, 399, 399, 400, 401, 401,
    401, 402, 402, 403, 404, 404, 405, 406, 407, 407, 408, 409, 409, 410, 411, 411, 411, 411, 412,
    413, 413, 414, 414, 414, 414, 415, 415, 416, 417, 417, 418, 419, 419, 420, 421, 421, 423, 424,
    426, 426, 427, 428, 428, 429, 429, 429, 429, 430, 432, 433, 436, 438, 440, 442, 444, 446, 449,
    451, 456, 460, 464, 468, 478, 490, 500, 509, 517, 522, 532, 540, 558, 571, 589, 601, 617, 643,
    719, 1000};

template <std::size_t N>
double table_mean(const std::array<std::int32_t, N>& q) {
  double sum = 0;
  for (std::size_t i = 0; i + 1 < N; ++i)
    sum += 0.5 * (q[i] + q[i + 1]);
  return sum / static_cast<double>(N - 1);
}

// Inverse CDF: a uniform point in a uniformly chosen bin, rounded.
template <std::size_t N>
std::int32_t table_sample(const std::array<std::int32_t, N>& q, Random& rng) {
  const double x = rng.uniform() * static_cast<double>(N - 1);
  const auto i = std::min(static_cast<std::size_t>(x), N - 2);
  const double frac = x - static_cast<double>(i);
  const double v = q[i] + frac * (q[i + 1] - q[i]);
  return std::max<std::int32_t>(1, static_cast<std::int32_t>(std::lround(v)));
}

}  // namespace

Result<LengthSampler> LengthSampler::from_trace(const RequestTrace& trace) {
  if (trace.requests.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "length trace: no rows");
  }
  LengthSampler sampler;
  sampler.rows_.reserve(trace.requests.size());
  double prompt_sum = 0;
  double output_sum = 0;
  for (const TraceRequest& r : trace.requests) {
    LengthPair pair{std::max(r.context_tokens, 1), std::max(r.generated_tokens, 1)};
    prompt_sum += pair.prompt;
    output_sum += pair.output;
    sampler.rows_.push_back(pair);
  }
  const auto n = static_cast<double>(sampler.rows_.size());
  sampler.mean_prompt_ = prompt_sum / n;
  sampler.mean_output_ = output_sum / n;
  return sampler;
}

LengthSampler LengthSampler::azure_conversation() {
  LengthSampler sampler;
  sampler.mean_prompt_ = table_mean(kConvPromptQuantiles);
  sampler.mean_output_ = table_mean(kConvOutputQuantiles);
  return sampler;
}

LengthPair LengthSampler::sample(Random& rng) const {
  if (!rows_.empty()) return rows_[rng.below(rows_.size())];
  LengthPair pair;
  pair.prompt = table_sample(kConvPromptQuantiles, rng);
  pair.output = table_sample(kConvOutputQuantiles, rng);
  return pair;
}

LengthPair scale_lengths(LengthPair lengths, double scale) {
  if (scale == 1) return lengths;
  auto scaled = [scale](std::int32_t n) {
    const double v = std::min(std::round(n * scale), 2e9);
    return std::max<std::int32_t>(1, static_cast<std::int32_t>(v));
  };
  return {scaled(lengths.prompt), scaled(lengths.output)};
}

LengthPair clip_lengths(LengthPair lengths, std::int32_t max_context) {
  if (max_context <= 0) return lengths;
  const std::int32_t output = std::max(1, std::min(lengths.output, max_context / 2));
  const std::int32_t prompt = std::max(1, std::min(lengths.prompt, max_context - output));
  return {prompt, output};
}

}  // namespace spillway::sim
