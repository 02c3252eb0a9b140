// config.json in Hugging Face layout, for the model_types mambalm reads and writes:
// mamba, mamba2, nemotron_h (the hybrid), nemotron (the study's Transformer) and llama.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "config/model_config.h"

namespace mambalm {

// Parses config.json text as transformers writes it (Python's bare Infinity/NaN tokens and
// {"__float__": "Infinity"} objects included). `where` names the file in errors.
nlohmann::json parse_config_json(const std::string& text, const std::string& where);

// HF config -> ModelConfig. Accepts the legacy key aliases transformers still reads.
ModelConfig config_from_hf(const nlohmann::json& j, const std::string& where);

// ModelConfig -> HF config (the keys transformers 5.x writes for cfg.model_type).
nlohmann::json config_to_hf(const ModelConfig& cfg);

// Reads and writes <dir>/config.json.
ModelConfig load_model_config(const std::string& model_dir);
// A config.json file, or a model directory holding one (`mambalm init --config`).
ModelConfig load_config_file(const std::string& path);
void save_model_config(const ModelConfig& cfg, const std::string& model_dir);

}  // namespace mambalm
