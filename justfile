# hubscore's recipes. `just` lists them; `just ci` is what CI runs.
# Python downloads are off: the machines run CPython 3.11 and uv must use it.
export UV_PYTHON_DOWNLOADS := "never"

# the date the demo scores at: the last complete week of the bundled sample
demo_as_of := "2026-11-29"

default: lint test

# install every extra and the dev tools from the lock file
sync:
    uv sync --all-extras --frozen --compile-bytecode

# lint, type-check, and check the layers (import-linter contracts in pyproject.toml)
lint:
    uv run --frozen ruff check .
    uv run --frozen ruff format --check .
    uv run --frozen mypy
    uv run --frozen lint-imports

# format the code and apply safe fixes
fmt:
    uv run ruff format .
    uv run ruff check --fix .

# run the tests (pass pytest arguments, e.g. `just test -k build -x`)
test *args:
    uv run --frozen pytest {{args}}

# everything CI checks: install, lint, types, the full test suite (the lean check included)
ci: sync lint
    uv run --frozen pytest -m "" -p no:cacheprovider

# score the golden input in a fresh environment without the training extra
lean:
    uv run --frozen pytest tests/test_lean.py -m "" -q

# rebuild tests/golden, then review the diff
golden:
    uv run python tests/golden/make_golden.py
    git diff --stat tests/golden

# the whole demo on the bundled sample: build features, train all four models, score the list
demo: sync build-features
    uv run --frozen hubscore train --model all --config data/demo.yaml
    uv run --frozen hubscore build-features --as-of {{demo_as_of}}
    uv run --frozen hubscore score data/build/scoring/features.parquet -o data/build/call_list.csv --top-k 50 --scored-at {{demo_as_of}}
    uv run --frozen python -m hubscore.dev.demo

# after `just demo`: rewrite the README's demo blocks with what the demo printed (review the diff)
readme:
    uv run --frozen python -m hubscore.dev.demo --write README.md
    git diff --stat README.md

# rewrite the bundled sample in data/ (deterministic: review the diff)
sample:
    uv run --frozen hubscore sample-data --out data

# point-in-time training features from data/ into data/build/
build-features *args:
    uv run --frozen hubscore build-features {{args}}

# train (e.g. `just train --model lightgbm`)
train *args:
    uv run --frozen hubscore train {{args}}

# score a feature file with models/latest (e.g. `just score in.parquet -o out.parquet`)
score *args:
    uv run --frozen hubscore score {{args}}

# every benchmark, printing ratios against baselines measured in the same run
bench: bench-build bench-score bench-serve bench-train bench-explain bench-quality bench-spark bench-monitor

# build-features --as-of on 1M companies / ~20M usage rows vs pandas and a bare DuckDB scan
bench-build *args:
    uv run --frozen python bench/bench_build.py {{args}}

# the scorer on 10M companies vs the bare onnxruntime kernel and native predict_proba
bench-score *args:
    uv run --frozen python bench/bench_score.py {{args}}

# the HTTP API under a bounded loopback load vs the scoring core in-process
bench-serve *args:
    uv run --frozen python bench/bench_serve.py {{args}}

# explanations per family (1,000 rows, one core) vs native pred_contribs / shap on the same rows
bench-explain *args:
    uv run --frozen python bench/bench_explain.py {{args}}

# training time and peak memory per family vs one bare fit and the feature frame (150k companies)
bench-train *args:
    uv run --frozen python bench/bench_train.py {{args}}

# every family under issue 9's time protocol on 3 generated seeds vs plain library scripts (~20 min)
bench-quality *args:
    uv run --frozen python bench/bench_quality.py {{args}}

# serve the HTTP API on loopback (e.g. `just serve --port 8080`)
serve *args:
    uv run --frozen hubscore serve {{args}}

# the Spark engine (local[2]) vs the single-machine build and scorer, Spark start-up apart
bench-spark *args:
    uv run --frozen python bench/bench_spark.py {{args}}

# the ledger's cost to score (1M companies) and monitor over 8 weekly lists vs a bare read of them
bench-monitor *args:
    uv run --frozen python bench/bench_monitor.py {{args}}
