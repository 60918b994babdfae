// spillway key: API keys for fleet files. Fleet files hold only salted hashes
// (fleet/api_key.h), so an operator needs a way to make a key and its stored form:
//   spillway key            a new random key and its stored hash
//   spillway key --stdin    the stored hash of a key read from standard input (never argv,
//                           which every user can read in /proc/PID/cmdline)
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "fleet/api_key.h"
#include "fleet/secure_random.h"

#include "cli/commands.h"

namespace spillway::cli {
namespace {

struct KeyFlags {
  bool from_stdin = false;
};

int run_key(const KeyFlags& f) {
  fleet::SecureRandom random;
  std::string key;
  if (f.from_stdin) {
    if (!std::getline(std::cin, key) || key.empty()) {
      std::fprintf(stderr, "spillway key: --stdin: no key on standard input\n");
      return 2;
    }
    if (key.size() > fleet::kMaxApiKeyBytes) {
      std::fprintf(stderr, "spillway key: --stdin: the key is longer than %zu bytes\n",
                   fleet::kMaxApiKeyBytes);
      return 2;
    }
  } else {
    key = fleet::generate_api_key(random);
    std::printf("key:    %s\n", key.c_str());
  }
  std::printf("stored: %s\n", fleet::hash_api_key(key, random).c_str());
  return 0;
}

}  // namespace

Command add_key_command(CLI::App& root) {
  auto f = std::make_shared<KeyFlags>();
  CLI::App* app = root.add_subcommand(
      "key", "Make an API key and the salted hash a fleet file's api_keys holds (docs/FLEET.md)");
  app->add_flag("--stdin", f->from_stdin,
                "Hash the key read from standard input instead of making a new one");
  return {app, [f] { return run_key(*f); }};
}

}  // namespace spillway::cli
