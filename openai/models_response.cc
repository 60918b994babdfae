#include "openai/models_response.h"

#include "openai/json_writer.h"

namespace spillway::openai {
namespace {

void write_model(JsonWriter& w, const ModelCard& model) {
  w.begin_object();
  w.field("id", model.id);
  w.field("object", "model");
  w.field_integer("created", model.created_unix_s);
  w.field("owned_by", model.owned_by);
  w.end_object();
}

}  // namespace

std::string render_model(const ModelCard& model) {
  std::string out;
  JsonWriter w(out);
  write_model(w, model);
  return out;
}

std::string render_model_list(std::span<const ModelCard> models) {
  std::string out;
  JsonWriter w(out);
  w.begin_object();
  w.field("object", "list");
  w.key("data");
  w.begin_array();
  for (const ModelCard& m : models)
    write_model(w, m);
  w.end_array();
  w.end_object();
  return out;
}

}  // namespace spillway::openai
