// The subcommands of the `spillway` binary. Each add_* registers its options on the root app
// and returns the function that runs it once parsed (exit code: 0 ok, 1 runtime error,
// 2 usage error).
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace spillway::cli {

struct Command {
  CLI::App* app;
  std::function<int()> run;
};

Command add_generate_command(CLI::App& root);
Command add_bench_command(CLI::App& root);
Command add_mkmodel_command(CLI::App& root);
Command add_serve_command(CLI::App& root);
Command add_up_command(CLI::App& root);
Command add_sim_command(CLI::App& root);
Command add_control_command(CLI::App& root);
Command add_gateway_command(CLI::App& root);
Command add_key_command(CLI::App& root);

}  // namespace spillway::cli
