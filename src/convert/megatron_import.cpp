#include "convert/megatron_import.h"

#include <filesystem>
#include <map>
#include <set>

#include "config/hf_config.h"
#include "convert/megatron_args.h"
#include "convert/megatron_checkpoint.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "tokenizer/install.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::convert {

namespace {

// What the reader will hand back for a stored element type (torch_checkpoint.h's read()).
DType read_dtype(io::torch::TorchDType t) { return t == io::torch::TorchDType::BF16 ? DType::BF16 : DType::F32; }

// The table must hold exactly the tensors a model of this config loads (model/model.cpp),
// with the shapes it expects: a gap in the table fails here, not in the user's next command.
void check_against_model(const std::vector<MegatronTensor>& table, const ModelConfig& cfg, const std::string& where) {
  Model model(cfg);
  std::map<std::string, Shape> expected;
  for (const ParamRef& p : model.params()) expected[p.name] = p.file_shape.empty() ? p.shape : p.file_shape;
  std::set<std::string> produced;
  for (const MegatronTensor& t : table)
    for (size_t k = 0; k < t.hf_names.size(); ++k) {
      auto it = expected.find(t.hf_names[k]);
      check(it != expected.end(), where, "the layout maps to '" + t.hf_names[k] + "', which a " + cfg.model_type + " model does not have");
      check(it->second == t.hf_shapes[k], where, "'" + t.hf_names[k] + "' would be " + shape_str(t.hf_shapes[k]) + ", the model expects " +
                                                     shape_str(it->second));
      produced.insert(t.hf_names[k]);
    }
  for (const auto& [name, shape] : expected) check(produced.count(name) != 0, where, "nothing in the checkpoint maps to '" + name + "'");
}

}  // namespace

MegatronImportReport import_megatron(const std::string& checkpoint, const std::string& out_dir, const MegatronImportOptions& options) {
  if (options.dtype) check(*options.dtype == DType::F32 || *options.dtype == DType::BF16, "--dtype", "weights are written as f32 or bf16");
  const MegatronCheckpoint ck = MegatronCheckpoint::open(checkpoint);
  MegatronStateView view{ck.tp(), [&ck](const std::string& n) { return ck.rank_shape(n); }};
  MegatronModelInfo info = config_from_megatron(ck.args(), view, ck.files()[0]);
  MegatronImportReport report;
  report.tp = ck.tp();
  report.spec = info.spec;
  report.notes = info.notes;
  std::unique_ptr<Tokenizer> tokenizer;
  if (!options.tokenizer.empty()) {
    tokenizer = open_tokenizer(options.tokenizer);
    check(tokenizer->vocab_size() <= info.cfg.vocab_size, options.tokenizer,
          "the tokenizer has " + std::to_string(tokenizer->vocab_size()) + " tokens but the embedding only " + std::to_string(info.cfg.vocab_size) + " rows",
          "is this the checkpoint's tokenizer?");
    info.cfg.bos_token_id = tokenizer->bos_id();
    info.cfg.eos_token_id = tokenizer->eos_id();
    info.cfg.pad_token_id = tokenizer->pad_id();
  }
  const ModelConfig& cfg = info.cfg;
  const std::vector<MegatronTensor> table = megatron_layout(cfg, info.spec);
  check_against_model(table, cfg, ck.path());

  std::vector<std::string> known;
  for (const MegatronTensor& t : table) known.push_back(t.name);
  const std::vector<std::string> extra = ck.unexpected(known);
  check(extra.empty(), ck.files()[0], "tensor '" + (extra.empty() ? "" : extra[0]) + "' (and " + std::to_string(extra.size() ? extra.size() - 1 : 0) +
                                          " more) has no place in a " + cfg.model_type + " model with pattern " + cfg.pattern,
        "the checkpoint holds layers this converter does not know (MoE, MTP, ...)");

  // The file's entries, in table order (q, k, v consecutive), each in its output dtype.
  std::vector<io::SafetensorsEntry> entries;
  for (const MegatronTensor& t : table) {
    const DType source = read_dtype(ck.rank(0).entry(t.name).dtype);
    for (size_t k = 0; k < t.hf_names.size(); ++k) entries.push_back({t.hf_names[k], options.dtype.value_or(source), t.hf_shapes[k]});
  }
  std::filesystem::create_directories(out_dir);
  io::SafetensorsStreamWriter out((std::filesystem::path(out_dir) / "model.safetensors").string(), entries, {{"format", "pt"}});
  size_t entry = 0;
  for (const MegatronTensor& t : table) {
    Tensor whole = ck.read(t);
    std::vector<Tensor> pieces = t.qkv_groups > 0 ? split_qkv(t, whole) : std::vector<Tensor>{whole.reshape(t.hf_shapes[0])};
    for (Tensor& piece : pieces) {
      const io::SafetensorsEntry& e = entries[entry++];
      const Tensor written = piece.dtype() == e.dtype ? piece : piece.to(e.dtype);
      out.write(written.raw(), written.nbytes());
      report.parameters += written.numel();
    }
  }
  out.commit();
  save_model_config(cfg, out_dir);
  if (tokenizer) install_tokenizer(options.tokenizer, out_dir);
  else report.notes.push_back("no tokenizer given (--tokenizer): the directory runs on token ids only");
  report.tensors = static_cast<int64_t>(entries.size());
  report.cfg = cfg;
  return report;
}

}  // namespace mambalm::convert
