// Randomness behind an interface: policy code takes a `Random&` so that a seed reproduces a
// run exactly (tests, `spillway sim --seed`). No rand() or std::random_device in policy code.
#pragma once

#include <cstdint>

namespace spillway {

// Not safe for concurrent use: give each thread or component its own instance.
class Random {
 public:
  virtual ~Random() = default;
  // Uniform over all 64-bit values.
  virtual std::uint64_t next_u64() = 0;

  // Uniform in [0, 1), 53 bits of precision.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  // Uniform integer in [0, bound). REQUIRES: bound > 0. Unbiased (Lemire's method).
  std::uint64_t below(std::uint64_t bound);
  // Exponentially distributed with the given mean (> 0): inter-arrival times.
  double exponential(double mean);
};

// xoshiro256** seeded through splitmix64: fast, small state, good statistical quality.
// Same seed → same sequence on every platform.
class SeededRandom final : public Random {
 public:
  explicit SeededRandom(std::uint64_t seed);
  std::uint64_t next_u64() override;

 private:
  std::uint64_t s_[4];
};

}  // namespace spillway
