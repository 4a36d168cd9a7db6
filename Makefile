# Wukong pipeline: `make help` lists the targets.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# img2dataset imports albumentations, which otherwise looks online for updates on import.
export NO_ALBUMENTATIONS_UPDATE := 1
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install test test-fast test-flink synthetic clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-19s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## create .venv/ with Python 3.11 and install the project (editable) and its test tools
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip setuptools wheel
	# The CPU-side torch pair that lies on the build machines' disk (see README: Install).
	$(BIN)/pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -e '.[test]'

test: ## run the whole test suite (pytest, with a per-test timeout)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: ## run the fast tier: every test not marked e2e (under a minute)
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

test-flink: ## the flink tier: crawl and filter on a local Flink cluster against the in-process runner (Java 17)
	$(PY) -m pytest -m flink -rP $(PYTEST_ARGS)

synthetic: ## write synthetic raw shards to runs/synthetic/raw (no network)
	$(PY) -m pipelines.synthetic --output runs/synthetic/raw --pairs 2000 --seed 0

# --- the whole pipeline offline ---
DEMO_OUTPUT ?= runs/demo
DEMO_ARGS ?=
.PHONY: demo

demo: ## crawl a local engine, filter, split, train a small LiT on CPU, evaluate, report: runs/demo/ (~4 min)
	$(PY) -m pipelines.demo --output $(DEMO_OUTPUT) $(DEMO_ARGS)

# --- crawl targets ---
QUERIES_FILE ?= runs/queries.txt
CRAWL_OUT ?= runs/crawl/raw
# Empty: crawl the local engine (offline). SEARCH_BASE_URL=https://image.baidu.com reaches Baidu.
SEARCH_BASE_URL ?=
CRAWL_ARGS ?=
.PHONY: queries crawl bench-crawl-scale

queries: ## write the default 200K query list (jieba dictionary, by frequency) to runs/queries.txt
	@mkdir -p $(dir $(QUERIES_FILE))
	$(PY) -m crawler.queries --output $(QUERIES_FILE)

crawl: ## crawl the local engine offline into runs/crawl/raw (SEARCH_BASE_URL=https://image.baidu.com: real Baidu)
ifeq ($(SEARCH_BASE_URL),)
	$(PY) -m pipelines.crawl_local --output $(CRAWL_OUT) $(CRAWL_ARGS)
else
	@test -f $(QUERIES_FILE) || $(MAKE) --no-print-directory queries
	$(PY) -m pipelines.crawl --queries $(QUERIES_FILE) --output $(CRAWL_OUT) --search-base-url $(SEARCH_BASE_URL) $(CRAWL_ARGS)
endif

bench-crawl-scale: ## cost per chunk as finished chunks grow, one job per phase vs one job per wave, local engine (benchmarks/crawl_scale.py)
	$(PY) -m benchmarks.crawl_scale

# --- filter targets ---
FILTER_INPUT ?= $(CRAWL_OUT)
FILTER_OUTPUT ?= runs/filter
FILTER_ARGS ?=
# Small corpora by default (a few minutes on two cores); issue 12's sizes are
# BENCH_FILTER_ARGS="--rows 50000 --rows 400000 --rows 1600000" (docs/benchmarks.md#filter-at-scale).
BENCH_FILTER_ARGS ?= --rows 10000 --rows 40000 --rows-per-shard 2000 --direct_num_workers=2 --direct_running_mode=multi_processing
.PHONY: filter filter-synthetic bench-text-filters bench-filter-scale

filter: ## filter raw shards FILTER_INPUT (runs/crawl/raw) into FILTER_OUTPUT (runs/filter): clean/, rejects/, funnel.json, stats.json, wordcloud.png
	$(PY) -m pipelines.filter --input $(FILTER_INPUT) --output $(FILTER_OUTPUT) $(FILTER_ARGS)

filter-synthetic: synthetic ## filter the synthetic shards of `make synthetic` into runs/synthetic/filter
	$(PY) -m pipelines.filter --input runs/synthetic/raw --output runs/synthetic/filter $(FILTER_ARGS)

