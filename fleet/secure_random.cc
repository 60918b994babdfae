#include "fleet/secure_random.h"

#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace spillway::fleet {

std::uint64_t SecureRandom::next_u64() {
  unsigned char bytes[8];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    std::fputs("spillway: the system random generator failed; refusing to continue\n", stderr);
    std::abort();
  }
  std::uint64_t out = 0;
  std::memcpy(&out, bytes, sizeof out);
  return out;
}

}  // namespace spillway::fleet
