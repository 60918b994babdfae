// A `Random` backed by the operating system's cryptographic generator (OpenSSL RAND_bytes),
// for API keys and salts. Simulations and tests use SeededRandom instead.
//
// Thread-safety: safe for concurrent use (RAND_bytes is), unlike other Random implementations.
// If the system generator ever fails, next_u64 aborts the process: continuing would hand out
// guessable keys, which is worse than stopping.
#pragma once

#include <cstdint>

#include "core/random.h"

namespace spillway::fleet {

class SecureRandom final : public Random {
 public:
  std::uint64_t next_u64() override;
};

}  // namespace spillway::fleet
