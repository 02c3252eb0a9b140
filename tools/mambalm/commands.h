// The subcommands of the one CLI. Each parses its own options and returns the exit code;
// errors are thrown as mambalm::Error and printed by main() as one line.
#pragma once

namespace mambalm::cli {

int cmd_init(int argc, char** argv);
int cmd_info(int argc, char** argv);
int cmd_forward(int argc, char** argv);
int cmd_generate(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_grad(int argc, char** argv);
int cmd_train(int argc, char** argv);
int cmd_tokenizer(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_prepare(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_study(int argc, char** argv);
int cmd_serve(int argc, char** argv);
int cmd_plot(int argc, char** argv);
int cmd_convert(int argc, char** argv);

}  // namespace mambalm::cli
