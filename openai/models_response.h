// `GET /v1/models` and `GET /v1/models/{id}` bodies:
//   {"object":"list","data":[{"id","object":"model","created","owned_by"}...]}
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace spillway::openai {

struct ModelCard {
  std::string id;                   // The name clients pass as `model`.
  std::int64_t created_unix_s = 0;  // When the model was published or loaded, Unix seconds.
  std::string owned_by;             // Organization or tenant that owns it.
};

[[nodiscard]] std::string render_model(const ModelCard& model);
[[nodiscard]] std::string render_model_list(std::span<const ModelCard> models);

}  // namespace spillway::openai
