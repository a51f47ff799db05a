# The template's own targets (template-only: generated repositories do not get this file, and the
# Makefile includes it only where it exists). Benchmarks measure the engine against a reference
# in the same run, as ratios; results go to benchmarks/results/.
.PHONY: bench-signing bench-drift bench-register bench-check bench-serve bench-reconcile bench-pr bench-metrics bench-canary bench-verbs bench-smoke bench-install

bench-install: install ## benchmark: make install with uv vs with pip, cold and warm caches (goal: warm uv under 60 s)
	$(BIN)/python -m benchmarks.bench_install

bench-serve: install ## benchmark: our model server vs `mlflow models serve` (throughput, p50/p99 at 100 req/s)
	$(BIN)/python -m benchmarks.bench_serve

bench-metrics: install ## benchmark: model-server throughput with /metrics on vs off (goal: at least 95%)
	$(BIN)/python -m benchmarks.bench_metrics

bench-canary: install ## benchmark: a bad canary's first answered request to its rollback, by --watch (interval 1 s)
	$(BIN)/python -m benchmarks.bench_canary

bench-check: install ## benchmark: mlops check over 1,000 manifests vs parsing them vs one engine per file
	$(BIN)/python -m benchmarks.bench_check

bench-verbs: install ## benchmark: mlops status, plan and validate as whole processes, 3 models x 3 environments served (goal: under 1.5 s)
	$(BIN)/python -m benchmarks.bench_verbs

bench-reconcile: install ## benchmark: no-op reconcile of 1,000 manifests vs loading them; failed check -> previous serving
	$(BIN)/python -m benchmarks.bench_reconcile

bench-drift: install ## benchmark: mlops drift over 100,000 logged rows x 20 features vs evidently alone
	$(BIN)/python -m benchmarks.bench_drift

bench-register: install ## benchmark: dvc repro + mlops register, against bare MLflow
	$(BIN)/python -m benchmarks.bench_register

bench-signing: install ## benchmark: what signing adds to register and the signature adds to reconcile's verify step
	$(BIN)/python -m benchmarks.bench_signing

bench-pr: install ## benchmark: a generated repository's pr.yml under act, warm, against the base revision's (BASE=rev)
	$(BIN)/python -m benchmarks.bench_pr $(if $(BASE),--base $(BASE))

BENCHMARKS := $(patsubst benchmarks/%.py,%,$(wildcard benchmarks/bench_*.py))
bench-smoke: install ## every benchmark at a tiny size (--smoke): fails on any crash or anything left running (CI runs it)
	@for bench in $(BENCHMARKS); do echo "== $$bench --smoke"; \
	  $(BIN)/python -m benchmarks.$$bench --smoke > /dev/null || { echo "error: $$bench crashed (rerun: python -m benchmarks.$$bench --smoke)"; exit 1; }; \
	done