bench-text-filters: ## speed and agreement of the text filter chain, rjieba vs plain jieba (benchmarks/text_filters.py)
	$(PY) -m benchmarks.text_filters

bench-filter-scale: ## filter time per row, peak memory of the driver and each worker, as the corpus grows (benchmarks/filter_scale.py)
	@mkdir -p runs/bench
	$(PY) -m benchmarks.filter_scale $(BENCH_FILTER_ARGS) --json runs/bench/filter_scale.json

# --- train targets ---
# DATA: clean shards; TRAIN_OUTPUT: the run directory.
DATA ?= $(FILTER_OUTPUT)/clean
TRAIN_OUTPUT ?= runs/train
NPROC ?= 1
CACHE_OUTPUT ?= runs/feature-cache
TRAIN_ARGS ?=
CACHE_ARGS ?=
.PHONY: train train-cache bench-train bench-token-wise bench-methods
METHODS_ARGS ?=

train: ## LiT training on DATA into TRAIN_OUTPUT; NPROC>1 runs torchrun DDP (gloo on CPU); extra flags in TRAIN_ARGS
ifeq ($(NPROC),1)
	$(PY) -m training.train --data $(DATA) --output $(TRAIN_OUTPUT) $(TRAIN_ARGS)
else
	$(BIN)/torchrun --standalone --nproc_per_node $(NPROC) -m training.train --data $(DATA) --output $(TRAIN_OUTPUT) $(TRAIN_ARGS)
endif

train-cache: ## run the locked image tower once over DATA into CACHE_OUTPUT (then: make train TRAIN_ARGS="--cache ...")
	$(PY) -m training.cache_features --data $(DATA) --output $(CACHE_OUTPUT) $(CACHE_ARGS)

bench-train: ## LiT step samples/s, ViT-B/16 + BERT-base, with and without the feature cache (benchmarks/train_throughput.py)
	$(PY) -m benchmarks.train_throughput

bench-token-wise: ## extra memory of the token-wise loss, naive vs chunked (benchmarks/token_wise_memory.py)
	$(PY) -m benchmarks.token_wise_memory

bench-methods: ## the training methods side by side on the demo's data (benchmarks/methods.py); extra flags in METHODS_ARGS
	$(PY) -m benchmarks.methods --demo $(DEMO_OUTPUT) $(METHODS_ARGS)

# --- eval targets ---
# By default `make eval` scores runs/train on the clean shards it trained on (a fit check); point
# EVAL_LAYOUT/EVAL_DATA (and EVAL_ARGS="--images DIR ...") at a benchmark for comparable numbers.
EVAL_CHECKPOINT ?= $(TRAIN_OUTPUT)
EVAL_LAYOUT ?= shards
EVAL_DATA ?= $(DATA)
EVAL_IMAGES ?= data/imagenet/val
EVAL_ARGS ?=
.PHONY: eval eval-zeroshot

eval: ## retrieval R@1/5/10 + MR of EVAL_CHECKPOINT on EVAL_DATA (EVAL_LAYOUT: tsv muge flickr coco-cn aic-icc shards)
	$(PY) -m training.evaluate retrieval --checkpoint $(EVAL_CHECKPOINT) --layout $(EVAL_LAYOUT) --data $(EVAL_DATA) $(EVAL_ARGS)

eval-zeroshot: ## zero-shot top-1/top-5 (80 Chinese prompts) of EVAL_CHECKPOINT on the class folders in EVAL_IMAGES
	$(PY) -m training.evaluate zeroshot --checkpoint $(EVAL_CHECKPOINT) --image-dir $(EVAL_IMAGES) $(EVAL_ARGS)

# --- report targets ---
REPORT_INPUT ?= $(FILTER_OUTPUT)
REPORT_OUTPUT ?= $(REPORT_INPUT)/report
REPORT_ARGS ?=
.PHONY: report

report: ## the dataset report of REPORT_INPUT (a filter output) as REPORT_OUTPUT/index.html: Table 2, funnel, word cloud, samples
	$(PY) -m pipelines.report --input $(REPORT_INPUT) --output $(REPORT_OUTPUT) $(REPORT_ARGS)

clean: ## remove runs/ and caches (keeps .venv/)
	rm -rf runs .pytest_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
