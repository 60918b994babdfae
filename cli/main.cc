// spillway: one binary, one subcommand per feature. Exit codes: 0 success, 1 runtime error
// (bad model file, I/O), 2 usage error (bad flags), as CLI11 reports them.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#if SPILLWAY_MIMALLOC
#include <mimalloc.h>
#endif

#include "core/log.h"

#include "cli/commands.h"

namespace {

// Which malloc the process runs on, for --version (see SPILLWAY_MIMALLOC in CMakeLists.txt).
std::string allocator_description() {
#if SPILLWAY_MIMALLOC
  const int v = mi_version();  // e.g. 209 for 2.0.9
  return "allocator: mimalloc " + std::to_string(v / 100) + "." + std::to_string(v / 10 % 10) +
         "." + std::to_string(v % 10);
#else
  return "allocator: glibc malloc";
#endif
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Spillway: serve large language models from GPU capacity spread across clouds.\n"
      "Run `spillway SUBCOMMAND --help` for a subcommand's options.",
      "spillway"};
  app.set_version_flag(
      "-V,--version", std::string("spillway ") + SPILLWAY_VERSION + "\n" + allocator_description());
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "debug, info, warn, error or off")
      ->capture_default_str();
  app.require_subcommand(0, 1);
  const spillway::cli::Command commands[] = {
      spillway::cli::add_generate_command(app), spillway::cli::add_bench_command(app),
      spillway::cli::add_mkmodel_command(app),  spillway::cli::add_serve_command(app),
      spillway::cli::add_up_command(app),       spillway::cli::add_control_command(app),
      spillway::cli::add_gateway_command(app),  spillway::cli::add_sim_command(app),
      spillway::cli::add_key_command(app),
  };

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive here too, with success codes; usage errors exit 2.
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  auto level = spillway::parse_log_level(log_level);
  if (!level.ok()) {
    std::fprintf(stderr, "spillway: %s\n", level.error().message().c_str());
    return 2;
  }
  spillway::set_log_level(*level);
  for (const auto& command : commands) {
    if (command.app->parsed()) return command.run();
  }
  std::fputs(app.help().c_str(), stdout);
  return 0;
}
