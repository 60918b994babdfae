// Helpers shared by the test binaries: where test data lives.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace spillway::testing {

// Path of a file under ../shared (models/, traces/). Test data is read from there, never
// copied into the repository.
inline std::string shared_path(const std::string& relative) {
  return (std::filesystem::path(SPILLWAY_SHARED_DIR) / relative).string();
}

// A fresh empty directory for a test's files, under the build tree: test_tmp/<name>/<Suite.Test>
// while a test runs. ctest runs every test as its own process, in parallel, so tests that name
// the same directory (a fixture's) must not empty each other's.
inline std::filesystem::path temp_dir(const std::string& name) {
  auto dir = std::filesystem::path(SPILLWAY_BINARY_DIR) / "test_tmp" / name;
  if (const auto* test = ::testing::UnitTest::GetInstance()->current_test_info()) {
    dir /= std::string(test->test_suite_name()) + "." + test->name();
  }
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace spillway::testing

// Skips the current test when a shared data file is absent (a checkout without ../shared),
// except under CI (CI=true), where ../shared is always present and a missing file fails.
#define SPW_REQUIRE_SHARED_FILE(path)                                              \
  do {                                                                             \
    if (!std::filesystem::exists(path)) {                                          \
      if (std::getenv("CI") != nullptr) FAIL() << "missing test data: " << (path); \
      GTEST_SKIP() << "missing test data: " << (path);                             \
    }                                                                              \
  } while (false)
