"""What the supply chain adds to `register` and `reconcile`, in seconds and as ratios against the
step it rides on, measured in the same run on the same version:

- signing: `attestation.sign_version` (download the registered files, sign them with
  model-signing, build and sign the SLSA provenance statement, keep both with the run, tag the
  version), against registering that version (log_model + create_model_version);
- verifying: `Registry.fetch_admitted` on the signed version (the reconciler's verify step:
  sha256, the bundle fetched again, the signature checked against the environment's trust
  policy) against `fetch_verified` on the same version before it was signed (sha256 alone, what
  the step did before), both with the model already in the local artifact store, as every
  reconcile after the first finds it.

    make bench-signing             # or: python -m benchmarks.bench_signing [--repeat N]

Prints a table and writes benchmarks/results/signing.json.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from benchmarks import common
from benchmarks.common import report, timed


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    repeat = 1 if common.smoke(args) else args.repeat
    with common.Run("signing") as run:
        measure(repeat, run.work)


def measure(repeat: int, work: Path) -> None:
    from mlops_gitops.registry import attestation

    from tests.engine.registered import register_version, registry_of
    from tests.engine.workflows import sandbox, with_key

    repo = with_key(sandbox(work / "repo"))
    registry = registry_of(repo)
    model = sorted(registry.repo.models)[0]
    register_version(repo, model)  # the first one pays MLflow's database set-up
    registered, signed, verified, admitted = [], [], [], []
    store = work / "artifacts"
    for i in range(repeat):
        with_key = repo / ".mlops/keys"
        with_key.rename(repo / ".mlops/keys-away")  # registered unsigned: the reference
        seconds, version = timed(lambda seed=i: register_version(repo, model, seed=seed + 3))
        (repo / ".mlops/keys-away").rename(with_key)
        registered.append(seconds)
        registry.fetch_verified(model, version, store)  # downloaded once, as the first reconcile does
        verified.append(timed(lambda version=version: registry.fetch_verified(model, version, store))[0])
        signed.append(timed(lambda version=version: attestation.sign_version(registry, model, version))[0])
        admitted.append(
            timed(lambda version=version: registry.fetch_admitted(model, version, store, "production"))[0]
        )
    median = statistics.median
    result = {
        "register_s": round(median(registered), 3),
        "sign_s": round(median(signed), 3),
        "ratio_sign_vs_register": round(median(signed) / median(registered), 2),
        "verify_sha256_s": round(median(verified), 3),
        "verify_sha256_and_signature_s": round(median(admitted), 3),
        "signature_adds_s": round(median(admitted) - median(verified), 3),
        "ratio_verify_with_signature_vs_sha256": round(median(admitted) / median(verified), 2),
        "repeat": repeat,
    }
    report("signing", result)


if __name__ == "__main__":
    main()
