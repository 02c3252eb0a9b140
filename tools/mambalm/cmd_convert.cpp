// mambalm convert: Megatron-LM checkpoints to model directories and back (docs/megatron-import.md).
#include <cstdio>

#include "args.h"
#include "commands.h"
#include "config/model_config.h"
#include "convert/megatron_export.h"
#include "convert/megatron_import.h"
#include "core/error.h"

namespace mambalm::cli {

namespace {

std::optional<DType> dtype_option(const Args& args) {
  if (!args.has("dtype")) return std::nullopt;
  const std::string d = args.str("dtype");
  check(d == "f32" || d == "bf16", "--dtype", "'" + d + "' is not f32 or bf16");
  return d == "bf16" ? DType::BF16 : DType::F32;
}

const char* spec_name(convert::MegatronSpec s) {
  return s == convert::MegatronSpec::TransformerEngine ? "Transformer Engine (fused pre-norms)" : "local (separate pre-norms)";
}

}  // namespace

int cmd_convert(int argc, char** argv) {
  Args args("convert",
            "--from megatron CKPT --out DIR [--tokenizer FILE] [--dtype f32|bf16]\n"
            "       mambalm convert --to megatron MODEL_DIR --out CKPT [--tensor-parallel N] [--megatron-spec te|local] [--dtype f32|bf16]",
            {{"from", "FORMAT", "read a checkpoint of FORMAT (megatron: a Megatron-LM --save folder, iteration folder or .pt file)"},
             {"to", "FORMAT", "write the model directory as FORMAT (megatron: the legacy torch checkpoint format)"},
             {"out", "PATH", "the model directory (--from) or checkpoint folder (--to) to write"},
             {"tokenizer", "FILE", "with --from: the checkpoint's tokenizer (e.g. its SentencePiece .model), copied in"},
             {"dtype", "f32|bf16", "weight dtype written (default: each tensor's own)"},
             {"tensor-parallel", "N", "with --to: cut the weights for N tensor-parallel ranks (default 1)"},
             {"megatron-spec", "te|local", "with --to: tensor names of Megatron's Transformer Engine specs (default, as the study) or its local specs"}});
  if (!args.parse(argc, argv)) return 0;
  check(args.has("from") != args.has("to"), args.where(), "give --from megatron or --to megatron", "see 'mambalm convert --help'");
  check(args.positional().size() == 1, args.where(), "expected one input path (a checkpoint with --from, a model directory with --to)");
  const std::string format = args.has("from") ? args.str("from") : args.str("to");
  check(format == "megatron", args.has("from") ? "--from" : "--to", "unknown format '" + format + "'", "supported: megatron");
  const std::string input = args.positional()[0], out = args.required("out");

  if (args.has("from")) {
    for (const char* o : {"tensor-parallel", "megatron-spec"}) check(!args.has(o), std::string("--") + o, "is an option of --to");
    convert::MegatronImportOptions options;
    options.tokenizer = args.str("tokenizer");
    options.dtype = dtype_option(args);
    const convert::MegatronImportReport r = convert::import_megatron(input, out, options);
    std::printf("read %s: %d tensor-parallel rank%s, %s names\n", input.c_str(), r.tp, r.tp == 1 ? "" : "s", spec_name(r.spec));
    for (const std::string& n : r.notes) std::printf("note: %s\n", n.c_str());
    std::printf("wrote %s: %s (%s), pattern %s, %lld tensors, %.3fM parameters\n", out.c_str(), r.cfg.model_type.c_str(),
                arch_name(r.cfg.arch).c_str(), r.cfg.pattern.c_str(), static_cast<long long>(r.tensors),
                static_cast<double>(r.parameters) / 1e6);
    return 0;
  }
  check(!args.has("tokenizer"), "--tokenizer", "is an option of --from (the checkpoint format carries no tokenizer)");
  convert::MegatronExportOptions options;
  options.tp = static_cast<int>(args.integer_in("tensor-parallel", 1, 1, 64));
  const std::string spec = args.str("megatron-spec", "te");
  check(spec == "te" || spec == "local", "--megatron-spec", "'" + spec + "' is not te or local");
  options.spec = spec == "te" ? convert::MegatronSpec::TransformerEngine : convert::MegatronSpec::Local;
  options.dtype = dtype_option(args);
  const int64_t n = convert::export_megatron(input, out, options);
  std::printf("wrote %s: %d tensor-parallel rank%s (release/mp_rank_XX/model_optim_rng.pt), %lld entries each, %s names\n", out.c_str(),
              options.tp, options.tp == 1 ? "" : "s", static_cast<long long>(n), spec_name(options.spec));
  return 0;
}

}  // namespace mambalm::cli
